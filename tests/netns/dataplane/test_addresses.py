"""Addresses, IPv4 and IPv6, observed with `ip -j addr`."""

from __future__ import annotations

from ipaddress import IPv4Interface, IPv6Interface, ip_interface

import pytest

from multinic import dataplane as dp
from tests.netns.dataplane.conftest import Space, ip_addrs


@pytest.fixture
def eth0(node: Space, pod: Space) -> dp.Link:
    host, inside = dp.create_veth(node.ns, "veth-h", "eth0", peer_ns=pod.ns)
    dp.set_up(node.ns, host)
    dp.set_up(pod.ns, inside)
    return inside


def _global(space: Space, ifname: str) -> set[str]:
    return {
        f"{a['local']}/{a['prefixlen']}" for a in ip_addrs(space, ifname) if a["scope"] == "global"
    }


def test_add_ipv4_and_ipv6(pod: Space, eth0: dp.Link) -> None:
    dp.add_address(pod.ns, eth0, IPv4Interface("10.22.0.5/24"))
    dp.add_address(pod.ns, "eth0", IPv6Interface("fd00:22::5/64"), nodad=True)
    assert _global(pod, "eth0") == {"10.22.0.5/24", "fd00:22::5/64"}
    [v4] = [a for a in ip_addrs(pod, "eth0") if a["family"] == "inet"]
    assert v4["broadcast"] == "10.22.0.255"
    [v6] = [a for a in ip_addrs(pod, "eth0") if a["local"] == "fd00:22::5"]
    assert "tentative" not in v6 and v6.get("nodad") is True
    listed = dp.list_addresses(pod.ns, "eth0")
    assert {str(a) for a in listed if not a.is_link_local} == _global(pod, "eth0")
    assert dp.list_addresses(pod.ns, "eth0", version=4) == [IPv4Interface("10.22.0.5/24")]


def test_ipv6_with_dad_is_tentative_at_first(pod: Space, eth0: dp.Link) -> None:
    dp.add_address(pod.ns, eth0, IPv6Interface("fd00:22::6/64"))
    [seen] = [a for a in ip_addrs(pod, "eth0") if a["local"] == "fd00:22::6"]
    # DAD takes about a second on a link with carrier: the address starts tentative.
    assert seen.get("tentative") is True
    assert IPv6Interface("fd00:22::6/64") in dp.tentative_addresses(pod.ns, eth0)


def test_duplicate_address_is_an_error_naming_the_link(pod: Space, eth0: dp.Link) -> None:
    dp.add_address(pod.ns, eth0, IPv4Interface("10.22.0.5/24"))
    with pytest.raises(dp.AddressExistsError) as caught:
        dp.add_address(pod.ns, eth0, IPv4Interface("10.22.0.5/24"))
    assert (caught.value.interface, caught.value.netns) == ("eth0", pod.path)
    assert "10.22.0.5/24" in str(caught.value)


@pytest.mark.parametrize("text", ["10.22.0.5/24", "fd00:22::5/64"])
def test_delete_and_missing_ok(pod: Space, eth0: dp.Link, text: str) -> None:
    address = ip_interface(text)
    dp.add_address(pod.ns, eth0, address, nodad=True)
    assert dp.delete_address(pod.ns, eth0, address) is True
    assert _global(pod, "eth0") == set()
    assert dp.delete_address(pod.ns, eth0, address, missing_ok=True) is False
    with pytest.raises(dp.AddressNotFoundError):
        dp.delete_address(pod.ns, eth0, address)


def test_address_on_a_missing_link(pod: Space) -> None:
    with pytest.raises(dp.LinkNotFoundError) as caught:
        dp.add_address(pod.ns, "eth9", IPv4Interface("10.22.0.5/24"))
    assert (caught.value.interface, caught.value.netns) == ("eth9", pod.path)


def test_settle_waits_for_dad(pod: Space, eth0: dp.Link) -> None:
    dp.add_address(pod.ns, eth0, IPv6Interface("fd00:22::7/64"))
    dp.settle_addresses(pod.ns, eth0)
    [seen] = [a for a in ip_addrs(pod, "eth0") if a["local"] == "fd00:22::7"]
    assert "tentative" not in seen
    assert dp.tentative_addresses(pod.ns, eth0) == []


def test_settle_reports_failed_dad(node: Space, pod: Space, eth0: dp.Link) -> None:
    # The node end owns the address already: the pod's DAD sees the duplicate.
    dp.add_address(node.ns, "veth-h", IPv6Interface("fd00:22::8/64"), nodad=True)
    dp.add_address(pod.ns, eth0, IPv6Interface("fd00:22::8/64"))
    with pytest.raises(dp.DataplaneError, match="duplicate address detection failed") as caught:
        dp.settle_addresses(pod.ns, eth0)
    assert (caught.value.interface, caught.value.netns) == ("eth0", pod.path)
