"""multinic-ipvlan (and multinic-macvlan, for comparison) on the guest's kernel.

Runs inside the QEMU guest (this host's kernel has no ipvlan). The master is a
dummy link in the guest's own namespace; addresses from 198.18.84.0/22 and
fd00:80:4::/48. Few tests, each doing a lot: Python is ~20x slower in there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from multinic.cni.config import parse_network_config_list
from multinic.cni.runtime import Runtime, RuntimeConf
from multinic.lab import netns as lab
from multinic.plugins.install import install_plugins
from multinic.plugins.ipvlan import PLUGIN
from multinic.plugins.macvlan import PLUGIN as MACVLAN
from tests.netns.conftest import REFERENCE_PLUGIN_DIR, unique
from tests.support.lower_plugins import (
    DUAL,
    V4,
    V6,
    address_only,
    call,
    conf,
    host_local,
    kind_of,
    ok,
    ping,
    pod_links,
    reservations,
    with_prev,
)

V4_NET = "198.18.84.0/24"
V6_NET = "fd00:80:4::/64"
TYPE = "multinic-ipvlan"


@pytest.fixture
def master(host_links: list[str]) -> str:
    name = unique("mnip")
    host_links.append(name)
    lab.ip("link", "add", name, "type", "dummy")
    lab.ip("link", "set", name, "up")
    return name


def network(tmp_path: Path, master: str, stack: str = V4, **fields: Any) -> dict[str, Any]:
    ipam = host_local(tmp_path / "ipam", stack, V4_NET, V6_NET)
    return conf(TYPE, "ipvnet", ipam, master=master, **fields)


def held(tmp_path: Path) -> set[str]:
    return reservations(tmp_path / "ipam", "ipvnet")


@pytest.mark.parametrize(("mode", "stack"), [("l2", V4), ("l3", V6), ("l3s", DUAL)])
def test_two_pods_on_one_master_ping_each_other(
    pod: str, pod2: str, master: str, tmp_path: Path, mode: str, stack: str
) -> None:
    config = network(tmp_path, master, stack, mode=mode, mtu=1400)
    first = ok(PLUGIN, "ADD", config, pod, cid="a")
    second = ok(PLUGIN, "ADD", config, pod2, cid="b")
    for netns in (pod, pod2):
        kind, data = kind_of(netns, "net1")
        assert (kind, data["mode"]) == ("ipvlan", mode)
    assert lab.ip_json("link", "show", "net1", netns=pod)[0]["mtu"] == 1400
    assert set(lab.addresses("net1", pod2)) == {ip["address"] for ip in second["ips"]}
    for ip in second["ips"]:
        ping(pod, address_only(ip["address"]))

    ok(PLUGIN, "CHECK", with_prev(config, first), pod, cid="a")
    other = "l2" if mode != "l2" else "l3"
    status, err = call(PLUGIN, "CHECK", with_prev({**config, "mode": other}, first), pod, cid="a")
    assert status == 1 and f"ipvlan mode is {mode}, expected {other}" in err["msg"]

    for cid, netns, result in (("a", pod, first), ("b", pod2, second)):
        ok(PLUGIN, "DEL", with_prev(config, result), netns, cid=cid)
        ok(PLUGIN, "DEL", with_prev(config, result), netns, cid=cid)
    assert pod_links(pod) == pod_links(pod2) == {"lo"}
    assert held(tmp_path) == set()


def test_failures_leave_nothing_behind(pod: str, master: str, tmp_path: Path) -> None:
    config = network(tmp_path, master)
    # Master missing: a config error on ADD, code 50 on STATUS.
    status, err = call(PLUGIN, "ADD", network(tmp_path, "mnip-none"), pod)
    assert status == 1 and "master 'mnip-none' not found" in err["msg"]
    status, err = call(PLUGIN, "STATUS", network(tmp_path, "mnip-none"), None)
    assert status == 1 and err["code"] == 50
    assert call(PLUGIN, "STATUS", config, None) == (0, None)
    # IPAM fails; no ipam at all (ipvlan needs addresses).
    status, err = call(PLUGIN, "ADD", {**config, "ipam": {"type": "no-such-ipam"}}, pod)
    assert status == 1 and "no-such-ipam" in err["msg"]
    status, err = call(PLUGIN, "ADD", {k: v for k, v in config.items() if k != "ipam"}, pod)
    assert status == 1 and "needs an ipam section" in err["msg"]
    assert pod_links(pod) == {"lo"} and held(tmp_path) == set()
    # Address already in use: another attachment holds the address asked for.
    taken = ok(PLUGIN, "ADD", config, pod, cid="holder", ifname="held1")
    address = address_only(taken["ips"][0]["address"])
    status, err = call(PLUGIN, "ADD", config, pod, cid="second", args=f"IP={address}")
    assert status == 1 and address in str(err)
    assert pod_links(pod) == {"lo", "held1"} and held(tmp_path) == {address}
    # The pod's interface name is taken.
    status, err = call(PLUGIN, "ADD", config, pod, cid="third", ifname="held1")
    assert status == 1 and "errno 17" in err["details"]
    assert pod_links(pod) == {"lo", "held1"} and held(tmp_path) == {address}
    ok(PLUGIN, "DEL", config, pod, cid="holder", ifname="held1")
    assert pod_links(pod) == {"lo"} and held(tmp_path) == set()


def test_chained_takes_master_and_addresses_from_prev_result(pod: str, master: str) -> None:
    prev = {
        "cniVersion": "1.1.0",
        "interfaces": [{"name": master}],
        "ips": [{"address": "198.18.85.7/24", "gateway": "198.18.85.1"}],
    }
    config = with_prev(conf(TYPE, "chained", mode="l3"), prev)
    result = ok(PLUGIN, "ADD", config, pod)
    assert [i["name"] for i in result["interfaces"]] == ["net1"]
    assert result["ips"] == [
        {"interface": 0, "address": "198.18.85.7/24", "gateway": "198.18.85.1"}
    ]
    assert lab.addresses("net1", pod) == ["198.18.85.7/24"]
    seen = lab.ip_json("-d", "link", "show", "net1", netns=pod)[0]
    assert seen["linkinfo"]["info_data"]["mode"] == "l3"
    ok(PLUGIN, "CHECK", with_prev(conf(TYPE, "chained", mode="l3"), result), pod)
    ok(PLUGIN, "DEL", config, pod)
    assert pod_links(pod) == {"lo"}
    status, err = call(PLUGIN, "ADD", with_prev(conf(TYPE, "c"), {**prev, "interfaces": []}), pod)
    assert status == 1 and "chained master failure" in err["msg"]


def test_executable_through_the_runtime(pod: str, master: str, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    install_plugins(str(bin_dir))
    runtime = Runtime([bin_dir, REFERENCE_PLUGIN_DIR], cache_dir=tmp_path / "cache")
    plugin = {
        "type": TYPE,
        "master": master,
        "mode": "l2",
        "ipam": host_local(tmp_path / "ipam", DUAL, V4_NET, V6_NET),
    }
    net = parse_network_config_list({"cniVersion": "1.1.0", "name": "ipvnet", "plugins": [plugin]})
    rt = RuntimeConf("cid-exe", str(lab.netns_path(pod)), "net1")
    result = runtime.add(net, rt)
    assert {str(ip.address) for ip in result.ips} == set(lab.addresses("net1", pod))
    assert kind_of(pod, "net1")[0] == "ipvlan"
    runtime.check(net, rt)
    runtime.delete(net, rt)
    runtime.delete(net, rt)
    assert pod_links(pod) == {"lo"} and held(tmp_path) == set()


def test_macvlan_for_comparison_two_pods_ping(
    pod: str, pod2: str, master: str, tmp_path: Path
) -> None:
    ipam = host_local(tmp_path / "ipam", DUAL, V4_NET, V6_NET)
    config = conf("multinic-macvlan", "ipvnet", ipam, master=master, mode="bridge")
    ok(MACVLAN, "ADD", config, pod, cid="a")
    second = ok(MACVLAN, "ADD", config, pod2, cid="b")
    for netns in (pod, pod2):
        kind, data = kind_of(netns, "net1")
        assert (kind, data["mode"]) == ("macvlan", "bridge")  # the mode configured, not pod2's
    for ip in second["ips"]:
        ping(pod, address_only(ip["address"]))
    ok(MACVLAN, "DEL", config, pod, cid="a")
    ok(MACVLAN, "DEL", config, pod2, cid="b")
    assert pod_links(pod) == pod_links(pod2) == {"lo"} and held(tmp_path) == set()
