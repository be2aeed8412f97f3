"""The data plane on link kinds this host's kernel lacks: ipvlan, vlan, bridge VLAN filtering.

Runs inside the QEMU guest (Debian's stock kernel), like everything in tests/guest_kernel.
The "node" side is a scratch namespace too, with a dummy uplink; observations
come from iproute2 (`ip -j -d link`, `bridge -j vlan`).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from multinic import dataplane as dp
from multinic.lab import netns as lab
from tests.netns.conftest import unique


@pytest.fixture
def node() -> Iterator[tuple[str, dp.Netns]]:
    """A namespace standing in for the host, with a dummy `uplink` that is up."""
    name = unique("mnt-dpnode-")
    with lab.scratch_netns(name) as path, dp.open_netns(str(path)) as ns:
        lab.ip("link", "add", "uplink", "type", "dummy", netns=name)
        lab.ip("link", "set", "uplink", "up", netns=name)
        yield name, ns


@pytest.fixture
def pod_ns(pod: str) -> Iterator[dp.Netns]:
    with contextlib.closing(dp.open_netns(str(lab.netns_path(pod)))) as ns:
        yield ns


def _link(netns: str, ifname: str) -> dict[str, Any]:
    [link] = lab.ip_json("-d", "link", "show", "dev", ifname, netns=netns)
    return link


@pytest.mark.parametrize(("mode", "flag"), [("l2", "bridge"), ("l3", "private"), ("l3s", "vepa")])
def test_ipvlan_on_the_node_uplink_lands_in_the_pod(
    node: tuple[str, dp.Netns], pod: str, pod_ns: dp.Netns, mode: str, flag: str
) -> None:
    node_name, node_ns = node
    link = dp.create_ipvlan(node_ns, "eth1", "uplink", mode=mode, flag=flag, target_ns=pod_ns)
    data = _link(pod, "eth1")["linkinfo"]["info_data"]
    assert data["mode"] == mode and data.get(flag) is True
    assert (link.kind, link.info["mode"], link.info["flags"]) == ("ipvlan", mode, flag)
    assert "eth1" not in lab.link_names(node_name)


def test_ipvlan_created_in_the_pod_and_an_existing_name(pod: str, pod_ns: dp.Netns) -> None:
    lab.ip("link", "add", "uplink", "type", "dummy", netns=pod)
    dp.create_ipvlan(pod_ns, "eth1", "uplink", mode="l2", mtu=1400)
    assert _link(pod, "eth1")["mtu"] == 1400
    with pytest.raises(dp.LinkExistsError) as caught:
        dp.create_ipvlan(pod_ns, "eth1", "uplink")
    assert (caught.value.interface, caught.value.netns) == ("eth1", pod_ns.name)


def test_vlan_on_the_node_uplink_lands_in_the_pod(
    node: tuple[str, dp.Netns], pod: str, pod_ns: dp.Netns
) -> None:
    _, node_ns = node
    link = dp.create_vlan(node_ns, "eth1", "uplink", 42, target_ns=pod_ns, mtu=1400)
    seen = _link(pod, "eth1")
    assert (seen["linkinfo"]["info_data"]["id"], seen["mtu"]) == (42, 1400)
    assert seen["linkinfo"]["info_data"]["protocol"] == "802.1Q"
    assert link.info["vlan_id"] == 42
    with pytest.raises(dp.LinkExistsError):
        dp.create_vlan(node_ns, "eth1", "uplink", 43, target_ns=pod_ns)
    assert _link(pod, "eth1")["linkinfo"]["info_data"]["id"] == 42


def test_bridge_vlan_filtering_and_port_vlans(node: tuple[str, dp.Netns], pod_ns: dp.Netns) -> None:
    node_name, node_ns = node
    bridge = dp.ensure_bridge(node_ns, "br0", vlan_filtering=True)
    assert bridge.info["vlan_filtering"] == 1
    assert _link(node_name, "br0")["linkinfo"]["info_data"]["vlan_filtering"] == 1
    host, _ = dp.create_veth(node_ns, "veth-h", "eth0", peer_ns=pod_ns)
    dp.set_master(node_ns, host, bridge)
    dp.bridge_vlan_add(node_ns, host, 100, pvid=True, untagged=True)
    vlans = json.loads(_bridge(node_name, "vlan", "show", "dev", "veth-h"))
    [port] = [p for p in vlans if p["ifname"] == "veth-h"]
    entry = next(v for v in port["vlans"] if v["vlan"] == 100)
    assert set(entry["flags"]) == {"PVID", "Egress Untagged"}
    assert dp.BridgeVlan(100, True, True) in dp.bridge_vlans(node_ns, host)
    dp.bridge_vlan_del(node_ns, host, 100)
    assert 100 not in {v.vid for v in dp.bridge_vlans(node_ns, host)}


def _bridge(netns: str, *args: str) -> str:
    """`bridge -j ARGS` inside the namespace."""
    done = subprocess.run(
        ["ip", "netns", "exec", netns, "bridge", "-j", *args],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout
