"""Inside the guest: pods get ipvlan and vlan links, the way our plugins will make them.

These prove the in-guest test path (pytest, the netns fixtures, iproute2 and our
data plane on the guest's kernel) and what the ipvlan/vlan plugins rely on.
"""

from __future__ import annotations

import subprocess

import pytest

from multinic.dataplane import open_netns
from multinic.dataplane.links import create_ipvlan, create_vlan
from multinic.lab import netns as lab
from tests.netns.conftest import unique


def _kind(ifname: str, netns: str) -> tuple[str, dict[str, object]]:
    (link,) = lab.ip_json("-d", "link", "show", ifname, netns=netns)
    info = link.get("linkinfo", {})
    return info.get("info_kind", ""), info.get("info_data", {})


@pytest.mark.parametrize("mode", ["l2", "l3"])
def test_ipvlan_slaves_of_one_parent_in_two_pods_reach_each_other(
    mode: str, pod: str, pod2: str, host_links: list[str]
) -> None:
    parent = unique("par")
    host_links.append(parent)
    lab.ip("link", "add", parent, "type", "dummy")
    lab.ip("link", "set", parent, "up")
    for netns, address in ((pod, "10.77.0.1/24"), (pod2, "10.77.0.2/24")):
        slave = unique("ipv")
        lab.ip("link", "add", "link", parent, "name", slave, "type", "ipvlan", "mode", mode)
        lab.ip("link", "set", slave, "netns", netns, "name", "eth1")
        lab.ip("addr", "add", address, "dev", "eth1", netns=netns)
        lab.ip("link", "set", "eth1", "up", netns=netns)

    ping = subprocess.run(
        ["ip", "netns", "exec", pod, "ping", "-c", "2", "-i", "0.2", "-W", "2", "10.77.0.2"],
        capture_output=True,
        text=True,
        check=False,
    )

    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert _kind("eth1", pod) == ("ipvlan", {"mode": mode, "bridge": True})


def test_dataplane_creates_ipvlan_l3s_and_vlan_into_a_pod(pod: str, pod2: str) -> None:
    node = pod2  # stands in for the node: nothing lands in the guest's own namespace
    lab.ip("link", "add", "uplink", "type", "dummy", netns=node)

    with (
        open_netns(str(lab.netns_path(node))) as node_ns,
        open_netns(str(lab.netns_path(pod))) as pod_ns,
    ):
        create_ipvlan(node_ns, "eth1", "uplink", mode="l3s", target_ns=pod_ns)
        create_vlan(node_ns, "eth2", "uplink", 42, target_ns=pod_ns)

    assert _kind("eth1", pod) == ("ipvlan", {"mode": "l3s", "bridge": True})
    vlan_kind, vlan = _kind("eth2", pod)
    assert (vlan_kind, vlan["protocol"], vlan["id"]) == ("vlan", "802.1Q", 42)
