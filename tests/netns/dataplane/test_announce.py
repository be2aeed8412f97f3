"""Gratuitous ARP and unsolicited NA: the receiving kernel updates its neighbour entry.

The node side holds a stale entry with a wrong MAC for the pod's address; only a
valid announcement (right format, checksum, hop limit) makes its kernel replace
it with the pod's MAC. Observed with `ip -j neigh`.
"""

from __future__ import annotations

from ipaddress import IPv4Interface, IPv6Interface, ip_interface
from typing import Any

import pytest

from multinic import dataplane as dp
from multinic.lab import netns as lab
from tests.netns.dataplane.conftest import Space

WRONG_MAC = "02:00:00:00:00:99"


@pytest.fixture
def wire(node: Space, pod: Space) -> dp.Link:
    host, inside = dp.create_veth(node.ns, "veth-h", "eth0", peer_ns=pod.ns)
    dp.set_up(node.ns, host)
    dp.set_up(pod.ns, inside)
    # Let an announcement override an entry at once (the default lock time is 1 s).
    lab.ip("ntable", "change", "name", "arp_cache", "dev", "veth-h", "locktime", "0",
           netns=node.name)  # fmt: skip
    return inside


def _neigh(node: Space, address: str) -> dict[str, Any]:
    [entry] = lab.ip_json("neigh", "show", address, "dev", "veth-h", netns=node.name)
    return entry


def _stale_entry(node: Space, address: str) -> None:
    lab.ip("neigh", "add", address, "lladdr", WRONG_MAC, "dev", "veth-h", "nud", "stale",
           netns=node.name)  # fmt: skip
    assert _neigh(node, address)["lladdr"] == WRONG_MAC


def test_gratuitous_arp_updates_the_neighbour(node: Space, pod: Space, wire: dp.Link) -> None:
    dp.add_address(pod.ns, wire, IPv4Interface("10.70.0.5/24"))
    _stale_entry(node, "10.70.0.5")
    dp.send_gratuitous_arp(pod.ns, wire, IPv4Interface("10.70.0.5/24").ip)
    assert _neigh(node, "10.70.0.5")["lladdr"] == wire.mac


def test_unsolicited_na_updates_the_neighbour(node: Space, pod: Space, wire: dp.Link) -> None:
    dp.add_address(pod.ns, wire, IPv6Interface("fd00:70::5/64"), nodad=True)
    _stale_entry(node, "fd00:70::5")
    dp.send_unsolicited_na(pod.ns, wire, IPv6Interface("fd00:70::5/64").ip)
    assert _neigh(node, "fd00:70::5")["lladdr"] == wire.mac


def test_announce_both_reports_no_failures(node: Space, pod: Space, wire: dp.Link) -> None:
    addresses = [ip_interface("10.70.0.6/24"), ip_interface("fd00:70::6/64")]
    for address in addresses:
        dp.add_address(pod.ns, wire, address, nodad=True)
        _stale_entry(node, str(address.ip))
    assert dp.announce(pod.ns, "eth0", addresses) == []
    assert {_neigh(node, str(a.ip))["lladdr"] for a in addresses} == {wire.mac}


def test_failures_are_returned_not_raised(pod: Space) -> None:
    lab.ip("link", "add", "a0", "type", "veth", "peer", "name", "b0", netns=pod.name)
    # a0 is down: the kernel refuses to send, and announce says so.
    [failure] = dp.announce(pod.ns, "a0", [ip_interface("10.70.0.7/24")])
    assert isinstance(failure, dp.AnnounceError)
    assert (failure.interface, failure.netns) == ("a0", pod.path)
