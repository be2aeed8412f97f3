"""podnet's routes in a real namespace: one peer the kernel refuses costs no other peer."""

from __future__ import annotations

from ipaddress import ip_address, ip_interface, ip_network

from multinic import dataplane as dp
from multinic.lab import netns as lab
from multinic.podnet.routing import RouteTo, Wanted, apply
from tests.netns.dataplane.conftest import Space

UPLINK = "upl0"


def podnet_routes(space: Space) -> dict[str, str]:
    """dst -> gateway of the namespace's routes of protocol 77, seen by iproute2."""
    held = lab.ip_json("route", "show", "proto", "77", netns=space.name)
    return {r["dst"]: r["gateway"] for r in held}


def test_a_peer_off_every_segment_is_reported_and_the_others_are_routed(node: Space) -> None:
    dp.create_veth(node.ns, UPLINK, "upl1")
    dp.add_address(node.ns, UPLINK, ip_interface("10.10.1.11/24"))
    for name in (UPLINK, "upl1"):
        dp.set_up(node.ns, name)
    good = RouteTo(ip_network("10.32.2.0/24"), ip_address("10.10.1.12"), UPLINK, onlink=False)
    # Not on upl0's segment and not onlink: the kernel answers "Nexthop has invalid gateway".
    bad = RouteTo(ip_network("10.32.3.0/24"), ip_address("10.99.0.13"), UPLINK, onlink=False)

    changed = apply(node.ns, Wanted(routes=(bad, good), vteps=()), None)

    assert podnet_routes(node) == {"10.32.2.0/24": "10.10.1.12"}
    assert [c for c in changed if "failed" in c] == [
        next(c for c in changed if c.startswith("route 10.32.3.0/24"))
    ]
    # The next round tries the refused peer again and leaves the routed one alone.
    again = apply(node.ns, Wanted(routes=(bad, good), vteps=()), None)
    assert len(again) == 1 and again[0].startswith("route 10.32.3.0/24") and "failed" in again[0]
