"""The lab with the seed's secondary networks, ipvlan l2 and l3, on the guest's kernel.

`multinic lab up --secondary-type planned` as the API does it: 2 nodes x 2 pods of
the example fabric's edge-1 cluster, whose plan attaches n3 as ipvlan l2 on eth1 and
n6 as ipvlan l3 on eth2. One test doing a lot: Python is ~20x slower in the guest.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from multinic.lab import netns as nsutil
from multinic.lab import run
from multinic.lab.probe import ping_many
from multinic.lab.topology import LabLayout
from tests.support.labs import leftovers, temporary_lab


@pytest.fixture
def lab_name() -> Iterator[str]:
    with temporary_lab() as name:
        yield name


def _link(layout: LabLayout, pod: str, ifname: str) -> tuple[str, str]:
    (link,) = nsutil.ip_json("-d", "link", "show", ifname, netns=layout.pod_netns(pod))
    info = link["linkinfo"]
    return info["info_kind"], info["info_data"]["mode"]


def test_lab_with_ipvlan_l2_and_l3_secondaries(lab_name: str) -> None:
    spec = run.LabSpec(name=lab_name, nodes=2, pods=2, secondaries=2, secondary_type="planned")
    layout = run.up(spec).layout

    assert [(s.name, *layout.link(s)) for s in layout.secondaries] == [
        ("n3", "ipvlan", "l2"),
        ("n6", "ipvlan", "l3"),
    ]
    for _, pod in layout.all_pods():
        assert _link(layout, pod, "net1") == ("ipvlan", "l2")
        assert _link(layout, pod, "net2") == ("ipvlan", "l3")
    probes = run.check(lab_name)
    assert len(probes) == 3 * 4 * 3  # primary, n3, n6; every pod to the 3 others
    assert [p for p in probes if not p.ok] == []

    # ipvlan l3 answers no ARP: the lab routed each node's n6 pods from the other node.
    first, second = layout.nodes
    _, _, paths = run.require(lab_name)
    n6 = {pod: nets["n6"] for pod, nets in run.addresses(layout, paths).items()}
    routes = nsutil.ip_json("route", "show", "dev", "eth2", netns=second.netns)
    assert sorted(r["dst"] for r in routes) == sorted(n6[p] for p in first.pods)
    assert {r["gateway"] for r in routes} == {str(first.address.ip)}
    # Without them the second node cannot send its pods' answers back; same-node n6 still works.
    for route in routes:
        nsutil.ip("route", "delete", route["dst"], "dev", "eth2", netns=second.netns)
    source, neighbour = first.pods
    targets = [n6[neighbour], *(n6[p] for p in second.pods)]
    answered = ping_many(str(nsutil.netns_path(layout.pod_netns(source))), targets, attempts=3)
    assert answered == [True, False, False]
    # Nor does a node reach its own pods through their master, even with a route to them.
    nsutil.ip("route", "add", f"{n6[source]}/32", "dev", "eth2", netns=first.netns)
    node_ns = str(nsutil.netns_path(first.netns))
    assert ping_many(node_ns, [n6[source]], attempts=3) == [False]

    run.down(lab_name)
    assert leftovers(lab_name) == []
