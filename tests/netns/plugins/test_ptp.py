"""multinic-ptp in real namespaces: in-process and as an executable through our runtime.

Addresses: 198.18.64.0/20 and fd00:64::/48 (this block belongs to the bridge, ptp and
loopback tests; ptp uses 198.18.72-77 and fd00:64:72-77::).

The plugin's host side (host veth ends, gateway addresses, host routes, nftables
rules, ip_forward) lives in a scratch node namespace per test (``plugin_node``,
tests/netns/plugins/conftest.py), observed with ``ip -n <node>``; pods ping the
node's end. Nothing lands in the real host's namespace.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest

from multinic.cni.config import parse_network_config_list
from multinic.cni.runtime import Runtime, RuntimeConf
from multinic.lab import netns as lab
from multinic.plugins.install import install_plugins
from multinic.plugins.masq import MASQ_CHAIN
from multinic.plugins.nftables import Tag, list_rules
from multinic.plugins.ptp import PLUGIN
from tests.netns.conftest import REFERENCE_PLUGIN_DIR, unique
from tests.netns.plugins import inprocess
from tests.netns.plugins.conftest import PluginNode
from tests.netns.plugins.inprocess import ping
from tests.support.lower_plugins import node_name, on_node

NETWORK = "ptp-net"

pytestmark = pytest.mark.usefixtures("plugin_node")


def node() -> str:
    """The test's node namespace, for ``ip -n``."""
    name = node_name()
    assert name is not None
    return name


def nft_chain(family: str, chain: str) -> str:
    """``nft list chain`` of multinic's table in the node."""
    return lab.ip("netns", "exec", node(), "nft", "list", "chain", family, "multinic", chain)


def masq_rules() -> list[str]:
    """The comments of the masquerade rules in the node."""
    return [r.comment for r in on_node(lambda: list_rules("inet", MASQ_CHAIN))]


class Pod(inprocess.Pod):
    """An attachment of multinic-ptp."""

    def __init__(self, netns: str, conf: dict[str, Any]) -> None:
        super().__init__(PLUGIN, netns, conf)


def ptp_conf(data_dir: Path, *subnets: str, **fields: Any) -> dict[str, Any]:
    return {
        "cniVersion": "1.1.0",
        "name": NETWORK,
        "type": "multinic-ptp",
        "ipam": {
            "type": "multinic-host-local",
            "dataDir": str(data_dir),
            "ranges": [[{"subnet": s}] for s in subnets],
        },
        **fields,
    }


def reservations(data_dir: Path) -> list[str]:
    return inprocess.reservations(data_dir, NETWORK)


def host_ends_of(pod: str) -> set[str]:
    """Node links whose veth peer lives in ``pod`` (the node's id for it)."""
    listed = lab.ip_json("netns", "list", netns=node())
    nsid = next((n.get("id") for n in listed if n["name"] == pod), None)
    if nsid is None:
        return set()
    links = lab.ip_json("link", "show", "type", "veth", netns=node())
    return {n["ifname"] for n in links if n.get("link_netnsid") == nsid}


@pytest.fixture
def ipam_dir(tmp_path: Path) -> Path:
    return tmp_path / "ipam"


STACKS = {
    "ipv4": ("198.18.72.0/24",),
    "ipv6": ("fd00:64:72::/64",),
    "dual": ("198.18.72.0/24", "fd00:64:72::/64"),
}


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_add_check_del_in_process(stack: str, pod: str, ipam_dir: Path) -> None:
    subnets = STACKS[stack]
    attachment = Pod(pod, ptp_conf(ipam_dir, *subnets))
    result = attachment.add()
    host_veth = result["interfaces"][0]["name"]
    assert host_veth.startswith("veth") and result["interfaces"][1]["name"] == "eth0"
    assert result["interfaces"][1]["sandbox"] == str(lab.netns_path(pod))
    assert [ip["interface"] for ip in result["ips"]] == [1] * len(subnets)
    for ip, subnet in zip(result["ips"], subnets, strict=True):
        six = ":" in subnet
        base = ip_network(subnet).network_address
        address, gateway = ip["address"].split("/")[0], ip["gateway"]
        assert (address, gateway) == (str(base + 2), str(base + 1))
        family = "-6" if six else "-4"
        bits = 128 if six else 32
        # The pod: its address without the on-link subnet route, the gateway on-link.
        (to_gateway,) = lab.ip_json(family, "route", "show", gateway, netns=pod)
        assert to_gateway.get("scope", "link") == "link" and "gateway" not in to_gateway
        assert to_gateway["prefsrc"] == address
        (to_subnet,) = lab.ip_json(family, "route", "show", subnet, netns=pod)
        assert to_subnet["gateway"] == gateway
        # The node: the gateway on the host end, a host route to the pod.
        assert f"{gateway}/{bits}" in lab.addresses(host_veth, node())
        host_route = lab.ip_json(family, "route", "show", "dev", host_veth, netns=node())
        assert any(r["dst"] == address for r in host_route)
        assert ping(pod, gateway)
    attachment.ok("CHECK")
    attachment.ok("DEL")
    assert lab.link_names(pod) == {"lo"}
    assert host_veth not in lab.link_names(node())
    assert reservations(ipam_dir) == []
    attachment.ok("DEL")


def test_two_pods_reach_each_other_through_the_host(pod: str, pod2: str, ipam_dir: Path) -> None:
    conf = ptp_conf(ipam_dir, "198.18.73.0/24", "fd00:64:73::/64")
    first, second = Pod(pod, conf), Pod(pod2, conf)
    first.add()
    second.add()
    assert ping(pod, "198.18.73.3") and ping(pod2, "198.18.73.2")
    assert ping(pod, "fd00:64:73::3")
    first.ok("DEL")
    second.ok("DEL")
    assert reservations(ipam_dir) == []


def test_mtu_and_ipam_routes(pod: str, ipam_dir: Path) -> None:
    conf = ptp_conf(ipam_dir, "198.18.74.0/24", mtu=1380)
    conf["ipam"]["routes"] = [{"dst": "0.0.0.0/0"}, {"dst": "198.18.75.0/24", "gw": "198.18.74.1"}]
    attachment = Pod(pod, conf)
    result = attachment.add()
    assert lab.ip_json("link", "show", "eth0", netns=pod)[0]["mtu"] == 1380
    host_veth = result["interfaces"][0]["name"]
    assert lab.ip_json("link", "show", host_veth, netns=node())[0]["mtu"] == 1380
    default = lab.ip_json("-4", "route", "show", "default", netns=pod)[0]
    assert default["gateway"] == "198.18.74.1"
    attachment.ok("CHECK")
    attachment.ok("DEL")


def test_failures_leave_nothing_behind(pod: str, ipam_dir: Path) -> None:
    conf = ptp_conf(ipam_dir, "198.18.74.0/30")  # one pod address: .2
    first = Pod(pod, conf)
    first.add()
    host_ends = host_ends_of(pod)
    assert len(host_ends) == 1
    second = Pod(pod, conf)
    second.ifname = "net1"
    status, out = second.run("ADD")  # the range is exhausted
    assert status == 1 and "allocate" in out["msg"], out
    third = Pod(pod, ptp_conf(ipam_dir, "198.18.76.0/24", name="other"))
    status, out = third.run("ADD")  # eth0 is taken
    assert status == 1 and "eth0" in out.get("details", ""), out
    assert inprocess.reservations(ipam_dir, "other") == []
    assert lab.link_names(pod) == {"lo", "eth0"}
    assert host_ends_of(pod) == host_ends  # the failed ADDs' host ends were removed
    status, out = Pod(pod, {k: v for k, v in conf.items() if k != "ipam"}).run("ADD")
    assert status == 1 and out["code"] == 7 and "ipam" in out["msg"]
    status, out = Pod("mnt-no-such-pod", ptp_conf(ipam_dir, "198.18.76.0/24", name="gone")).run(
        "ADD"
    )
    assert status == 1 and "namespace" in out["msg"]
    assert inprocess.reservations(ipam_dir, "gone") == []
    first.ok("DEL")
    assert reservations(ipam_dir) == []


def test_check_detects_drift(pod: str, ipam_dir: Path) -> None:
    attachment = Pod(pod, ptp_conf(ipam_dir, "198.18.75.0/24"))
    result = attachment.add()
    attachment.ok("CHECK")
    host_veth = result["interfaces"][0]["name"]
    lab.ip("addr", "del", "198.18.75.1/32", "dev", host_veth, netns=node())
    status, out = attachment.run("CHECK")
    assert status == 1 and "gateway 198.18.75.1/32 is missing" in out["msg"], out
    lab.ip("addr", "add", "198.18.75.1/32", "dev", host_veth, netns=node())
    attachment.ok("CHECK")
    lab.ip("addr", "del", "198.18.75.2/24", "dev", "eth0", netns=pod)
    status, out = attachment.run("CHECK")
    assert status == 1 and "198.18.75.2/24 is missing" in out["msg"], out
    attachment.ok("DEL")


def test_del_after_the_pod_namespace_is_gone(ipam_dir: Path) -> None:
    name = unique("mnt-pod-")
    lab.create_netns(name)
    try:
        attachment = Pod(name, ptp_conf(ipam_dir, "198.18.76.0/24"))
        attachment.add()
    finally:
        lab.delete_netns(name)
    attachment.ok("DEL")
    assert reservations(ipam_dir) == []
    attachment.ok("DEL")


@contextlib.contextmanager
def outside_world(plugin_node: PluginNode) -> Iterator[str]:
    """A namespace behind the node at 198.18.77.130, with no route back to pods."""
    name = unique("mnt-out-")
    node_end = unique("mnout")
    plugin_node.keep.add(node_end)  # goes with the outside namespace
    with lab.scratch_netns(name):
        lab.ip("link", "add", node_end, "type", "veth", "peer", "name", "up0", "netns", name,
               netns=plugin_node.name)  # fmt: skip
        lab.ip("addr", "add", "198.18.77.129/25", "dev", node_end, netns=plugin_node.name)
        lab.ip("link", "set", node_end, "up", netns=plugin_node.name)
        lab.ip("addr", "add", "198.18.77.130/25", "dev", "up0", netns=name)
        lab.ip("link", "set", "up0", "up", netns=name)
        yield name


def test_ip_masq_rules_and_real_traffic(pod: str, ipam_dir: Path, plugin_node: PluginNode) -> None:
    with outside_world(plugin_node):
        plain = Pod(pod, ptp_conf(ipam_dir, "198.18.77.0/25"))
        plain.conf["ipam"]["routes"] = [{"dst": "0.0.0.0/0"}]
        plain.add()
        assert not ping(pod, "198.18.77.130")  # no route back from the outside
        plain.ok("DEL")
        masqueraded = Pod(pod, {**plain.conf, "ipMasq": True})
        result = masqueraded.add()
        address = result["ips"][0]["address"].split("/")[0]
        tag = Tag(NETWORK, masqueraded.container_id, "eth0").comment()
        assert masq_rules().count(tag) == 1
        listing = nft_chain("inet", MASQ_CHAIN)
        assert f"ip saddr {address} ip daddr != {{ 198.18.77.0/25, 224.0.0.0/4 }}" in listing
        assert ping(pod, "198.18.77.130")
        masqueraded.ok("CHECK")
        masqueraded.ok("DEL")
        assert tag not in masq_rules()


def test_del_with_a_config_broken_since_add_removes_everything(pod: str, ipam_dir: Path) -> None:
    attachment = Pod(pod, ptp_conf(ipam_dir, "198.18.75.0/24", ipMasq=True))
    attachment.add()
    tag = Tag(NETWORK, attachment.container_id, "eth0").comment()
    status, out = attachment.run("DEL", mtu=-5)
    assert status == 0, out
    assert lab.link_names(pod) == {"lo"}
    assert reservations(ipam_dir) == []
    assert tag not in masq_rules()


def test_status_and_gc(pod: str, pod2: str, ipam_dir: Path) -> None:
    conf = ptp_conf(ipam_dir, "198.18.76.0/24", ipMasq=True)
    kept, dropped = Pod(pod, conf), Pod(pod2, conf)
    kept.add()
    dropped.add()
    kept.ok("STATUS")
    valid = [{"containerID": kept.container_id, "ifname": "eth0"}]
    kept.ok("GC", **{"cni.dev/valid-attachments": valid})
    assert reservations(ipam_dir) == ["198.18.76.2"]
    comments = set(masq_rules())
    assert Tag(NETWORK, kept.container_id, "eth0").comment() in comments
    assert Tag(NETWORK, dropped.container_id, "eth0").comment() not in comments
    lab.delete_link("eth0", pod2)
    kept.ok("DEL")


def test_executable_through_our_runtime_with_reference_host_local(pod: str, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    install_plugins(str(bin_dir))
    conflist = {
        "cniVersion": "1.0.0",
        "name": "ptp-exec",
        "plugins": [
            {"type": "multinic-loopback"},
            {
                "type": "multinic-ptp",
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(tmp_path / "ipam"),
                    "ranges": [[{"subnet": "198.18.76.0/24"}], [{"subnet": "fd00:64:76::/64"}]],
                },
            },
        ],
    }
    lab.ip("link", "set", "lo", "down", netns=pod)
    net = parse_network_config_list(conflist)
    runtime = Runtime([bin_dir, REFERENCE_PLUGIN_DIR], cache_dir=tmp_path / "cache")
    rt = RuntimeConf(unique("ctr-"), str(lab.netns_path(pod)), "eth0")
    # The runtime spawns the plugins from a thread in the node's namespace.
    result = on_node(lambda: runtime.add(net, rt))
    assert [str(ip.address) for ip in result.ips] == ["198.18.76.2/24", "fd00:64:76::2/64"]
    assert "UP" in lab.ip_json("link", "show", "lo", netns=pod)[0]["flags"]
    assert ping(pod, "198.18.76.1") and ping(pod, "fd00:64:76::1")
    on_node(lambda: runtime.check(net, rt))
    on_node(lambda: runtime.delete(net, rt))
    assert lab.link_names(pod) == {"lo"}
    assert lab.link_names(node()) == {"lo"}
    assert inprocess.reservations(tmp_path / "ipam", "ptp-exec") == []
    on_node(lambda: runtime.delete(net, rt))
