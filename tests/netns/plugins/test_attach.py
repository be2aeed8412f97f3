"""Configuring a pod interface from a result, and CHECK's drift detection, in real namespaces."""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import ip_address, ip_interface, ip_network

import pytest

from multinic.cni.errors import InvalidConfigError
from multinic.cni.types import Interface, IPConfig, Result, Route
from multinic.dataplane import Netns, create_veth, delete_address, delete_route, open_netns
from multinic.lab import netns as lab
from multinic.plugins.attach import InterfaceDriftError, check_interface, configure_interface

RESULT = Result(
    "1.1.0",
    interfaces=(Interface("host0"), Interface("eth0", sandbox="/x")),
    ips=(
        IPConfig(ip_interface("198.18.60.5/24"), ip_address("198.18.60.1"), interface=1),
        IPConfig(ip_interface("fd00:60::5/64"), ip_address("fd00:60::1"), interface=1),
    ),
    routes=(
        Route(ip_network("0.0.0.0/0")),
        Route(ip_network("fd00:99::/64"), mtu=1300, advmss=1200, priority=50),
        Route(ip_network("198.18.61.0/24"), ip_address("198.18.60.254"), table=150),
    ),
)


@pytest.fixture
def pod_ns(pod: str) -> Iterator[Netns]:
    with open_netns(str(lab.netns_path(pod))) as ns:
        create_veth(ns, "host0", "eth0")
        yield ns


def test_configure_assigns_addresses_routes_and_brings_the_link_up(pod: str, pod_ns: Netns) -> None:
    failures = configure_interface(pod_ns, "eth0", RESULT)
    assert failures == []
    assert set(lab.addresses("eth0", pod)) >= {"198.18.60.5/24", "fd00:60::5/64"}
    link = lab.ip_json("link", "show", "eth0", netns=pod)[0]
    assert "UP" in link["flags"]
    default = lab.ip_json("-4", "route", "show", "default", netns=pod)[0]
    assert default["gateway"] == "198.18.60.1"
    six = lab.ip("-6", "route", "show", "fd00:99::/64", netns=pod)
    assert "via fd00:60::1" in six
    assert "mtu 1300" in six
    assert "advmss 1200" in six
    assert "metric 50" in six
    table = lab.ip_json("route", "show", "table", "150", netns=pod)[0]
    assert (table["dst"], table["gateway"]) == ("198.18.61.0/24", "198.18.60.254")
    # No duplicate address detection by default: usable at once, not tentative.
    assert "tentative" not in lab.ip("-6", "addr", "show", "eth0", netns=pod)
    check_interface(pod_ns, "eth0", RESULT)


def test_check_names_a_missing_address(pod_ns: Netns) -> None:
    configure_interface(pod_ns, "eth0", RESULT)
    delete_address(pod_ns, "eth0", ip_interface("fd00:60::5/64"))
    with pytest.raises(InterfaceDriftError, match=r"address fd00:60::5/64 is missing"):
        check_interface(pod_ns, "eth0", RESULT)


def test_check_names_a_missing_route(pod_ns: Netns) -> None:
    configure_interface(pod_ns, "eth0", RESULT)
    delete_route(pod_ns, ip_network("198.18.61.0/24"), table=150)
    with pytest.raises(InterfaceDriftError, match=r"route to 198.18.61.0/24 via 198.18.60.254"):
        check_interface(pod_ns, "eth0", RESULT)


def test_check_names_a_changed_mac(pod_ns: Netns) -> None:
    configure_interface(pod_ns, "eth0", RESULT)
    stale = RESULT._replace(
        interfaces=(Interface("host0"), Interface("eth0", mac="02:00:00:00:00:01", sandbox="/x"))
    )
    with pytest.raises(InterfaceDriftError, match="has MAC"):
        check_interface(pod_ns, "eth0", stale)


def test_an_ip_with_an_invalid_interface_index_is_refused(pod_ns: Netns) -> None:
    bad = RESULT._replace(ips=(IPConfig(ip_interface("198.18.60.5/24"), interface=7),))
    with pytest.raises(InvalidConfigError, match="invalid interface index 7"):
        configure_interface(pod_ns, "eth0", bad)
