"""multinic-macvlan in real namespaces: verbs, modes, MTU/MAC, rollback, STATUS, GC, runtime.

The plugin's host side is a scratch "node" namespace (tests.support.lower_plugins);
the master is a veth pair the test makes there (both ends up, so the macvlans have
carrier); addresses come from 198.18.80.0/20 and fd00:80::/48.
"""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from multinic.cni.config import parse_network_config_list
from multinic.cni.errors import CNIError
from multinic.cni.runtime import Runtime, RuntimeConf
from multinic.dataplane import host_netns
from multinic.lab import netns as lab
from multinic.plugins import lower
from multinic.plugins.install import install_plugins
from multinic.plugins.macvlan import PLUGIN
from tests.netns.conftest import REFERENCE_PLUGIN_DIR, unique
from tests.support.lower_plugins import (
    DUAL,
    V4,
    V6,
    Node,
    address_only,
    call,
    conf,
    host_local,
    kind_of,
    node_name,
    ok,
    on_node,
    ping,
    pod_links,
    reservations,
    scratch_node,
    with_prev,
)

V4_NET = "198.18.80.0/24"
V6_NET = "fd00:80::/64"
TYPE = "multinic-macvlan"


@pytest.fixture(autouse=True)
def node() -> Iterator[Node]:
    with scratch_node() as node:
        yield node


@pytest.fixture
def master(node: Node) -> str:
    name = unique("mnmv")
    lab.ip("link", "add", name, "type", "veth", "peer", "name", f"{name}p", netns=node.name)
    lab.ip("link", "set", name, "up", netns=node.name)
    lab.ip("link", "set", f"{name}p", "up", netns=node.name)
    return name


def node_links() -> set[str]:
    """The node's links other than loopback and the master pair."""
    return {n for n in lab.link_names(node_name()) if n != "lo" and not n.startswith("mnmv")}


def network(tmp_path: Path, master: str, stack: str = V4, **fields: Any) -> dict[str, Any]:
    ipam = host_local(tmp_path / "ipam", stack, V4_NET, V6_NET)
    return conf(TYPE, "mvnet", ipam, master=master, **fields)


def assert_nothing_left(pod: str, tmp_path: Path) -> None:
    assert pod_links(pod) == {"lo"}
    assert node_links() == set()
    assert reservations(tmp_path / "ipam", "mvnet") == set()


@pytest.mark.parametrize("stack", [V4, V6, DUAL])
def test_add_check_del_del(pod: str, master: str, tmp_path: Path, stack: str) -> None:
    config = network(tmp_path, master, stack)
    result = ok(PLUGIN, "ADD", config, pod)
    [iface] = result["interfaces"]
    assert iface["name"] == "net1" and iface["sandbox"] == str(lab.netns_path(pod))
    kind, data = kind_of(pod, "net1")
    assert (kind, data["mode"]) == ("macvlan", "bridge")
    seen = lab.ip_json("-d", "link", "show", "net1", netns=pod)[0]
    assert seen["address"] == iface["mac"] and "link_netnsid" in seen  # master on the node
    assert iface["mtu"] == seen["mtu"] == 1500
    wanted = {ip["address"] for ip in result["ips"]}
    assert {ipaddress.ip_interface(a).version for a in wanted} == (
        {4, 6} if stack == DUAL else {4 if stack == V4 else 6}
    )
    assert set(lab.addresses("net1", pod)) == wanted
    assert all(ip["interface"] == 0 for ip in result["ips"])
    for key, on in (("ipv4.conf", stack != V6), ("ipv6.conf", stack != V4)):
        notify = "arp_notify" if key.startswith("ipv4") else "ndisc_notify"
        value = lab.ip("netns", "exec", pod, "sysctl", "-n", f"net.{key}.net1.{notify}")
        assert value == ("1\n" if on else "0\n")
    assert len(reservations(tmp_path / "ipam", "mvnet")) == len(wanted)

    ok(PLUGIN, "CHECK", with_prev(config, result), pod)
    ok(PLUGIN, "DEL", with_prev(config, result), pod)
    assert_nothing_left(pod, tmp_path)
    ok(PLUGIN, "DEL", with_prev(config, result), pod)
    assert_nothing_left(pod, tmp_path)


def test_two_pods_on_one_master_in_bridge_mode_ping_each_other(
    pod: str, pod2: str, master: str, tmp_path: Path
) -> None:
    config = network(tmp_path, master, DUAL)
    first = ok(PLUGIN, "ADD", config, pod, cid="a")
    second = ok(PLUGIN, "ADD", config, pod2, cid="b")
    for ip in second["ips"]:
        ping(pod, address_only(ip["address"]))
    for ip in first["ips"]:
        ping(pod2, address_only(ip["address"]))
    ok(PLUGIN, "DEL", config, pod, cid="a")
    ok(PLUGIN, "DEL", config, pod2, cid="b")
    assert pod_links(pod) == pod_links(pod2) == {"lo"}


def neighbour_mac(pod: str, address: str) -> str | None:
    found = lab.ip_json("neigh", "show", address, "dev", "net1", netns=pod)
    return found[0].get("lladdr") if found else None


def test_a_reused_address_is_announced_to_neighbours(
    pod: str, pod2: str, master: str, tmp_path: Path
) -> None:
    # pod2 still caches a previous owner's MAC for the addresses pod gets next.
    config = network(tmp_path, master, DUAL)
    ok(PLUGIN, "ADD", config, pod2, cid="b")
    stale = "02:00:00:80:00:99"
    for address in ("198.18.80.50", "fd00:80::50"):
        lab.ip(
            "neigh", "replace", address, "lladdr", stale, "dev", "net1", "nud", "stale", netns=pod2
        )
    result = ok(PLUGIN, "ADD", config, pod, cid="a", args="IP=198.18.80.50,fd00:80::50")
    mac = result["interfaces"][0]["mac"]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and {
        neighbour_mac(pod2, "198.18.80.50"),
        neighbour_mac(pod2, "fd00:80::50"),
    } != {mac}:
        time.sleep(0.05)
    assert neighbour_mac(pod2, "198.18.80.50") == mac
    assert neighbour_mac(pod2, "fd00:80::50") == mac
    ok(PLUGIN, "DEL", config, pod, cid="a")
    ok(PLUGIN, "DEL", config, pod2, cid="b")


@pytest.mark.parametrize("mode", ["private", "vepa", "passthru"])
def test_modes_layer2_only(pod: str, master: str, mode: str) -> None:
    config = conf(TYPE, "l2net", master=master, mode=mode)
    result = ok(PLUGIN, "ADD", config, pod)
    assert "ips" not in result
    kind, data = kind_of(pod, "net1")
    assert (kind, data["mode"]) == ("macvlan", mode)
    assert "UP" in lab.ip_json("link", "show", "net1", netns=pod)[0]["flags"]
    ok(PLUGIN, "CHECK", with_prev(config, result), pod)
    # The same link checked against another mode is drift.
    other = "bridge" if mode != "bridge" else "private"
    status, err = call(PLUGIN, "CHECK", with_prev({**config, "mode": other}, result), pod)
    assert status == 1 and f"macvlan mode is {mode}, expected {other}" in err["msg"]
    ok(PLUGIN, "DEL", config, pod)
    assert pod_links(pod) == {"lo"}


def test_mtu_and_mac_from_config_args_and_runtime_config(pod: str, master: str) -> None:
    config = conf(TYPE, "l2net", master=master, mtu=1400, mac="02:00:00:80:00:01")
    result = ok(PLUGIN, "ADD", config, pod)
    seen = lab.ip_json("link", "show", "net1", netns=pod)[0]
    assert (seen["mtu"], seen["address"]) == (1400, "02:00:00:80:00:01")
    assert result["interfaces"][0]["mac"] == "02:00:00:80:00:01"
    ok(PLUGIN, "DEL", config, pod)

    # CNI_ARGS MAC= beats the config; runtimeConfig.mac (the capability) beats both.
    ok(PLUGIN, "ADD", config, pod, args="IgnoreUnknown=1;MAC=02:00:00:80:00:02")
    assert lab.ip_json("link", "show", "net1", netns=pod)[0]["address"] == "02:00:00:80:00:02"
    ok(PLUGIN, "DEL", config, pod)
    with_runtime = {**config, "runtimeConfig": {"mac": "02:00:00:80:00:03"}}
    ok(PLUGIN, "ADD", with_runtime, pod, args="MAC=02:00:00:80:00:02")
    assert lab.ip_json("link", "show", "net1", netns=pod)[0]["address"] == "02:00:00:80:00:03"
    ok(PLUGIN, "DEL", config, pod)
    assert pod_links(pod) == {"lo"}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"mtu": 9000}, "invalid MTU 9000, must be [0, master MTU(1500)]"),
        ({"mtu": -1}, "field 'mtu' must be between 0 and 65535"),
        ({"mode": "source"}, "field 'mode' must be one of bridge, private, vepa, passthru"),
        ({"mac": "02:00:00"}, "invalid MAC address"),
        ({"linkInContainer": "yes"}, "field 'linkInContainer' must be true or false"),
    ],
)
def test_bad_config_is_a_clear_error_and_leaves_nothing(
    pod: str, master: str, tmp_path: Path, fields: dict[str, Any], message: str
) -> None:
    status, err = call(PLUGIN, "ADD", network(tmp_path, master, **fields), pod)
    assert status == 1 and err["code"] == 7, err
    assert message in err["msg"]
    assert_nothing_left(pod, tmp_path)


def test_master_missing_leaves_nothing(pod: str, tmp_path: Path) -> None:
    status, err = call(PLUGIN, "ADD", network(tmp_path, "mnmv-none"), pod)
    assert status == 1 and err["code"] == 7
    assert "master 'mnmv-none' not found" in err["msg"]
    assert_nothing_left(pod, tmp_path)


def test_ipam_failing_leaves_nothing(pod: str, master: str, tmp_path: Path) -> None:
    config = {**network(tmp_path, master), "ipam": {"type": "no-such-ipam"}}
    status, err = call(PLUGIN, "ADD", config, pod)
    assert status == 1 and "no-such-ipam" in err["msg"]
    assert_nothing_left(pod, tmp_path)


def test_address_already_in_use_leaves_nothing(
    pod: str, pod2: str, master: str, tmp_path: Path
) -> None:
    config = network(tmp_path, master)
    ok(PLUGIN, "ADD", config, pod2, cid="holder")
    held = reservations(tmp_path / "ipam", "mvnet")
    [address] = held
    status, err = call(PLUGIN, "ADD", config, pod, cid="second", args=f"IP={address}")
    assert status == 1 and address in json.dumps(err)
    assert pod_links(pod) == {"lo"}
    assert reservations(tmp_path / "ipam", "mvnet") == held


def test_failure_after_addressing_releases_the_reservation(
    pod: str, master: str, tmp_path: Path
) -> None:
    # The pod already has a default route: adding IPAM's default route fails late,
    # after the link exists and addresses are reserved and assigned.
    lab.ip("link", "add", "up0", "type", "veth", "peer", "name", "up0p", netns=pod)
    lab.ip("link", "set", "up0", "up", netns=pod)
    lab.ip("addr", "add", "198.18.81.2/24", "dev", "up0", netns=pod)
    lab.ip("route", "add", "default", "via", "198.18.81.1", netns=pod)
    ipam = host_local(tmp_path / "ipam", V4, V4_NET, V6_NET, routes=[{"dst": "0.0.0.0/0"}])
    ipam["ranges"][0][0]["gateway"] = "198.18.80.1"
    status, err = call(PLUGIN, "ADD", conf(TYPE, "mvnet", ipam, master=master), pod)
    assert status == 1, err
    assert pod_links(pod) == {"lo", "up0", "up0p"}
    assert reservations(tmp_path / "ipam", "mvnet") == set()


def test_pod_ifname_taken_leaves_it_alone(pod: str, master: str, tmp_path: Path) -> None:
    lab.ip("link", "add", "net1", "type", "veth", "peer", "name", "net1p", netns=pod)
    status, err = call(PLUGIN, "ADD", network(tmp_path, master), pod)
    assert status == 1 and "net1" in err["details"] and "errno 17" in err["details"]
    assert kind_of(pod, "net1")[0] == "veth"
    assert pod_links(pod) == {"lo", "net1", "net1p"}
    assert reservations(tmp_path / "ipam", "mvnet") == set()


def test_check_detects_drift(pod: str, master: str, tmp_path: Path) -> None:
    config = network(tmp_path, master, DUAL, mtu=1400)
    result = ok(PLUGIN, "ADD", config, pod)
    checked = with_prev(config, result)
    lab.ip("link", "set", "net1", "mtu", "1300", netns=pod)
    status, err = call(PLUGIN, "CHECK", checked, pod)
    assert status == 1 and "has MTU 1300, the config says 1400" in err["msg"]
    lab.ip("link", "set", "net1", "mtu", "1400", netns=pod)
    ok(PLUGIN, "CHECK", checked, pod)
    v6 = next(ip["address"] for ip in result["ips"] if ":" in ip["address"])
    lab.ip("addr", "del", v6, "dev", "net1", netns=pod)
    status, err = call(PLUGIN, "CHECK", checked, pod)
    assert status == 1 and f"address {v6} is missing" in err["msg"]
    # Another interface name, or no prevResult, is an error too.
    status, err = call(PLUGIN, "CHECK", checked, pod, ifname="net2")
    assert status == 1 and "failed to find address" in err["msg"]  # IPAM holds none for net2
    no_ipam = {k: v for k, v in checked.items() if k != "ipam"}
    status, err = call(PLUGIN, "CHECK", no_ipam, pod, ifname="net2")
    assert status == 1 and "no interface 'net2'" in err["msg"]
    status, err = call(PLUGIN, "CHECK", config, pod)
    assert status == 1 and "CHECK needs a prevResult" in err["msg"]
    ok(PLUGIN, "DEL", checked, pod)
    status, err = call(PLUGIN, "CHECK", checked, pod)
    assert status == 1
    assert_nothing_left(pod, tmp_path)


def test_del_after_the_pod_is_gone_releases_addresses(master: str, tmp_path: Path) -> None:
    pod = unique("mnt-pod-")
    with lab.scratch_netns(pod):
        config = network(tmp_path, master, DUAL)
        result = ok(PLUGIN, "ADD", config, pod)
    assert reservations(tmp_path / "ipam", "mvnet") != set()
    ok(PLUGIN, "DEL", with_prev(config, result), pod, netns=str(lab.netns_path(pod)))
    ok(PLUGIN, "DEL", config, None, netns="")
    assert reservations(tmp_path / "ipam", "mvnet") == set()


def test_link_in_container_and_default_route_master(pod: str, tmp_path: Path) -> None:
    # The master lives in the pod and carries its default route: no "master" given.
    lab.ip("link", "add", "up0", "type", "veth", "peer", "name", "up0p", netns=pod)
    lab.ip("link", "set", "up0", "up", netns=pod)
    lab.ip("link", "set", "up0p", "up", netns=pod)
    lab.ip("addr", "add", "198.18.82.2/24", "dev", "up0", netns=pod)
    lab.ip("route", "add", "default", "via", "198.18.82.1", netns=pod)
    ipam = host_local(tmp_path / "ipam", V4, V4_NET, V6_NET)
    config = conf(TYPE, "mvnet", ipam, linkInContainer=True)
    result = ok(PLUGIN, "ADD", config, pod)
    seen = lab.ip_json("-d", "link", "show", "net1", netns=pod)[0]
    up0 = lab.ip_json("link", "show", "up0", netns=pod)[0]
    assert seen["link"] == "up0" and "link_netnsid" not in seen and up0["ifindex"]
    ok(PLUGIN, "CHECK", with_prev(config, result), pod)
    ok(PLUGIN, "DEL", config, pod)
    assert pod_links(pod) == {"lo", "up0", "up0p"}
    assert reservations(tmp_path / "ipam", "mvnet") == set()


def test_default_master_is_the_host_default_route_interface() -> None:
    defaults = lab.ip_json("route", "show", "default") or lab.ip_json(
        "-6", "route", "show", "default"
    )
    with host_netns() as host:
        if not defaults:
            with pytest.raises(lower.MasterNotFoundError):
                lower.default_route_interface(host)
        else:
            assert lower.default_route_interface(host) == defaults[0]["dev"]


def test_status_says_when_the_master_is_missing(master: str, tmp_path: Path) -> None:
    status, out = call(PLUGIN, "STATUS", network(tmp_path, master), None)
    assert (status, out) == (0, None)
    status, err = call(PLUGIN, "STATUS", network(tmp_path, "mnmv-none"), None)
    assert status == 1 and err["code"] == 50 and "mnmv-none" in err["msg"]


def test_gc_releases_addresses_of_attachments_no_longer_valid(
    pod: str, pod2: str, master: str, tmp_path: Path
) -> None:
    config = network(tmp_path, master)
    kept = ok(PLUGIN, "ADD", config, pod, cid="kept")
    ok(PLUGIN, "ADD", config, pod2, cid="stale")
    valid = {"cni.dev/valid-attachments": [{"containerID": "kept", "ifname": "net1"}]}
    ok(PLUGIN, "GC", {**config, **valid}, None)
    assert reservations(tmp_path / "ipam", "mvnet") == {address_only(kept["ips"][0]["address"])}
    ok(PLUGIN, "DEL", config, pod, cid="kept")
    ok(PLUGIN, "DEL", config, pod2, cid="stale")
    assert_nothing_left(pod, tmp_path)


# -- as an executable through our runtime ------------------------------------------------


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    bin_dir = tmp_path / "bin"
    install_plugins(str(bin_dir))
    yield Runtime([bin_dir, REFERENCE_PLUGIN_DIR], cache_dir=tmp_path / "cache")


@pytest.mark.parametrize(
    ("stack", "ipam_type", "version"),
    [
        (V4, "multinic-host-local", "1.1.0"),
        (V6, "host-local", "1.0.0"),
        (DUAL, "host-local", "1.0.0"),
    ],
)
def test_executable_through_the_runtime(
    pod: str,
    master: str,
    tmp_path: Path,
    runtime: Runtime,
    stack: str,
    ipam_type: str,
    version: str,
) -> None:
    ipam = {**host_local(tmp_path / "ipam", stack, V4_NET, V6_NET), "type": ipam_type}
    plugin = {"type": TYPE, "master": master, "capabilities": {"mac": True}, "ipam": ipam}
    net = parse_network_config_list({"cniVersion": version, "name": "mvnet", "plugins": [plugin]})
    rt = RuntimeConf(
        "cid-exe", str(lab.netns_path(pod)), "net1", capability_args={"mac": "02:00:00:80:00:09"}
    )
    # The runtime spawns the plugins from a thread in the node's namespace.
    result = on_node(lambda: runtime.add(net, rt))
    assert lab.ip_json("link", "show", "net1", netns=pod)[0]["address"] == "02:00:00:80:00:09"
    assert {str(ip.address) for ip in result.ips} == set(lab.addresses("net1", pod))
    on_node(lambda: runtime.check(net, rt))
    lab.ip("link", "set", "net1", "down", netns=pod)
    lab.ip("addr", "flush", "dev", "net1", netns=pod)
    with pytest.raises(CNIError, match="is missing"):
        on_node(lambda: runtime.check(net, rt))
    on_node(lambda: runtime.delete(net, rt))
    on_node(lambda: runtime.delete(net, rt))
    assert_nothing_left(pod, tmp_path)
