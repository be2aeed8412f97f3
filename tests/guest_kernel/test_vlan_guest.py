"""multinic-vlan on the guest's kernel (this host's kernel has no 802.1Q links).

The master is a dummy link in the guest's own namespace; addresses from
198.18.88.0/22 and fd00:80:8::/48. Few tests, each doing a lot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from multinic.cni.config import parse_network_config_list
from multinic.cni.runtime import Runtime, RuntimeConf
from multinic.lab import netns as lab
from multinic.plugins.install import install_plugins
from multinic.plugins.vlan import PLUGIN
from tests.netns.conftest import REFERENCE_PLUGIN_DIR, unique
from tests.support.lower_plugins import (
    DUAL,
    V4,
    V6,
    call,
    conf,
    host_local,
    link,
    ok,
    pod_links,
    reservations,
    with_prev,
)

V4_NET = "198.18.88.0/24"
V6_NET = "fd00:80:8::/64"
TYPE = "multinic-vlan"


@pytest.fixture
def master(host_links: list[str]) -> str:
    name = unique("mnvl")
    host_links.append(name)
    lab.ip("link", "add", name, "type", "dummy")
    lab.ip("link", "set", name, "up")
    return name


def network(tmp_path: Path, master: str, stack: str = V4, **fields: Any) -> dict[str, Any]:
    ipam = host_local(tmp_path / "ipam", stack, V4_NET, V6_NET)
    return conf(TYPE, "vlnet", ipam, master=master, **fields)


def held(tmp_path: Path) -> set[str]:
    return reservations(tmp_path / "ipam", "vlnet")


@pytest.mark.parametrize(("stack", "vlan_id"), [(V4, 1), (V6, 4094), (DUAL, 100)])
def test_add_check_del_del(
    pod: str, pod2: str, master: str, tmp_path: Path, stack: str, vlan_id: int
) -> None:
    config = network(tmp_path, master, stack, vlanId=vlan_id, mtu=1400)
    result = ok(PLUGIN, "ADD", config, pod)
    seen = link(pod, "net1")
    data = seen["linkinfo"]["info_data"]
    assert (seen["linkinfo"]["info_kind"], data["id"], data["protocol"]) == (
        "vlan",
        vlan_id,
        "802.1Q",
    )
    assert seen["mtu"] == 1400 and seen["link_netnsid"] == 0
    assert set(lab.addresses("net1", pod)) == {ip["address"] for ip in result["ips"]}
    assert len(held(tmp_path)) == len(result["ips"])
    checked = with_prev(config, result)
    ok(PLUGIN, "CHECK", checked, pod)
    status, err = call(PLUGIN, "CHECK", with_prev({**config, "vlanId": 7}, result), pod)
    assert status == 1 and f"VLAN id is {vlan_id}, expected 7" in err["msg"]
    # A second pod on the same master gets another VLAN: the kernel allows one link per id.
    other = ok(PLUGIN, "ADD", {**config, "vlanId": vlan_id % 4094 + 1}, pod2, cid="other")
    assert link(pod2, "net1")["linkinfo"]["info_data"]["id"] == vlan_id % 4094 + 1
    ok(PLUGIN, "DEL", with_prev(config, other), pod2, cid="other")
    ok(PLUGIN, "DEL", checked, pod)
    ok(PLUGIN, "DEL", checked, pod)
    assert pod_links(pod) == pod_links(pod2) == {"lo"} and held(tmp_path) == set()


def test_failures_leave_nothing_behind(pod: str, master: str, tmp_path: Path) -> None:
    config = network(tmp_path, master, vlanId=200)
    for bad, message in (
        ({"vlanId": 0}, "field 'vlanId' must be between 1 and 4094"),
        ({"vlanId": 4095}, "field 'vlanId' must be between 1 and 4094"),
        ({"vlanId": None}, "field 'vlanId' is required"),
        ({"master": ""}, "field 'master' is required"),
        ({"mtu": 1600}, "invalid MTU 1600"),
        ({"master": "mnvl-none"}, "master 'mnvl-none' not found"),
        ({"ipam": {"type": "no-such-ipam"}}, "no-such-ipam"),
    ):
        status, err = call(PLUGIN, "ADD", {**config, **bad}, pod)
        assert status == 1 and message in err["msg"], err
    status, err = call(PLUGIN, "STATUS", {**config, "master": "mnvl-none"}, None)
    assert status == 1 and err["code"] == 50
    assert call(PLUGIN, "STATUS", config, None) == (0, None)
    assert pod_links(pod) == {"lo"} and held(tmp_path) == set()
    # Address already in use, then the pod's interface name taken.
    taken = ok(PLUGIN, "ADD", config, pod, cid="holder", ifname="held1")
    address = taken["ips"][0]["address"].split("/")[0]
    status, err = call(
        PLUGIN, "ADD", {**config, "vlanId": 201}, pod, cid="second", args=f"IP={address}"
    )
    assert status == 1 and address in str(err)
    status, err = call(PLUGIN, "ADD", {**config, "vlanId": 202}, pod, cid="third", ifname="held1")
    assert status == 1 and "errno 17" in err["details"]
    assert pod_links(pod) == {"lo", "held1"} and held(tmp_path) == {address}
    ok(PLUGIN, "DEL", config, pod, cid="holder", ifname="held1")
    assert pod_links(pod) == {"lo"} and held(tmp_path) == set()


def test_executable_through_the_runtime(pod: str, master: str, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    install_plugins(str(bin_dir))
    runtime = Runtime([bin_dir, REFERENCE_PLUGIN_DIR], cache_dir=tmp_path / "cache")
    plugin = {
        "type": TYPE,
        "master": master,
        "vlanId": 300,
        "ipam": host_local(tmp_path / "ipam", DUAL, V4_NET, V6_NET),
    }
    net = parse_network_config_list({"cniVersion": "1.1.0", "name": "vlnet", "plugins": [plugin]})
    rt = RuntimeConf("cid-exe", str(lab.netns_path(pod)), "net1")
    result = runtime.add(net, rt)
    assert {str(ip.address) for ip in result.ips} == set(lab.addresses("net1", pod))
    assert link(pod, "net1")["linkinfo"]["info_data"]["id"] == 300
    runtime.check(net, rt)
    runtime.delete(net, rt)
    runtime.delete(net, rt)
    assert pod_links(pod) == {"lo"} and held(tmp_path) == set()
