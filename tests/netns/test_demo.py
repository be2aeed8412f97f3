"""``make demo``'s main job runs end to end and leaves nothing behind.

The demo works on the real host (that is its job), so these tests do too; the
demo names everything it makes after its pid, and the checks look only at
those names, so other test runs on the machine neither collide nor interfere.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

from multinic.lab import demo
from multinic.lab import netns as lab

MULTINIC = Path(sys.executable).parent / "multinic"


def demo_objects(plan: demo.DemoPlan) -> set[str]:
    """The demo's pods, bridge and data NIC still on the host, and links in its bridge.

    Only this demo's own names: other test runs on the machine may add and
    remove host links and namespaces of their own at the same time.
    """
    names = {plan.bridge, plan.data_nic, plan.data_peer}
    namespaces = {p.name for p in lab.NETNS_DIR.iterdir()} if lab.NETNS_DIR.exists() else set()
    left = {f"namespace {pod}" for pod in plan.pods if pod in namespaces}
    for link in lab.ip_json("link", "show"):
        if link["ifname"] in names or link.get("master") in names:
            left.add(f"link {link['ifname']}")
    return left


def test_demo_attaches_two_pods_to_two_networks_pings_and_cleans_up() -> None:
    with subprocess.Popen(
        [str(MULTINIC), "demo"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as running:
        # The demo names its objects after its pid: the plan it makes in the child.
        with mock.patch.object(os, "getpid", return_value=running.pid):
            plan = demo.DemoPlan.for_process()
        out, err = running.communicate(timeout=300)

    assert running.returncode == 0, out + err
    assert plan.pods[0] in out and plan.pods[1] in out  # the names below are this demo's
    for step in ("CHECK ok for all 4 attachments", "DEL ok, twice each", "nothing left behind"):
        assert step in out
    # Both pods on both networks, and a ping answered on each network.
    assert out.count("198.18.0.") >= 4
    assert out.count("198.18.1.") >= 4
    ping_rows = [
        line for line in out.splitlines() if "multinic-primary" in line or "dataplane" in line
    ]
    assert sum(" ok " in row for row in ping_rows) == 2, out
    assert demo_objects(plan) == set()


def test_leftovers_sees_every_kind_of_state_an_add_creates() -> None:
    # The demo's "nothing left behind" is only worth something if the check can fail.
    plan = demo.DemoPlan.for_process()
    with demo.demo_environment(plan) as paths:
        runtime = demo.make_runtime(paths)
        nets = (demo.primary_network(plan, paths), demo.secondary_network(plan, paths))
        results = demo.attach_all(runtime, plan, nets)
        found = demo.leftovers(plan, paths, runtime, results)
        demo.check_and_delete_all(runtime, plan, nets)
        assert demo.leftovers(plan, paths, runtime, results) == []
    text = "\n".join(found)
    for pod in plan.pods:
        assert f"eth0 still exists in {pod}" in text
        assert f"net1 still exists in {pod}" in text
    assert text.count("cache entry") == 4
    assert text.count("host-local still holds 198.18.0.") == 2
    assert text.count("multinic-ipam still holds an address for demo-") == 2
    assert text.count("host link veth") == 2


def test_demo_objects_sees_what_a_leaking_demo_would_leave() -> None:
    # The first test's "nothing of the demo's" is only worth something if it can fail.
    plan = demo.DemoPlan.for_process()
    port = f"{plan.data_peer}x"  # a name that is not the demo's, in the demo's bridge
    with lab.scratch_netns(plan.pods[1]):
        try:
            lab.ip("link", "add", plan.bridge, "type", "bridge")
            lab.ip("link", "add", port, "type", "veth", "peer", "name", f"{plan.data_peer}y")
            lab.ip("link", "set", port, "master", plan.bridge)
            assert demo_objects(plan) == {
                f"namespace {plan.pods[1]}",
                f"link {plan.bridge}",
                f"link {port}",
            }
        finally:
            lab.delete_link(port)
            lab.delete_link(plan.bridge)
    assert demo_objects(plan) == set()
