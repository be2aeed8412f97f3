"""multinic-bridge in real namespaces: in-process and as an executable through our runtime.

The plugin's host side (the bridge, host veth ends, gateway addresses, nftables
rules, ip_forward) lives in a scratch node namespace per test (``plugin_node``,
tests/netns/plugins/conftest.py); it is observed with ``ip -n <node>``, and pods
ping the node's bridge. Nothing lands in the real host's namespace.

Addresses: 198.18.67.0/24-198.18.79.0/24 and fd00:64::/48 (this file's block).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from multinic.cni.config import parse_network_config_list
from multinic.cni.errors import ErrorCode
from multinic.cni.runtime import Runtime, RuntimeConf
from multinic.dataplane import host_netns
from multinic.lab import netns as lab
from multinic.plugins.bridge import PLUGIN, _remove_unused_bridge
from multinic.plugins.install import install_plugins
from multinic.plugins.masq import MASQ_CHAIN, SPOOF_CHAIN
from multinic.plugins.nftables import Tag, list_rules
from tests.netns.conftest import REFERENCE_PLUGIN_DIR, unique
from tests.netns.plugins import inprocess
from tests.netns.plugins.conftest import PluginNode
from tests.support.etcd_cluster import free_port
from tests.support.lower_plugins import node_name, on_node

V4, V6 = "198.18.67.0/24", "fd00:64:67::/64"

pytestmark = pytest.mark.usefixtures("plugin_node")


def node() -> str:
    """The test's node namespace, for ``ip -n``."""
    name = node_name()
    assert name is not None
    return name


class Pod(inprocess.Pod):
    """An attachment of multinic-bridge."""

    def __init__(self, netns: str, conf: dict[str, Any], container_id: str = "") -> None:
        super().__init__(PLUGIN, netns, conf, container_id)


def bridge_conf(
    bridge: str, data_dir: Path, *subnets: str, name: str = "br-net", **fields: Any
) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "cniVersion": "1.1.0",
        "name": name,
        "type": "multinic-bridge",
        "bridge": bridge,
        "isGateway": True,
        **fields,
    }
    if subnets:
        conf["ipam"] = {
            "type": "multinic-host-local",
            "dataDir": str(data_dir),
            "ranges": [[{"subnet": s}] for s in subnets],
        }
    return conf


def reservations(data_dir: Path, network: str = "br-net") -> list[str]:
    return inprocess.reservations(data_dir, network)


def ports(bridge: str) -> set[str]:
    """The bridge's ports in the node."""
    return {p["ifname"] for p in lab.ip_json("link", "show", "master", bridge, netns=node())}


def link(name: str, netns: str | None = None) -> dict[str, Any]:
    """A link in ``netns`` (a pod), by default in the node."""
    return lab.ip_json("-d", "link", "show", name, netns=netns or node())[0]


def nft_chain(family: str, chain: str) -> str:
    """``nft list chain`` of multinic's table in the node."""
    return lab.ip("netns", "exec", node(), "nft", "list", "chain", family, "multinic", chain)


ping = inprocess.ping


@pytest.fixture
def bridge(plugin_node: PluginNode) -> str:
    name = unique("mnbr")
    plugin_node.keep.add(name)  # shared by the network's pods, it outlives DEL
    return name


@pytest.fixture
def ipam_dir(tmp_path: Path) -> Path:
    return tmp_path / "ipam"


STACKS = {
    "ipv4": ((V4,), ("198.18.67.2/24",), ("198.18.67.1/24",)),
    "ipv6": ((V6,), ("fd00:64:67::2/64",), ("fd00:64:67::1/64",)),
    "dual": (
        (V4, V6),
        ("198.18.67.2/24", "fd00:64:67::2/64"),
        ("198.18.67.1/24", "fd00:64:67::1/64"),
    ),
}


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_add_check_del_in_process(stack: str, pod: str, bridge: str, ipam_dir: Path) -> None:
    subnets, pod_addresses, gateways = STACKS[stack]
    attachment = Pod(pod, bridge_conf(bridge, ipam_dir, *subnets))
    result = attachment.add()

    names = [i["name"] for i in result["interfaces"]]
    assert names[0] == bridge and names[1].startswith("veth") and len(names[1]) == 12
    assert names[2] == "eth0"
    assert result["interfaces"][2]["sandbox"] == str(lab.netns_path(pod))
    assert result["interfaces"][2]["mac"] == link("eth0", pod)["address"]
    assert result["interfaces"][0]["mac"] == link(bridge)["address"]
    assert [ip["interface"] for ip in result["ips"]] == [2] * len(subnets)
    assert [ip["address"] for ip in result["ips"]] == list(pod_addresses)
    assert [ip["gateway"] for ip in result["ips"]] == [g.split("/")[0] for g in gateways]

    assert lab.addresses("eth0", pod) == list(pod_addresses)
    assert sorted(lab.addresses(bridge, node())) == sorted(gateways)
    host_veth = link(names[1])
    assert host_veth["master"] == bridge
    assert "UP" in host_veth["flags"] and "UP" in link("eth0", pod)["flags"]
    for gateway in gateways:
        assert ping(pod, gateway.split("/")[0])

    attachment.ok("CHECK")
    attachment.ok("DEL", prevResult=result)  # as runtimes call it: from the host end
    assert lab.link_names(pod) == {"lo"}
    assert names[1] not in lab.link_names(node())
    assert bridge in lab.link_names(node())  # shared by the network's pods: DEL keeps it
    assert reservations(ipam_dir) == []
    attachment.ok("DEL", prevResult=result)  # idempotent
    attachment.ok("DEL")


def test_del_with_prev_result_never_enters_the_pod(pod: str, bridge: str, ipam_dir: Path) -> None:
    # Runtimes pass ADD's result on DEL: deleting the host veth takes the pod's end
    # along, so DEL needs no thread in the pod's namespace, and no _ctypes for setns
    # (a fresh interpreter, as the executable is; its modules tell what it did).
    attachment = Pod(pod, bridge_conf(bridge, ipam_dir, V4))
    result = attachment.add()
    conf = {**attachment.conf, "prevResult": result}
    probe = (
        "import sys, json; from multinic.cni import skel; "
        "from multinic.plugins.bridge import PLUGIN; "
        f"env = {attachment.env('DEL')!r}; "
        f"status, out = skel.run(PLUGIN, env, {json.dumps(conf)!r}.encode()); "
        "entered = sorted({'_ctypes', 'threading'} & set(sys.modules)); "
        "print(json.dumps([status, out.decode(), entered]))"
    )
    done = on_node(  # the executable's process, started in the node
        lambda: subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
        )
    )
    status, out, loaded = json.loads(done.stdout)
    assert (status, out) == (0, "")
    assert lab.link_names(pod) == {"lo"}  # the pod's end went with the host's
    assert reservations(ipam_dir) == []
    assert loaded == []


def test_two_pods_share_the_bridge_and_reach_each_other(
    pod: str, pod2: str, bridge: str, ipam_dir: Path
) -> None:
    conf = bridge_conf(bridge, ipam_dir, "198.18.68.0/24", "fd00:64:68::/64")
    first, second = Pod(pod, conf), Pod(pod2, conf)
    first.add()
    second.add()
    assert ping(pod, "198.18.68.3") and ping(pod2, "198.18.68.2")
    assert ping(pod, "fd00:64:68::3")
    host_ends = [p.result["interfaces"][1]["name"] for p in (first, second) if p.result]
    assert {link(name)["master"] for name in host_ends} == {bridge}
    first.ok("DEL")
    second.ok("DEL")
    assert reservations(ipam_dir) == []


def test_add_announces_the_pods_addresses(pod: str, pod2: str, bridge: str, ipam_dir: Path) -> None:
    conf = bridge_conf(bridge, ipam_dir, "198.18.68.0/24", "fd00:64:68::/64")
    other = Pod(pod2, conf)
    other.add()  # .2
    # pod2 still believes a previous owner of .3 is there: a stale neighbour entry.
    for address in ("198.18.68.3", "fd00:64:68::3"):
        lab.ip("neigh", "replace", address, "lladdr", "02:00:00:00:00:99", "dev", "eth0",
               "nud", "stale", netns=pod2)  # fmt: skip
    new = Pod(pod, conf)
    mac = new.add()["interfaces"][2]["mac"]
    for address in ("198.18.68.3", "fd00:64:68::3"):
        entry = lab.ip_json("neigh", "show", address, "dev", "eth0", netns=pod2)[0]
        assert entry["lladdr"] == mac  # the gratuitous ARP / unsolicited NA updated it
    new.ok("DEL")
    other.ok("DEL")


def test_is_default_gateway_adds_default_routes_via_the_bridge(
    pod: str, bridge: str, ipam_dir: Path
) -> None:
    conf = bridge_conf(
        bridge,
        ipam_dir,
        "198.18.69.0/24",
        "fd00:64:69::/64",
        isGateway=False,
        isDefaultGateway=True,
    )
    attachment = Pod(pod, conf)
    result = attachment.add()
    assert {(r["dst"], r["gw"]) for r in result["routes"]} == {
        ("0.0.0.0/0", "198.18.69.1"),
        ("::/0", "fd00:64:69::1"),
    }
    assert lab.ip_json("-4", "route", "show", "default", netns=pod)[0]["gateway"] == "198.18.69.1"
    assert lab.ip_json("-6", "route", "show", "default", netns=pod)[0]["gateway"] == "fd00:64:69::1"
    assert sorted(lab.addresses(bridge, node())) == ["198.18.69.1/24", "fd00:64:69::1/64"]
    for key in ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"):
        assert lab.ip("netns", "exec", node(), "sysctl", "-n", key).strip() == "1"
    attachment.ok("CHECK")
    attachment.ok("DEL")


def test_mtu_hairpin_and_mac(pod: str, bridge: str, ipam_dir: Path) -> None:
    conf = bridge_conf(
        bridge,
        ipam_dir,
        "198.18.70.0/24",
        mtu=1400,
        hairpinMode=True,
        runtimeConfig={"mac": "02:64:70:00:00:02"},
    )
    attachment = Pod(pod, conf)
    result = attachment.add()
    host_veth = link(result["interfaces"][1]["name"])
    assert host_veth["mtu"] == 1400
    assert host_veth["linkinfo"]["info_slave_data"]["hairpin"] is True
    assert link("eth0", pod)["mtu"] == 1400
    assert link(bridge)["mtu"] == 1400
    assert link("eth0", pod)["address"] == "02:64:70:00:00:02"
    attachment.ok("CHECK")
    attachment.ok("DEL")


def test_enabledad_waits_for_duplicate_address_detection(
    pod: str, bridge: str, ipam_dir: Path
) -> None:
    attachment = Pod(pod, bridge_conf(bridge, ipam_dir, "fd00:64:70::/64", enabledad=True))
    attachment.add()
    shown = lab.ip_json("-6", "addr", "show", "eth0", netns=pod)[0]["addr_info"]
    (mine,) = [a for a in shown if a["local"] == "fd00:64:70::2"]
    assert not mine.get("nodad") and not mine.get("tentative")  # DAD ran, and passed
    attachment.ok("DEL")


def test_promisc_mode_on_the_bridge(pod: str, bridge: str, ipam_dir: Path) -> None:
    attachment = Pod(pod, bridge_conf(bridge, ipam_dir, "198.18.70.0/24", promiscMode=True))
    attachment.add()
    assert "PROMISC" in link(bridge)["flags"]
    attachment.ok("CHECK")
    # CHECK compares the bridge's promiscuous mode with the config.
    status, out = attachment.run("CHECK", promiscMode=False)
    assert status != 0 and "promiscuous" in out["msg"]
    attachment.ok("DEL")


def test_layer2_only_without_ipam(pod: str, bridge: str, ipam_dir: Path) -> None:
    attachment = Pod(pod, bridge_conf(bridge, ipam_dir, isGateway=False))
    result = attachment.add()
    assert "ips" not in result
    assert "UP" in link("eth0", pod)["flags"]
    assert lab.addresses("eth0", pod) == []
    attachment.ok("CHECK")
    attachment.ok("DEL")


def test_a_different_address_on_the_bridge_fails_and_leaves_nothing(
    pod: str, bridge: str, ipam_dir: Path
) -> None:
    lab.ip("link", "add", bridge, "type", "bridge", netns=node())
    lab.ip("addr", "add", "198.18.71.254/24", "dev", bridge, netns=node())
    attachment = Pod(pod, bridge_conf(bridge, ipam_dir, "198.18.71.0/24"))
    status, out = attachment.run("ADD")
    assert status == 1
    assert "already has an IP address different from 198.18.71.1/24" in out["msg"]
    assert lab.link_names(pod) == {"lo"}
    assert reservations(ipam_dir) == []  # the IPAM reservation was released
    # forceAddress replaces it.
    attachment.conf["forceAddress"] = True
    attachment.add()
    assert lab.addresses(bridge, node()) == ["198.18.71.1/24"]
    attachment.ok("DEL")


def test_a_failed_first_add_removes_the_bridge_it_created(pod: str, ipam_dir: Path) -> None:
    name = unique("mnbr")
    for ipam in ({"type": "no-such-ipam"}, {"type": "multinic-host-local", "ranges": "x"}):
        status, out = Pod(pod, {**bridge_conf(name, ipam_dir), "ipam": ipam}).run("ADD")
        assert status == 1, out
        assert lab.link_names(node()) == {"lo"}, out  # no bridge, no veth
        assert lab.link_names(pod) == {"lo"}
    # The pod's interface name is taken: the ADD fails before any IPAM, after the bridge.
    lab.ip("link", "add", "eth0", "type", "bridge", netns=pod)
    status, out = Pod(pod, bridge_conf(name, ipam_dir, "198.18.79.0/24")).run("ADD")
    assert status == 1 and "eth0" in out.get("details", ""), out
    assert lab.link_names(node()) == {"lo"}
    assert reservations(ipam_dir) == []
    lab.delete_link("eth0", netns=pod)
    # A bridge someone else made stays, however the ADD ends.
    lab.ip("link", "add", name, "type", "bridge", netns=node())
    status, out = Pod(pod, {**bridge_conf(name, ipam_dir), "ipam": {"type": "no-such-ipam"}}).run(
        "ADD"
    )
    assert status == 1 and lab.link_names(node()) == {"lo", name}, out
    lab.delete_link(name, netns=node())


def test_undoing_a_new_bridge_keeps_it_while_a_pod_is_on_it(pod: str) -> None:
    name, gateway, port, pod_end = unique("mnbr"), unique("mg"), unique("mq"), unique("mp")
    lab.ip("link", "add", name, "type", "bridge", netns=node())
    lab.ip("link", "add", gateway, "type", "veth", "peer", "name", port, netns=node())
    lab.ip("link", "set", port, "master", name, netns=node())  # as a VLAN gateway's pair
    lab.ip("link", "add", pod_end, "type", "veth", "peer", "name", "x" + pod_end, netns=node())
    lab.ip("link", "set", "x" + pod_end, "netns", pod, netns=node())
    lab.ip("link", "set", pod_end, "master", name, netns=node())  # a concurrent ADD's pod

    def undo() -> None:
        with host_netns() as host:
            _remove_unused_bridge(host, name)

    on_node(undo)
    assert lab.link_names(node()) == {"lo", name, gateway, port, pod_end}
    lab.delete_link(pod_end, netns=node())
    on_node(undo)
    assert lab.link_names(node()) == {"lo"}


def test_failures_leave_nothing_behind(pod: str, bridge: str, ipam_dir: Path) -> None:
    conf = bridge_conf(bridge, ipam_dir, "198.18.72.0/30")  # room for one pod only (.2)
    first = Pod(pod, conf)
    first.add()
    before = ports(bridge)
    # IPAM fails (the range is exhausted): the veth pair is rolled back.
    second = Pod(pod, conf)
    second.ifname = "net1"
    status, out = second.run("ADD")
    assert status == 1 and "allocate" in out["msg"], out
    assert lab.link_names(pod) == {"lo", "eth0"}
    assert ports(bridge) == before
    # The pod's interface name is taken: an error naming it, the pod's link untouched.
    third = Pod(pod, bridge_conf(bridge, ipam_dir, "198.18.73.0/24", name="other"))
    status, out = third.run("ADD")
    assert status == 1 and "eth0" in out.get("details", ""), out
    assert lab.link_names(pod) == {"lo", "eth0"}
    assert ports(bridge) == before
    assert reservations(ipam_dir, "other") == []
    # An IPAM plugin that does not exist.
    broken = Pod(pod, {**conf, "ipam": {"type": "no-such-ipam"}})
    broken.ifname = "net2"
    status, out = broken.run("ADD")
    assert status == 1 and "no-such-ipam" in out["msg"]
    assert lab.link_names(pod) == {"lo", "eth0"} and ports(bridge) == before
    # A missing pod namespace: nothing is created.
    gone = Pod("mnt-no-such-pod", bridge_conf(bridge, ipam_dir, "198.18.73.0/24", name="gone"))
    status, out = gone.run("ADD")
    assert status == 1 and "namespace" in out["msg"]
    assert ports(bridge) == before
    assert reservations(ipam_dir, "gone") == []
    first.ok("DEL")


def test_bad_config_is_a_clear_error(pod: str, bridge: str, ipam_dir: Path) -> None:
    for fields, words in (
        ({"vlan": 5000}, "vlan"),
        ({"mtu": "big"}, "mtu"),
        ({"hairpinMode": True, "promiscMode": True}, "hairpin"),
        ({"vlan": 10, "vlanTrunk": [{"id": 20}]}, "vlanTrunk"),
        ({"vlanTrunk": [{"minID": 30}]}, "maxID"),
        ({"bridge": "a-name-far-too-long"}, "bridge"),
    ):
        conf = {**bridge_conf(bridge, ipam_dir, "198.18.73.0/24"), **fields}
        status, out = Pod(pod, conf).run("ADD")
        assert status == 1 and out["code"] == 7 and words in out["msg"], out
    assert lab.link_names(node()) == {"lo"}
    assert lab.link_names(pod) == {"lo"}


def test_check_detects_drift(pod: str, bridge: str, ipam_dir: Path) -> None:
    attachment = Pod(pod, bridge_conf(bridge, ipam_dir, "198.18.74.0/24", "fd00:64:74::/64"))
    result = attachment.add()
    attachment.ok("CHECK")
    status, out = attachment.run("CHECK", prevResult=None)
    assert status == 1 and "prevResult" in out["msg"]
    lab.ip("addr", "del", "fd00:64:74::2/64", "dev", "eth0", netns=pod)
    status, out = attachment.run("CHECK")
    assert status == 1 and "fd00:64:74::2/64 is missing" in out["msg"]
    lab.ip("addr", "add", "fd00:64:74::2/64", "dev", "eth0", "nodad", netns=pod)
    attachment.ok("CHECK")
    host_veth = result["interfaces"][1]["name"]
    lab.ip("link", "set", host_veth, "nomaster", netns=node())
    status, out = attachment.run("CHECK")
    assert status == 1 and "peer of 'eth0'" in out["msg"]
    lab.ip("link", "set", host_veth, "master", bridge, netns=node())
    attachment.ok("CHECK")
    # The IPAM reservation is checked too.
    for name in reservations(ipam_dir):
        (ipam_dir / "br-net" / name).unlink()
    status, out = attachment.run("CHECK")
    assert status == 1 and out["code"] == 3
    attachment.ok("DEL")


def test_del_after_the_pod_namespace_is_gone(bridge: str, ipam_dir: Path) -> None:
    name = unique("mnt-pod-")
    lab.create_netns(name)
    try:
        attachment = Pod(name, bridge_conf(bridge, ipam_dir, "198.18.75.0/24"))
        attachment.add()
    finally:
        lab.delete_netns(name)
    attachment.ok("DEL")
    assert reservations(ipam_dir) == []
    attachment.ok("DEL")


def test_status_and_gc_delegate_to_ipam(pod: str, bridge: str, ipam_dir: Path) -> None:
    conf = bridge_conf(bridge, ipam_dir, "198.18.76.0/24", ipMasq=True)
    kept, dropped = Pod(pod, conf), Pod(pod, conf)
    dropped.ifname = "net1"
    kept.add()
    dropped.add()
    kept.ok("STATUS")
    kept.ok(
        "GC",
        **{"cni.dev/valid-attachments": [{"containerID": kept.container_id, "ifname": "eth0"}]},
    )
    assert reservations(ipam_dir) == ["198.18.76.2"]  # net1's reservation is gone
    comments = {r.comment for r in on_node(lambda: list_rules("inet", MASQ_CHAIN))}
    assert Tag("br-net", kept.container_id, "eth0").comment() in comments
    assert Tag("br-net", dropped.container_id, "net1").comment() not in comments
    lab.delete_link("net1", pod)
    kept.ok("DEL")
    assert reservations(ipam_dir) == []


# -- nftables: ipMasq and macspoofchk ------------------------------------------------------


@contextlib.contextmanager
def outside_world(plugin_node: PluginNode) -> Iterator[str]:
    """A namespace behind the node, at 198.18.77.2 / fd00:64:77::2, with no route back to pods."""
    name = unique("mnt-out-")
    node_end = unique("mnout")
    plugin_node.keep.add(node_end)  # goes with the outside namespace
    with lab.scratch_netns(name):
        lab.ip("link", "add", node_end, "type", "veth", "peer", "name", "up0", "netns", name,
               netns=plugin_node.name)  # fmt: skip
        lab.ip("addr", "add", "198.18.77.1/24", "dev", node_end, netns=plugin_node.name)
        lab.ip("addr", "add", "fd00:64:77::1/64", "dev", node_end, "nodad", netns=plugin_node.name)
        lab.ip("link", "set", node_end, "up", netns=plugin_node.name)
        lab.ip("addr", "add", "198.18.77.2/24", "dev", "up0", netns=name)
        lab.ip("addr", "add", "fd00:64:77::2/64", "dev", "up0", "nodad", netns=name)
        lab.ip("link", "set", "up0", "up", netns=name)
        yield name


def test_ip_masq_rules_and_real_traffic(
    pod: str, bridge: str, ipam_dir: Path, plugin_node: PluginNode
) -> None:
    with outside_world(plugin_node):
        plain = Pod(pod, bridge_conf(bridge, ipam_dir, "198.18.78.0/24", isDefaultGateway=True))
        plain.add()
        # Without masquerading the outside world cannot answer: it has no route to pods.
        assert not ping(pod, "198.18.77.2")
        plain.ok("DEL")
        conf = bridge_conf(
            bridge,
            ipam_dir,
            "198.18.78.0/24",
            "fd00:64:78::/64",
            isDefaultGateway=True,
            ipMasq=True,
        )
        masqueraded = Pod(pod, conf)
        v4, v6 = (ip["address"].split("/")[0] for ip in masqueraded.add()["ips"])
        tag = Tag("br-net", masqueraded.container_id, "eth0").comment()
        mine = [r for r in on_node(lambda: list_rules("inet", MASQ_CHAIN)) if r.comment == tag]
        assert len(mine) == 2
        listing = nft_chain("inet", MASQ_CHAIN)
        assert f"ip saddr {v4} ip daddr != {{ 198.18.78.0/24, 224.0.0.0/4 }} masquerade" in listing
        assert f"ip6 saddr {v6} ip6 daddr != {{ fd00:64:78::/64, ff00::/8 }} masquerade" in listing
        assert ping(pod, "198.18.77.2")
        assert ping(pod, "fd00:64:77::2")
        masqueraded.ok("CHECK")
        masqueraded.ok("DEL")
        assert not [r for r in on_node(lambda: list_rules("inet", MASQ_CHAIN)) if r.comment == tag]


def test_del_with_a_config_broken_since_add_removes_everything(
    pod: str, bridge: str, ipam_dir: Path
) -> None:
    # A runtime without a cached config sends today's config; one that no longer
    # parses must not leave the pod stuck in DEL.
    conf = bridge_conf(bridge, ipam_dir, "198.18.76.0/24", ipMasq=True, macspoofchk=True)
    attachment = Pod(pod, conf)
    attachment.add()
    tag = Tag("br-net", attachment.container_id, "eth0").comment()
    for broken in ({"mtu": "1400"}, {"vlan": 5000, "ipam": {**conf["ipam"], "ranges": "x"}}):
        status, out = attachment.run("DEL", **broken)
        assert status == 0, out
    assert lab.link_names(pod) == {"lo"}
    assert ports(bridge) == set()
    assert reservations(ipam_dir) == []
    for family, chain in (("inet", MASQ_CHAIN), ("bridge", SPOOF_CHAIN)):
        assert not [r for r in on_node(lambda: list_rules(family, chain)) if r.comment == tag]  # noqa: B023
    # An IPAM failing for another reason than its config still fails DEL (to be retried).
    dead = {"type": "etcd", "endpoints": [f"127.0.0.1:{free_port()}"], "deadline": 0.3}
    unreachable = {"type": "multinic-ipam", "range": "198.18.76.0/24", "store": dead}
    status, out = attachment.run("DEL", mtu="1400", ipam=unreachable)
    assert status == 1 and out["code"] == ErrorCode.TRY_AGAIN_LATER, out


def test_macspoofchk_drops_frames_with_another_source_mac(
    pod: str, pod2: str, bridge: str, ipam_dir: Path
) -> None:
    conf = bridge_conf(bridge, ipam_dir, "198.18.79.0/24", macspoofchk=True)
    first, second = Pod(pod, conf), Pod(pod2, conf)
    result = first.add()
    second.add()
    tag = Tag("br-net", first.container_id, "eth0").comment()
    rules = [r for r in on_node(lambda: list_rules("bridge", SPOOF_CHAIN)) if r.comment == tag]
    assert len(rules) == 1
    listing = nft_chain("bridge", SPOOF_CHAIN)
    host_veth, mac = result["interfaces"][1]["name"], result["interfaces"][2]["mac"]
    assert f'iifname "{host_veth}" ether saddr != {mac} drop' in listing
    assert ping(pod, "198.18.79.3")
    lab.ip("link", "set", "eth0", "address", "02:64:79:ff:ff:ff", netns=pod)
    lab.ip("neigh", "flush", "all", netns=pod2)
    assert not ping(pod, "198.18.79.3")
    first.ok("DEL")
    second.ok("DEL")
    assert not [r for r in on_node(lambda: list_rules("bridge", SPOOF_CHAIN)) if r.comment == tag]


# -- as an executable, through our runtime ----------------------------------------------------


def test_executable_through_our_runtime_with_reference_host_local(
    pod: str, bridge: str, tmp_path: Path
) -> None:
    bin_dir = tmp_path / "bin"
    install_plugins(str(bin_dir))
    conflist = {
        "cniVersion": "1.0.0",
        "name": "br-exec",
        "plugins": [
            {
                "type": "multinic-bridge",
                "bridge": bridge,
                "isDefaultGateway": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(tmp_path / "ipam"),
                    "ranges": [[{"subnet": "198.18.73.0/24"}], [{"subnet": "fd00:64:73::/64"}]],
                },
            }
        ],
    }
    net = parse_network_config_list(conflist)
    runtime = Runtime([bin_dir, REFERENCE_PLUGIN_DIR], cache_dir=tmp_path / "cache")
    rt = RuntimeConf(unique("ctr-"), str(lab.netns_path(pod)), "eth0")
    # The runtime spawns the plugins from a thread in the node's namespace.
    result = on_node(lambda: runtime.add(net, rt))
    assert [str(ip.address) for ip in result.ips] == ["198.18.73.2/24", "fd00:64:73::2/64"]
    assert lab.addresses("eth0", pod) == ["198.18.73.2/24", "fd00:64:73::2/64"]
    assert ping(pod, "198.18.73.1") and ping(pod, "fd00:64:73::1")
    on_node(lambda: runtime.check(net, rt))
    on_node(lambda: runtime.delete(net, rt))
    assert lab.link_names(pod) == {"lo"}
    assert lab.link_names(node()) == {"lo", bridge}
    assert reservations(tmp_path / "ipam", "br-exec") == []
    on_node(lambda: runtime.delete(net, rt))
