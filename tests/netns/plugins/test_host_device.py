"""multinic-host-device in real namespaces: a veth end stands in for the host's device.

The plugin's host side is a scratch "node" namespace (tests.support.lower_plugins),
where the device lives; "the host" below means that namespace.

Addresses from 198.18.92.0/24 and fd00:80:92::/64 (the macvlan block, 198.18.80.0/20).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from multinic.cni.config import parse_network_config_list
from multinic.cni.errors import CNIError
from multinic.cni.runtime import Runtime, RuntimeConf
from multinic.lab import netns as lab
from multinic.plugins.host_device import PLUGIN
from multinic.plugins.install import install_plugins
from tests.netns.conftest import REFERENCE_PLUGIN_DIR, unique
from tests.support.lower_plugins import (
    DUAL,
    V4,
    V6,
    Node,
    call,
    conf,
    host_local,
    link,
    node_name,
    ok,
    on_node,
    pod_links,
    reservations,
    scratch_node,
    with_prev,
)

V4_NET = "198.18.92.0/24"
V6_NET = "fd00:80:92::/64"
TYPE = "multinic-host-device"
MTU = 1450


@pytest.fixture(autouse=True)
def node() -> Iterator[Node]:
    with scratch_node() as node:
        yield node


@pytest.fixture
def device(node: Node) -> str:
    name = unique("mnhd")
    lab.ip(
        "link", "add", name, "mtu", str(MTU), "type", "veth", "peer", "name", f"{name}p",
        netns=node.name,
    )  # fmt: skip
    lab.ip("link", "set", name, "up", netns=node.name)
    lab.ip("link", "set", f"{name}p", "up", netns=node.name)
    return name


def node_links() -> set[str]:
    return lab.link_names(node_name())


def network(tmp_path: Path, stack: str = V4, **fields: Any) -> dict[str, Any]:
    return conf(TYPE, "hdnet", host_local(tmp_path / "ipam", stack, V4_NET, V6_NET), **fields)


def held(tmp_path: Path) -> set[str]:
    return reservations(tmp_path / "ipam", "hdnet")


def on_host(name: str) -> dict[str, Any]:
    """The device on the host (the node), as `ip -d -j link` shows it."""
    return link(node_name(), name)


def state(name: str) -> tuple[Any, ...]:
    """What the plugin may change about the device: name, MTU, MAC, flags, alias."""
    seen = on_host(name)
    return seen["ifname"], seen["mtu"], seen["address"], seen["flags"], seen.get("ifalias")


def assert_back_on_host(name: str, pod: str | None, *, up: bool) -> None:
    seen = on_host(name)
    assert seen["mtu"] == MTU
    assert ("UP" in seen["flags"]) == up
    if pod is not None:
        assert pod_links(pod) == {"lo"}


@pytest.mark.parametrize("stack", [V4, V6, DUAL])
def test_add_check_del_del(pod: str, device: str, tmp_path: Path, stack: str) -> None:
    mac = on_host(device)["address"]
    config = network(tmp_path, stack, device=device)
    result = ok(PLUGIN, "ADD", config, pod)
    assert device not in node_links()
    seen = link(pod, "net1")
    assert (seen["address"], seen["mtu"], seen["ifalias"]) == (mac, MTU, device)
    assert "UP" in seen["flags"]
    assert result["interfaces"] == [
        {"name": "net1", "mac": mac, "mtu": MTU, "sandbox": str(lab.netns_path(pod))}
    ]
    assert set(lab.addresses("net1", pod)) == {ip["address"] for ip in result["ips"]}
    checked = with_prev(config, result)
    ok(PLUGIN, "CHECK", checked, pod)

    lab.ip("link", "set", "net1", "mtu", "1300", netns=pod)  # the pod changed it: DEL restores
    ok(PLUGIN, "DEL", checked, pod)
    assert_back_on_host(device, pod, up=False)  # left down, as the reference
    assert on_host(device)["ifalias"] == device
    assert held(tmp_path) == set()
    ok(PLUGIN, "DEL", checked, pod)
    assert_back_on_host(device, pod, up=False)


def test_by_hwaddr_layer2_only(pod: str, device: str) -> None:
    mac = on_host(device)["address"]
    config = conf(TYPE, "hdnet", hwaddr=mac.upper())
    result = ok(PLUGIN, "ADD", config, pod)
    assert "ips" not in result and link(pod, "net1")["address"] == mac
    ok(PLUGIN, "CHECK", with_prev(config, result), pod)
    ok(PLUGIN, "DEL", with_prev(config, result), pod)
    assert_back_on_host(device, pod, up=False)


def test_device_the_kernel_already_returned_is_renamed_back(device: str, tmp_path: Path) -> None:
    # When a pod's namespace is destroyed the kernel moves a physical device back to
    # the host, keeping the pod's name (or devN) and the alias; a veth would die with
    # the namespace, so the test moves it back the way the kernel would, then deletes
    # the namespace.
    pod = unique("mnt-pod-")
    with lab.scratch_netns(pod):
        config = network(tmp_path, DUAL, device=device)
        result = ok(PLUGIN, "ADD", config, pod)
        lab.ip("link", "set", "net1", "mtu", "1300", netns=pod)
        lab.ip("link", "set", "net1", "netns", node_name() or "1", netns=pod)
    assert on_host("net1")["ifalias"] == device
    ok(PLUGIN, "DEL", with_prev(config, result), None, netns=str(lab.netns_path(pod)))
    assert "net1" not in node_links()
    assert_back_on_host(device, None, up=False)
    assert held(tmp_path) == set()
    ok(PLUGIN, "DEL", with_prev(config, result), None, netns="")
    assert_back_on_host(device, None, up=False)


def test_gc_renames_a_returned_device_and_releases_addresses(
    pod: str, device: str, tmp_path: Path
) -> None:
    config = network(tmp_path, V4, device=device)
    ok(PLUGIN, "ADD", config, pod, cid="gone")
    lab.ip("link", "set", "net1", "netns", node_name() or "1", netns=pod)
    lab.ip("link", "set", "net1", "name", "dev77", netns=node_name())  # as the kernel names a clash
    ok(PLUGIN, "GC", {**config, "cni.dev/valid-attachments": []}, None)
    assert "dev77" not in node_links()
    assert_back_on_host(device, pod, up=False)
    assert held(tmp_path) == set()


def test_failures_leave_the_device_as_it_was(pod: str, device: str, tmp_path: Path) -> None:
    before = state(device)
    config = network(tmp_path, device=device)
    # Device missing.
    status, err = call(PLUGIN, "ADD", network(tmp_path, device="mnhd-none"), pod)
    assert status == 1 and "failed to find host device 'mnhd-none'" in err["msg"]
    # IPAM fails.
    status, err = call(PLUGIN, "ADD", {**config, "ipam": {"type": "no-such-ipam"}}, pod)
    assert status == 1 and "no-such-ipam" in err["msg"]
    assert state(device) == before and pod_links(pod) == {"lo"}
    # Address already in use.
    holder = network(tmp_path, device=f"{device}p")
    taken = ok(PLUGIN, "ADD", holder, pod, cid="holder", ifname="held1")
    address = taken["ips"][0]["address"].split("/")[0]
    status, err = call(PLUGIN, "ADD", config, pod, cid="second", args=f"IP={address}")
    assert status == 1 and address in str(err)
    assert state(device) == before and held(tmp_path) == {address}
    # The pod's interface name is taken: nothing is touched.
    status, err = call(PLUGIN, "ADD", config, pod, cid="third", ifname="held1")
    assert status == 1 and "held1" in err["details"]
    assert state(device) == before and pod_links(pod) == {"lo", "held1"}
    ok(PLUGIN, "DEL", holder, pod, cid="holder", ifname="held1")
    assert on_host(f"{device}p")["ifalias"] == f"{device}p" and held(tmp_path) == set()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, 'specify either "device", "hwaddr", "kernelpath" or "pciBusID"'),
        ({"hwaddr": "zz"}, "field 'hwaddr' is not a MAC address"),
        ({"kernelpath": "/tmp/x"}, "field 'kernelpath' must be absolute and begin with"),
        ({"device": 7}, "field 'device' must be a string"),
    ],
)
def test_bad_config(pod: str, tmp_path: Path, fields: dict[str, Any], message: str) -> None:
    status, err = call(PLUGIN, "ADD", network(tmp_path, **fields), pod)
    assert status == 1 and err["code"] == 7 and message in err["msg"]
    assert pod_links(pod) == {"lo"} and held(tmp_path) == set()


def test_del_waits_when_the_original_name_is_taken(pod: str, device: str, tmp_path: Path) -> None:
    config = network(tmp_path, device=device)
    result = ok(PLUGIN, "ADD", config, pod)
    lab.ip("link", "add", device, "type", "bridge", netns=node_name())  # someone took the name
    status, err = call(PLUGIN, "DEL", with_prev(config, result), pod)
    assert status == 1 and device in err["details"]
    assert "net1" in pod_links(pod) and held(tmp_path) != set()  # nothing lost: DEL can retry
    lab.ip("link", "delete", device, netns=node_name())
    ok(PLUGIN, "DEL", with_prev(config, result), pod)
    assert_back_on_host(device, pod, up=False)
    assert held(tmp_path) == set()


def test_check_detects_drift(pod: str, device: str, tmp_path: Path) -> None:
    config = network(tmp_path, DUAL, device=device)
    checked = with_prev(config, ok(PLUGIN, "ADD", config, pod))
    lab.ip("link", "set", "net1", "alias", "", netns=pod)
    status, err = call(PLUGIN, "CHECK", checked, pod)
    assert status == 1 and "has no alias" in err["msg"]
    lab.ip("link", "set", "net1", "alias", device, netns=pod)
    ok(PLUGIN, "CHECK", checked, pod)
    lab.ip("addr", "flush", "dev", "net1", netns=pod)
    status, err = call(PLUGIN, "CHECK", checked, pod)
    assert status == 1 and "is missing from 'net1'" in err["msg"]
    ok(PLUGIN, "DEL", checked, pod)
    assert_back_on_host(device, pod, up=False)


def test_status(device: str, tmp_path: Path) -> None:
    assert call(PLUGIN, "STATUS", network(tmp_path, device=device), None) == (0, None)
    status, err = call(PLUGIN, "STATUS", network(tmp_path, device="mnhd-none"), None)
    assert status == 1 and err["code"] == 50 and "mnhd-none" in err["msg"]


@pytest.mark.parametrize(
    ("stack", "version", "ipam_type"),
    [
        (V4, "1.1.0", "host-local"),
        (V4, "1.1.0", "multinic-host-local"),
        (DUAL, "1.0.0", "host-local"),
    ],
)
def test_executable_through_the_runtime(
    pod: str, device: str, tmp_path: Path, stack: str, version: str, ipam_type: str
) -> None:
    bin_dir = tmp_path / "bin"
    install_plugins(str(bin_dir))
    runtime = Runtime([bin_dir, REFERENCE_PLUGIN_DIR], cache_dir=tmp_path / "cache")
    # The reference host-local (1.10) speaks 1.1.0 as well as ours.
    ipam = {**host_local(tmp_path / "ipam", stack, V4_NET, V6_NET), "type": ipam_type}
    plugin = {"type": TYPE, "device": device, "ipam": ipam}
    net = parse_network_config_list({"cniVersion": version, "name": "hdnet", "plugins": [plugin]})
    rt = RuntimeConf("cid-exe", str(lab.netns_path(pod)), "net1")
    # The runtime spawns the plugins from a thread in the node's namespace.
    result = on_node(lambda: runtime.add(net, rt))
    assert {str(ip.address) for ip in result.ips} == set(lab.addresses("net1", pod))
    assert link(pod, "net1")["ifalias"] == device
    on_node(lambda: runtime.check(net, rt))
    lab.ip("addr", "flush", "dev", "net1", netns=pod)
    with pytest.raises(CNIError, match="is missing"):
        on_node(lambda: runtime.check(net, rt))
    on_node(lambda: runtime.delete(net, rt))
    on_node(lambda: runtime.delete(net, rt))
    assert_back_on_host(device, pod, up=False)
    assert held(tmp_path) == set()


def test_v6_only_with_the_reference_ipam(pod: str, device: str, tmp_path: Path) -> None:
    ipam = {**host_local(tmp_path / "ipam", V6, V4_NET, V6_NET), "type": "host-local"}
    config = {**conf(TYPE, "hdnet", ipam, device=device), "cniVersion": "1.0.0"}
    result = ok(PLUGIN, "ADD", config, pod)
    assert [ip["address"].startswith("fd00:80:92::") for ip in result["ips"]] == [True]
    ok(PLUGIN, "CHECK", with_prev(config, result), pod)
    ok(PLUGIN, "DEL", with_prev(config, result), pod)
    assert_back_on_host(device, pod, up=False)
    assert held(tmp_path) == set()


def test_del_of_a_virtual_device_destroyed_with_its_pod(device: str, tmp_path: Path) -> None:
    # A veth dies with the namespace it is in (a physical device would come back):
    # DEL has nothing to return, and still releases the addresses.
    pod = unique("mnt-pod-")
    with lab.scratch_netns(pod):
        config = network(tmp_path, DUAL, device=device)
        result = ok(PLUGIN, "ADD", config, pod)
    assert device not in node_links()
    ok(PLUGIN, "DEL", with_prev(config, result), None, netns=str(lab.netns_path(pod)))
    ok(PLUGIN, "DEL", with_prev(config, result), None, netns=str(lab.netns_path(pod)))
    assert held(tmp_path) == set()
