"""``make demo``'s main job runs end to end and leaves nothing behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from multinic.lab import demo
from multinic.lab import netns as lab

MULTINIC = Path(sys.executable).parent / "multinic"


def netns_names() -> set[str]:
    """The demo's namespaces (others' may come and go while this test runs)."""
    if not lab.NETNS_DIR.exists():
        return set()
    return {p.name for p in lab.NETNS_DIR.iterdir() if p.name.startswith("mn-demo-")}


def test_demo_attaches_two_pods_to_two_networks_pings_and_cleans_up() -> None:
    namespaces_before, links_before = netns_names(), lab.link_names()

    done = subprocess.run(
        [str(MULTINIC), "demo"], capture_output=True, text=True, check=False, timeout=300
    )

    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for step in ("CHECK ok for all 4 attachments", "DEL ok, twice each", "nothing left behind"):
        assert step in out
    # Both pods on both networks, and a ping answered on each network.
    assert out.count("198.18.0.") >= 4
    assert out.count("198.18.1.") >= 4
    ping_rows = [
        line for line in out.splitlines() if "multinic-primary" in line or "dataplane" in line
    ]
    assert sum(" ok " in row for row in ping_rows) == 2, out
    assert netns_names() == namespaces_before
    assert lab.link_names() == links_before


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
