"""The lab end to end: 3 nodes, host-gw and VXLAN, and the failure drills.

Every lab here has its own name (so concurrent runs never meet) and is
removed by ``run.down`` however the test ends; the last check of each test
is that nothing of it is left: no namespace with its prefix, no state.
"""

from __future__ import annotations

import dataclasses
import subprocess
import threading
import time
from typing import Any

import pytest
import yaml

from multinic.lab import cluster, run
from multinic.lab import netns as nsutil
from multinic.lab.errors import LabError
from multinic.lab.topology import LabLayout, NodeLayout
from tests.e2e.lab.helpers import block_nodes, eventually, failed, fdb, routes
from tests.support.labs import leftovers

pytestmark = pytest.mark.e2e


def _up(name: str, **spec: Any) -> LabLayout:
    return run.up(run.LabSpec(name=name, **spec)).layout


def test_host_gw_lab_every_pod_reaches_every_pod(lab_name: str) -> None:
    layout = _up(lab_name, nodes=3, pods=2, secondaries=2, overlay="host-gw")

    assert failed(lab_name) == []
    node = layout.nodes[0]
    held = routes(node)
    assert len(held) == 2  # the two other nodes' /24s, straight to their addresses
    assert {r["dev"] for r in held} == {layout.management}
    assert {r["gateway"] for r in held} == {str(n.address.ip) for n in layout.nodes[1:]}
    tables = subprocess.run(
        ["ip", "netns", "exec", node.netns, "nft", "list", "table", "inet", "multinic_podnet"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert f"snat ip to {node.address.ip}" in tables
    assert all(block in tables for block in layout.pod_block)
    # multinic-ipam claimed blocks for the daemons' node names, not the host's (NODENAME)
    assert block_nodes(lab_name) == {n.name for n in layout.nodes}

    run.down(lab_name)
    assert leftovers(lab_name) == []


def test_vxlan_lab_and_a_node_that_leaves(lab_name: str) -> None:
    layout = _up(lab_name, nodes=3, pods=2, secondaries=1, overlay="vxlan")

    assert failed(lab_name) == []
    first, _, third = layout.nodes
    held = routes(first)
    assert {r["dev"] for r in held} == {"mnvx0"} and len(held) == 2
    assert {e["dst"] for e in fdb(first)} == {str(n.address.ip) for n in layout.nodes[1:]}
    mtu = nsutil.ip_json("link", "show", "mnvx0", netns=first.netns)[0]["mtu"]
    assert mtu == 1500 - 50

    run.remove_node(lab_name, third.name)

    gone = str(third.address.ip)
    for node in layout.nodes[:2]:
        assert eventually(lambda n=node: gone not in {e["dst"] for e in fdb(n)})
        assert eventually(lambda n=node: len(routes(n)) == 1)
        neighbours = nsutil.ip_json("neigh", "show", "dev", "mnvx0", netns=node.netns)
        assert len(neighbours) == 1
    assert not nsutil.netns_path(third.netns).exists()
    remaining = {p for n in layout.nodes[:2] for p in n.pods}
    assert failed(lab_name, lambda p: p.source in remaining and p.target in remaining) == []


DUAL_STACK_FABRIC = run.DEFAULT_FABRIC.with_name("fabric-dual-stack.yaml")


def _routes6(node: NodeLayout) -> list[dict[str, Any]]:
    return [
        r
        for r in nsutil.ip_json("-6", "route", "show", "proto", "77", netns=node.netns)
        if not r["dst"].startswith("fe80")
    ]


def _families(node: NodeLayout) -> list[bool]:
    """Whether each of the vxlan's neighbour entries is IPv6, sorted."""
    neighbours = nsutil.ip_json("neigh", "show", "dev", "mnvx0", netns=node.netns)
    return sorted(":" in e["dst"] for e in neighbours)


@pytest.mark.parametrize("overlay", ["host-gw", "vxlan"])
def test_dual_stack_pods_reach_each_other_over_ipv6_across_nodes(
    lab_name: str, overlay: str
) -> None:
    layout = _up(
        lab_name, fabric=DUAL_STACK_FABRIC, nodes=3, pods=2, secondaries=1, overlay=overlay
    )

    results = run.check(lab_name)
    assert [p for p in results if not p.ok] == []
    across6 = [
        p for p in results if p.network == "primary (IPv6)" and p.source_node != p.target_node
    ]
    assert len(across6) == 6 * 4 and all(":" in p.address for p in across6)
    first, *others = layout.nodes
    routes = _routes6(first)
    assert len(routes) == 2 and all(r["dst"].startswith("fd00:32:") for r in routes)
    if overlay == "host-gw":  # the peers' IPv6 management addresses, on the shared segment
        assert {r["gateway"] for r in routes} == {str(n.address6.ip) for n in others if n.address6}
        assert {r["dev"] for r in routes} == {layout.management}
    else:  # over the IPv4 underlay: one FDB entry per peer, a neighbour per peer and family
        assert {r["dev"] for r in routes} == {"mnvx0"}
        assert sorted(e["dst"] for e in fdb(first)) == sorted(str(n.address.ip) for n in others)
        assert _families(first) == [False, False, True, True]
    egress = subprocess.run(
        ["ip", "netns", "exec", first.netns, "nft", "list", "table", "inet", "multinic_podnet"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    v6_action = f"snat ip6 to {first.address6.ip}" if first.address6 else "masquerade"
    assert "ip6 saddr fd00:32:" in egress and v6_action in egress

    run.remove_node(lab_name, others[-1].name)  # its IPv6 route (and VTEP) go from the others

    assert eventually(lambda: len(_routes6(first)) == 1)
    if overlay == "vxlan":
        assert eventually(lambda: len(fdb(first)) == 1)
        assert eventually(lambda: _families(first) == [False, True])


def test_a_rebooted_node_s_addresses_are_reclaimed_by_gc(lab_name: str) -> None:
    layout = _up(lab_name, nodes=2, pods=2, secondaries=2)
    state, _, paths = run.require(lab_name)
    lost = layout.nodes[1]

    cluster.stop_daemon(state.data["daemons"][lost.name], paths.config(lost.name), kill=True)
    for pod in lost.pods:  # the node "reboots": its pods' namespaces are gone, no DEL ever came
        nsutil.delete_netns(layout.pod_netns(pod))
    held_before = run.held(lab_name)

    released = run.gc_secondaries(lab_name)

    lost_ids = {f"{lab_name}-{pod}" for pod in lost.pods}
    for network, owners in released.items():
        assert {o.split("/")[0] for o in owners} == lost_ids, network
    for network, owners in run.held(lab_name).items():
        assert {o.split("/")[0] for o in owners} == {
            f"{lab_name}-{p}" for p in layout.nodes[0].pods
        }
        assert len(owners) == len(held_before[network]) - len(lost.pods)


def _burst_pods(layout: LabLayout, node: NodeLayout, count: int) -> NodeLayout:
    """``count`` more Pod objects on ``node`` (in their own file of the objects dir)."""
    names = tuple(f"burst-{i}" for i in range(count))
    paths = cluster.LabPaths(layout.root)
    pods = [cluster.pod_object(layout, node.name, pod) for pod in names]
    (paths.objects / "burst.yaml").write_text(yaml.safe_dump_all(pods))
    return dataclasses.replace(node, pods=names)


def test_a_daemon_killed_during_a_burst(lab_name: str) -> None:
    layout = _up(lab_name, nodes=2, pods=2, secondaries=1)
    state, _, paths = run.require(lab_name)
    node = layout.nodes[0]
    burst = _burst_pods(layout, node, 8)
    outcomes: list[str] = []

    for pod in burst.pods:
        state.add_namespace(layout.pod_netns(pod))
        nsutil.create_netns(layout.pod_netns(pod))

    def add_one(pod: str) -> None:
        try:
            cluster.shim(layout, node, pod, "ADD", paths)
            outcomes.append("ok")
        except LabError as exc:
            outcomes.append(str(exc))

    threads = [threading.Thread(target=add_one, args=(p,)) for p in burst.pods]
    for thread in threads:
        thread.start()
    time.sleep(0.15)
    cluster.stop_daemon(state.data["daemons"][node.name], paths.config(node.name), kill=True)
    pid = cluster.start_daemon(layout, node, paths, state)
    cluster.wait_daemon(node, paths, pid, 30)
    for thread in threads:
        thread.join(timeout=120)

    assert len(outcomes) == len(burst.pods)
    for failure in (o for o in outcomes if o != "ok"):
        assert "code" in failure  # a clean CNI error, not a hang or a traceback
    originals = {p for n in layout.nodes for p in n.pods}
    assert failed(lab_name, lambda p: p.source in originals and p.target in originals) == []

    problems = cluster.delete_pods(layout, [(node, p) for p in burst.pods], paths)
    assert problems == []
    run.gc_secondaries(lab_name)
    expected = {f"{lab_name}-{p}/net1" for p in originals}
    assert {o for owners in run.held(lab_name).values() for o in owners} == expected
    host_local = paths.node(node.name) / "podnet" / "host-local" / "cluster"
    reserved = {p.name for p in host_local.iterdir() if p.name[0].isdigit()}
    assert len(reserved) == len(node.pods)
    links = {link["ifname"] for link in nsutil.ip_json("link", "show", netns=node.netns)}
    veths = {n for n in links if n.startswith("veth")}
    assert len(veths) == len(node.pods)
