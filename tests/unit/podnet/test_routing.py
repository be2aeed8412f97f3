"""What the kernel should hold for the node list: host-gw or VXLAN per peer and family, MTU,
and the difference to what it holds (stale routes, FDB and neighbour entries go)."""

from __future__ import annotations

from ipaddress import ip_address, ip_network

import pytest

from multinic import dataplane as dp
from multinic.podnet.config import pod_mtu
from multinic.podnet.registry import NodeEntry
from multinic.podnet.routing import (
    RTPROT_PODNET,
    RouteTo,
    VtepPeer,
    direct_gateway,
    route_changes,
    vtep_changes,
    vtep_ip,
    vtep_mac,
    wanted,
)

UPLINK_V4 = [ip_network("10.10.1.0/24")]
UPLINK_DUAL = [ip_network("10.10.1.0/24"), ip_network("fd00:10::/64")]
ME = NodeEntry("node-1", ip_address("10.10.1.11"), (ip_network("10.32.1.0/24"),))


def node(
    n: int, *, v6_cidr: bool = False, v6_underlay: bool = False, far: bool = False
) -> NodeEntry:
    """Node ``n``: on the uplink's segment, or (``far``) on a routed one."""
    address = ip_address(f"10.10.{9 if far else 1}.{10 + n}")
    cidrs = (ip_network(f"10.32.{n}.0/24"),)
    if v6_cidr:
        cidrs += (ip_network(f"fd00:32:0:{n}::/64"),)
    extra = (address, ip_address(f"fd00:10::{n}")) if v6_underlay else (address,)
    return NodeEntry(f"node-{n}", address, cidrs, extra)


def plan(peers: list[NodeEntry], mode: str = "auto", subnets: list = UPLINK_V4):  # type: ignore[no-untyped-def,type-arg]
    return wanted(ME, peers, subnets, mode=mode, uplink="eth0", vxlan="mnvx0")


def test_a_peer_on_the_uplink_s_segment_is_routed_host_gw() -> None:
    peer = node(2)

    want = plan([ME, peer])

    assert want.routes == (RouteTo(peer.pod_cidrs[0], peer.address, "eth0", onlink=False),)
    assert want.vteps == ()


def test_a_peer_on_another_segment_goes_through_vxlan() -> None:
    peer = node(3, far=True)

    want = plan([peer])

    cidr = peer.pod_cidrs[0]
    assert want.routes == (RouteTo(cidr, ip_address("10.32.3.0"), "mnvx0", onlink=True),)
    assert want.vteps == (VtepPeer(ip_address("10.32.3.0"), "0e:6d:0a:0a:09:0d", peer.address),)


def test_auto_decides_per_peer() -> None:
    near, far = node(2), node(3, far=True)

    devices = {r.dst: r.device for r in plan([near, far]).routes}

    assert devices == {near.pod_cidrs[0]: "eth0", far.pod_cidrs[0]: "mnvx0"}


def test_a_forced_mode_overrides_adjacency() -> None:
    near, far = node(2), node(3, far=True)

    assert {r.device for r in plan([near, far], mode="vxlan").routes} == {"mnvx0"}
    host_gw = plan([near, far], mode="host-gw")
    assert {r.device for r in host_gw.routes} == {"eth0"} and host_gw.vteps == ()
    assert {r.gateway for r in host_gw.routes} == {near.address, far.address}


def test_this_node_gets_no_route_to_itself() -> None:
    assert plan([ME]).routes == ()


def test_dual_stack_on_one_segment_routes_both_families_host_gw() -> None:
    peer = node(2, v6_cidr=True, v6_underlay=True)

    want = plan([peer], subnets=UPLINK_DUAL)

    assert {(r.dst, r.gateway, r.device) for r in want.routes} == {
        (ip_network("10.32.2.0/24"), ip_address("10.10.1.12"), "eth0"),
        (ip_network("fd00:32:0:2::/64"), ip_address("fd00:10::2"), "eth0"),
    }
    assert want.vteps == ()


def test_an_ipv6_cidr_over_an_ipv4_underlay_goes_through_vxlan() -> None:
    peer = node(2, v6_cidr=True)  # no IPv6 underlay address

    want = plan([peer], subnets=UPLINK_DUAL)

    by_dst = {r.dst: r for r in want.routes}
    assert by_dst[ip_network("10.32.2.0/24")].device == "eth0"
    v6 = by_dst[ip_network("fd00:32:0:2::/64")]
    assert (v6.gateway, v6.device, v6.onlink) == (ip_address("fd00:32:0:2::"), "mnvx0", True)
    assert want.vteps == (
        VtepPeer(ip_address("fd00:32:0:2::"), vtep_mac(peer.address), peer.address),
    )


def test_an_ipv6_address_off_the_segment_is_not_adjacent() -> None:
    peer = node(2, v6_cidr=True, v6_underlay=True)

    want = plan([peer], subnets=UPLINK_V4)  # this node has no IPv6 on its uplink

    assert {r.device for r in want.routes if r.dst.version == 6} == {"mnvx0"}


def test_host_gw_without_an_address_of_the_family_has_no_route() -> None:
    peer = node(2, v6_cidr=True)

    want = plan([peer], mode="host-gw", subnets=UPLINK_DUAL)

    assert [r.dst.version for r in want.routes] == [4]
    assert direct_gateway(peer, peer.pod_cidrs[1], UPLINK_DUAL, "host-gw") is None


def test_a_dual_stack_vxlan_peer_has_one_fdb_entry_and_a_neighbour_per_family() -> None:
    peer = node(3, v6_cidr=True, far=True)

    todo = vtep_changes(set(), set(), plan([peer], subnets=UPLINK_DUAL).vteps)

    assert todo.fdb_new == {(vtep_mac(peer.address), peer.address)}
    assert todo.neighbours_new == {
        (ip_address("10.32.3.0"), vtep_mac(peer.address)),
        (ip_address("fd00:32:0:3::"), vtep_mac(peer.address)),
    }
    assert todo.fdb_gone == set() and todo.neighbours_gone == set()


def test_vtep_addresses_and_macs() -> None:
    assert vtep_ip(ip_network("10.32.7.0/24")) == ip_address("10.32.7.0")
    assert vtep_mac(ip_address("192.0.2.1")) == "0e:6d:c0:00:02:01"
    assert vtep_mac(ip_address("fd00:10::c000:201")) == "0e:6d:c0:00:02:01"


@pytest.mark.parametrize(
    ("mode", "version", "mtu"),
    [("host-gw", 4, 1500), ("auto", 4, 1450), ("vxlan", 4, 1450), ("vxlan", 6, 1430)],
)
def test_pod_mtu(mode: str, version: int, mtu: int) -> None:
    assert pod_mtu(1500, mode, version) == mtu


def kernel_route(dst: str, gateway: str, oif: int) -> dp.Route:
    return dp.Route(
        ip_network(dst), ip_address(gateway), oif, 254, None, 0, None, None, None, RTPROT_PODNET, 1
    )


INDEX = {"eth0": 2, "mnvx0": 5}


def test_route_changes_remove_the_stale_and_add_the_missing() -> None:
    held = [
        kernel_route("10.32.2.0/24", "10.10.1.12", 2),  # still wanted
        kernel_route("10.32.4.0/24", "10.10.1.14", 2),  # its node left
    ]
    want = plan([node(2), node(3)]).routes

    gone, new = route_changes(held, want, INDEX)

    assert [r.dst for r in gone] == [ip_network("10.32.4.0/24")]
    assert [r.dst for r in new] == [ip_network("10.32.3.0/24")]


def test_a_route_whose_way_changed_is_replaced() -> None:
    held = [kernel_route("10.32.3.0/24", "10.10.1.13", 2)]  # host-gw, now far away
    want = plan([node(3, far=True)]).routes

    gone, new = route_changes(held, want, INDEX)

    assert gone == held
    assert [(r.gateway, r.device) for r in new] == [(ip_address("10.32.3.0"), "mnvx0")]


def test_nothing_changes_when_the_kernel_holds_what_is_wanted() -> None:
    held = [
        kernel_route("10.32.2.0/24", "10.10.1.12", 2),
        kernel_route("10.32.3.0/24", "10.32.3.0", 5),
    ]
    want = plan([node(2), node(3, far=True)]).routes

    assert route_changes(held, want, INDEX) == ([], [])


def test_a_peer_that_left_loses_its_fdb_and_neighbour_entries() -> None:
    stays, leaves = node(3, far=True), node(4, far=True)
    fdb = {(vtep_mac(n.address), n.address) for n in (stays, leaves)}
    neighbours = {(vtep_ip(n.pod_cidrs[0]), vtep_mac(n.address)) for n in (stays, leaves)}

    todo = vtep_changes(fdb, neighbours, plan([stays]).vteps)

    assert todo.fdb_gone == {(vtep_mac(leaves.address), leaves.address)}
    assert todo.neighbours_gone == {(ip_address("10.32.4.0"), vtep_mac(leaves.address))}
    assert todo.fdb_new == set() and todo.neighbours_new == set()
