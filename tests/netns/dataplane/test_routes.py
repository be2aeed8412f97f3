"""Routes with CNI 1.1's fields, IPv4 and IPv6, observed with `ip -j route`."""

from __future__ import annotations

from ipaddress import IPv4Interface, IPv6Interface, ip_address, ip_network
from typing import Any

import pytest

from multinic import dataplane as dp
from multinic.lab import netns as lab
from tests.netns.dataplane.conftest import Space


@pytest.fixture
def eth0(node: Space, pod: Space) -> dp.Link:
    host, inside = dp.create_veth(node.ns, "veth-h", "eth0", peer_ns=pod.ns)
    dp.set_up(node.ns, host)
    dp.set_up(pod.ns, inside)
    dp.add_address(pod.ns, inside, IPv4Interface("10.30.0.5/24"))
    dp.add_address(pod.ns, inside, IPv6Interface("fd00:30::5/64"), nodad=True)
    return inside


def ip_routes(space: Space, *args: str) -> list[dict[str, Any]]:
    return lab.ip_json(*args, "route", "show", "table", "all", netns=space.name)


def _find(routes: list[dict[str, Any]], dst: str) -> dict[str, Any]:
    [route] = [r for r in routes if r["dst"] == dst]
    return route


def test_ipv4_route_with_table_metric_mtu_advmss(pod: Space, eth0: dp.Link) -> None:
    dp.add_route(
        pod.ns, ip_network("192.168.7.0/24"), gateway=ip_address("10.30.0.1"), oif=eth0,
        table=101, priority=300, mtu=1400, advmss=1360, src=ip_address("10.30.0.5"),
    )  # fmt: skip
    seen = _find(ip_routes(pod, "-4"), "192.168.7.0/24")
    assert (seen["gateway"], seen["dev"], seen["table"], seen["metric"]) == (
        "10.30.0.1", "eth0", "101", 300,
    )  # fmt: skip
    assert seen["prefsrc"] == "10.30.0.5"
    assert seen["metrics"] == [{"mtu": 1400, "advmss": 1360}]
    [ours] = dp.list_routes(pod.ns, table=101)
    assert (ours.gateway, ours.priority, ours.mtu, ours.advmss) == (
        ip_address("10.30.0.1"), 300, 1400, 1360,
    )  # fmt: skip


def test_ipv6_default_route(pod: Space, eth0: dp.Link) -> None:
    dp.add_route(pod.ns, ip_network("::/0"), gateway=ip_address("fd00:30::1"), oif="eth0")
    seen = _find(ip_routes(pod, "-6"), "default")
    assert (seen["gateway"], seen["dev"]) == ("fd00:30::1", "eth0")
    [ours] = [r for r in dp.list_routes(pod.ns, version=6) if r.dst.prefixlen == 0]
    assert ours.gateway == ip_address("fd00:30::1") and ours.oif == eth0.ifindex


def test_ipv4_default_and_on_link_scope(pod: Space, eth0: dp.Link) -> None:
    dp.add_route(pod.ns, ip_network("0.0.0.0/0"), gateway=ip_address("10.30.0.1"))
    dp.add_route(pod.ns, ip_network("10.40.0.0/16"), oif=eth0)
    routes = ip_routes(pod, "-4")
    assert _find(routes, "default")["gateway"] == "10.30.0.1"
    assert _find(routes, "10.40.0.0/16")["scope"] == "link"


def test_duplicate_route_replace_and_delete(pod: Space, eth0: dp.Link) -> None:
    dst = ip_network("192.168.8.0/24")
    dp.add_route(pod.ns, dst, gateway=ip_address("10.30.0.1"))
    with pytest.raises(dp.RouteExistsError) as caught:
        dp.add_route(pod.ns, dst, gateway=ip_address("10.30.0.1"))
    assert caught.value.netns == pod.path and "192.168.8.0/24" in str(caught.value)
    dp.replace_route(pod.ns, dst, gateway=ip_address("10.30.0.2"))
    assert _find(ip_routes(pod, "-4"), "192.168.8.0/24")["gateway"] == "10.30.0.2"
    assert dp.delete_route(pod.ns, dst) is True
    assert not [r for r in ip_routes(pod, "-4") if r["dst"] == "192.168.8.0/24"]
    assert dp.delete_route(pod.ns, dst, missing_ok=True) is False
    with pytest.raises(dp.RouteNotFoundError):
        dp.delete_route(pod.ns, dst)


def test_unreachable_gateway_is_a_kernel_error_naming_the_namespace(
    pod: Space, eth0: dp.Link
) -> None:
    with pytest.raises(dp.NetlinkError) as caught:
        dp.add_route(pod.ns, ip_network("192.168.9.0/24"), gateway=ip_address("172.31.0.1"))
    assert caught.value.netns == pod.path and caught.value.errno is not None
    assert not [r for r in ip_routes(pod, "-4") if r["dst"] == "192.168.9.0/24"]


def test_list_routes_matches_ip(pod: Space, eth0: dp.Link) -> None:
    dp.add_route(pod.ns, ip_network("192.168.10.0/24"), gateway=ip_address("10.30.0.1"))
    ours = {str(r.dst) for r in dp.list_routes(pod.ns, version=4)}
    theirs = {r["dst"] for r in lab.ip_json("-4", "route", "show", netns=pod.name)}
    assert {d.replace("0.0.0.0/0", "default") for d in ours} == theirs


def test_list_routes_of_every_table_and_one_link(node: Space, pod: Space, eth0: dp.Link) -> None:
    dp.create_veth(pod.ns, "eth1", "peer1")
    dp.set_up(pod.ns, "eth1")
    dp.add_route(pod.ns, ip_network("10.80.0.0/16"), oif="eth1", table=202)
    dp.add_route(pod.ns, ip_network("10.81.0.0/16"), oif=eth0)
    every = {(str(r.dst), r.table) for r in dp.list_routes(pod.ns, version=4, table=None)}
    assert {("10.80.0.0/16", 202), ("10.81.0.0/16", 254)} <= every
    assert any(table == 255 for _, table in every)  # the local table is in "every"
    on_eth1 = dp.list_routes(pod.ns, table=None, oif="eth1", version=4)
    assert {str(r.dst) for r in on_eth1} == {
        r["dst"] for r in ip_routes(pod, "-4") if r.get("dev") == "eth1" and r["dst"] != "default"
    }
