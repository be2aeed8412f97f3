"""multinic's runtime drives the reference (Go) plugins in real namespaces.

Proves the runtime speaks the protocol the reference plugins expect: config
injection, prevResult chaining, libcni's cache format, CHECK, DEL (twice), GC
and STATUS, at cniVersion 1.1.0 (and every older version both sides speak),
with nothing left behind in the pod, on the node or on disk. The plugins are
containernetworking/plugins v1.10, built from their Go module
(tests/support/third_party.py).

The plugins' host side (bridges, host veth ends, gateway addresses, a macvlan
parent) is a scratch node namespace per test (``checked_node``): the runtime is
called from a thread in it, so its executables start there. Nothing lands in the
real host's namespace; before the node goes, a link beyond those the test kept
fails the test.
"""

from __future__ import annotations

import base64
import functools
import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest

from multinic.cni.config import Attachment, NetworkConfigList, parse_network_config_list
from multinic.cni.errors import CNIError
from multinic.cni.runtime import Runtime, RuntimeConf
from multinic.lab import netns as lab
from multinic.plugins.install import install_plugins
from tests.netns.conftest import REFERENCE_PLUGIN_DIR, unique
from tests.support.conflists import bridge_plugin, conflist, host_local
from tests.support.lower_plugins import CheckedNode, on_node

SUBNET_V4 = ipaddress.ip_network("198.18.10.0/24")
SUBNET_V6 = ipaddress.ip_network("fd00:18:10::/64")


@pytest.fixture(autouse=True)
def node(plugin_node: CheckedNode) -> CheckedNode:
    """The node the plugins run in (tests/netns/conftest.py checks what is left in it)."""
    return plugin_node


def bridge_network(
    name: str,
    node: CheckedNode,
    data_dir: Path,
    *then: dict[str, Any],
    subnets: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = (SUBNET_V4,),
    versions: list[str] | None = None,
) -> NetworkConfigList:
    """bridge (a fresh one, which outlives DEL, on the node) + host-local, then ``then``."""
    bridge = unique("mntbr")
    node.keep.add(bridge)
    first = bridge_plugin(bridge, host_local(data_dir, *subnets))
    versions = versions or ["1.0.0", "1.1.0"]
    obj = conflist(name, first, *then, versions=versions)
    obj["cniVersion"] = versions[0]  # the newest of both keys wins (1.1.0 by default)
    return parse_network_config_list(obj)


def attach(pod: str, container_id: str | None = None, ifname: str = "eth0") -> RuntimeConf:
    return RuntimeConf(container_id or f"cid-{pod}", str(lab.netns_path(pod)), ifname)


def reservations(data_dir: Path, network: str) -> set[str]:
    """host-local's reserved addresses: one file per IP in <dataDir>/<network>/."""
    directory = data_dir / network
    if not directory.exists():
        return set()
    return {p.name for p in directory.iterdir() if not p.name.startswith(("last_reserved", "lock"))}


def assert_cache_entry(runtime: Runtime, net: NetworkConfigList, rt: RuntimeConf) -> dict[str, Any]:
    path = runtime.cache.path(net.name, rt.container_id, rt.ifname)
    entry = json.loads(path.read_bytes())
    assert list(entry)[:5] == ["kind", "containerId", "config", "ifName", "networkName"]
    assert entry["kind"] == "cniCacheV1"
    assert entry["containerId"] == rt.container_id
    assert entry["ifName"] == rt.ifname
    assert entry["networkName"] == net.name
    assert entry["netns"] == rt.netns
    assert base64.b64decode(entry["config"]) == net.source_bytes
    assert entry["result"]["cniVersion"] == net.negotiated_version()
    assert path.stat().st_mode & 0o777 == 0o600
    return entry


def test_bridge_host_local_add_check_del(
    runtime: Runtime, pod: str, node: CheckedNode, tmp_path: Path
) -> None:
    data_dir = tmp_path / "ipam"
    net = bridge_network("interop-bridge", node, data_dir)
    rt = attach(pod)

    result = on_node(lambda: runtime.add(net, rt))

    assert net.negotiated_version() == "1.1.0"
    assert result.cni_version == "1.1.0"
    (ip,) = result.ips
    assert ip.address.network == SUBNET_V4
    assert ip.gateway == ipaddress.ip_address("198.18.10.1")
    assert result.interfaces[ip.interface or 0].sandbox == rt.netns
    assert lab.addresses("eth0", netns=pod) == [str(ip.address)]
    assert reservations(data_dir, net.name) == {str(ip.address.ip)}
    entry = assert_cache_entry(runtime, net, rt)
    assert entry["result"] == result.to_dict()

    on_node(lambda: runtime.check(net, rt))

    on_node(lambda: runtime.delete(net, rt))
    assert "eth0" not in lab.link_names(pod)
    assert reservations(data_dir, net.name) == set()
    assert not runtime.cache.path(net.name, rt.container_id, rt.ifname).exists()
    on_node(lambda: runtime.delete(net, rt))  # a second DEL succeeds


def test_dual_stack_bridge(runtime: Runtime, pod: str, node: CheckedNode, tmp_path: Path) -> None:
    net = bridge_network("interop-dual", node, tmp_path / "ipam", subnets=(SUBNET_V4, SUBNET_V6))
    rt = attach(pod)

    result = on_node(lambda: runtime.add(net, rt))

    networks = sorted((ip.address.network for ip in result.ips), key=lambda n: n.version)
    assert networks == [SUBNET_V4, SUBNET_V6]
    in_pod = lab.addresses("eth0", netns=pod)
    assert {str(ip.address) for ip in result.ips} <= set(in_pod)
    on_node(lambda: runtime.check(net, rt))
    on_node(lambda: runtime.delete(net, rt))
    assert "eth0" not in lab.link_names(pod)


def test_check_reports_drift(runtime: Runtime, pod: str, node: CheckedNode, tmp_path: Path) -> None:
    net = bridge_network("interop-drift", node, tmp_path / "ipam")
    rt = attach(pod)
    result = on_node(lambda: runtime.add(net, rt))

    lab.ip("addr", "del", str(result.ips[0].address), "dev", "eth0", netns=pod)

    with pytest.raises(CNIError) as failure:
        on_node(lambda: runtime.check(net, rt))
    assert "bridge" in str(failure.value)
    on_node(lambda: runtime.delete(net, rt))


def test_ptp(runtime: Runtime, pod: str, node: CheckedNode, tmp_path: Path) -> None:
    data_dir = tmp_path / "ipam"
    ptp = {"type": "ptp", "ipMasq": False, "mtu": 1400, "ipam": host_local(data_dir, SUBNET_V4)}
    net = parse_network_config_list(conflist("interop-ptp", ptp))
    rt = attach(pod)

    result = on_node(lambda: runtime.add(net, rt))

    host_side = [i.name for i in result.interfaces if not i.sandbox]
    assert len(host_side) == 1
    assert host_side[0] in lab.link_names(node.name)
    assert lab.addresses("eth0", netns=pod) == [str(result.ips[0].address)]
    pod_link = lab.ip_json("link", "show", "eth0", netns=pod)[0]
    assert pod_link["mtu"] == 1400
    on_node(lambda: runtime.check(net, rt))

    on_node(lambda: runtime.delete(net, rt))
    assert host_side[0] not in lab.link_names(node.name)
    assert "eth0" not in lab.link_names(pod)
    assert reservations(data_dir, net.name) == set()
    on_node(lambda: runtime.delete(net, rt))


def test_macvlan_on_a_veth_parent(
    runtime: Runtime, pod: str, node: CheckedNode, tmp_path: Path
) -> None:
    parent, peer = unique("mntpa"), unique("mntpb")
    node.keep.update((parent, peer))
    lab.ip("link", "add", parent, "type", "veth", "peer", "name", peer, netns=node.name)
    lab.ip("link", "set", parent, "up", netns=node.name)
    data_dir = tmp_path / "ipam"
    macvlan = {
        "type": "macvlan",
        "master": parent,
        "mode": "bridge",
        "ipam": host_local(data_dir, SUBNET_V4),
    }
    net = parse_network_config_list(conflist("interop-macvlan", macvlan))
    rt = attach(pod, ifname="net1")

    result = on_node(lambda: runtime.add(net, rt))

    (iface,) = result.interfaces
    assert iface.name == "net1"
    assert iface.sandbox == rt.netns
    link = lab.ip_json("-d", "link", "show", "net1", netns=pod)[0]
    assert link["linkinfo"]["info_kind"] == "macvlan"
    assert link["linkinfo"]["info_data"]["mode"] == "bridge"
    assert lab.addresses("net1", netns=pod) == [str(result.ips[0].address)]
    on_node(lambda: runtime.check(net, rt))

    on_node(lambda: runtime.delete(net, rt))
    assert "net1" not in lab.link_names(pod)
    assert reservations(data_dir, net.name) == set()
    on_node(lambda: runtime.delete(net, rt))


def test_bridge_then_tuning_chain(
    runtime: Runtime, pod: str, node: CheckedNode, tmp_path: Path
) -> None:
    tuning = {
        "type": "tuning",
        "mtu": 1360,
        "mac": "02:00:5e:10:00:42",
        "sysctl": {"net.ipv4.conf.eth0.arp_notify": "1"},
    }
    net = bridge_network("interop-tuning", node, tmp_path / "ipam", tuning)
    rt = attach(pod)

    result = on_node(lambda: runtime.add(net, rt))

    link = lab.ip_json("link", "show", "eth0", netns=pod)[0]
    assert link["mtu"] == 1360
    assert link["address"] == "02:00:5e:10:00:42"
    sandbox = [i for i in result.interfaces if i.sandbox]
    assert sandbox[0].mac == "02:00:5e:10:00:42"  # tuning rewrote bridge's result
    arp_notify = lab.ip("netns", "exec", pod, "cat", "/proc/sys/net/ipv4/conf/eth0/arp_notify")
    assert arp_notify.strip() == "1"
    on_node(lambda: runtime.check(net, rt))

    on_node(lambda: runtime.delete(net, rt))
    assert "eth0" not in lab.link_names(pod)


def test_gc_with_empty_valid_list_releases_everything_cached(
    runtime: Runtime, pod: str, pod2: str, node: CheckedNode, tmp_path: Path
) -> None:
    data_dir = tmp_path / "ipam"
    net = bridge_network("interop-gc", node, data_dir)
    first, second = attach(pod), attach(pod2)
    on_node(lambda: runtime.add(net, first))
    on_node(lambda: runtime.add(net, second))
    assert len(reservations(data_dir, net.name)) == 2

    on_node(lambda: runtime.gc(net, []))

    assert reservations(data_dir, net.name) == set()
    assert list(runtime.cache.attachments(net.name)) == []
    assert "eth0" not in lab.link_names(pod)
    assert "eth0" not in lab.link_names(pod2)


def test_gc_keeps_valid_attachments(
    runtime: Runtime, pod: str, pod2: str, node: CheckedNode, tmp_path: Path
) -> None:
    data_dir = tmp_path / "ipam"
    net = bridge_network("interop-gc-keep", node, data_dir)
    kept, stale = attach(pod), attach(pod2)
    kept_ip = on_node(lambda: runtime.add(net, kept)).ips[0].address.ip
    on_node(lambda: runtime.add(net, stale))

    on_node(lambda: runtime.gc(net, [Attachment(kept.container_id, kept.ifname)]))

    assert reservations(data_dir, net.name) == {str(kept_ip)}
    assert [(a.container_id, a.ifname) for a in runtime.cache.attachments(net.name)] == [
        (kept.container_id, kept.ifname)
    ]
    assert "eth0" in lab.link_names(pod)
    assert "eth0" not in lab.link_names(pod2)
    on_node(lambda: runtime.delete(net, kept))


def leak(runtime: Runtime, net: NetworkConfigList, rt: RuntimeConf, pod: str) -> None:
    """Forget an attachment the way a crashed runtime does: the pod and the cache
    entry go, the IPAM reservation stays (only a plugin's GC can find it now)."""
    runtime.cache.path(net.name, rt.container_id, rt.ifname).unlink()
    lab.delete_netns(pod)


def test_reference_bridge_gc_does_not_reach_its_ipam(
    runtime: Runtime, pod: str, pod2: str, node: CheckedNode, tmp_path: Path
) -> None:
    """At 1.1.0 GC reaches every plugin, but the reference bridge 1.10 has no GC
    handler (its skel answers success without delegating to host-local), so a
    reservation with no cache entry survives it; our bridge delegates (next test)."""
    data_dir = tmp_path / "ipam"
    net = bridge_network("interop-gc-leak", node, data_dir)
    kept, lost = attach(pod), attach(pod2)
    kept_ip = on_node(lambda: runtime.add(net, kept)).ips[0].address.ip
    lost_ip = on_node(lambda: runtime.add(net, lost)).ips[0].address.ip
    leak(runtime, net, lost, pod2)

    on_node(lambda: runtime.gc(net, [Attachment(kept.container_id, kept.ifname)]))

    assert reservations(data_dir, net.name) == {str(kept_ip), str(lost_ip)}
    on_node(lambda: runtime.delete(net, kept))


def test_reference_host_local_gc_under_our_bridge(
    pod: str, pod2: str, node: CheckedNode, tmp_path: Path
) -> None:
    """multinic-bridge delegates GC to the reference host-local, which honours our
    runtime's valid-attachments list: the leaked reservation goes, the valid one stays."""
    install_plugins(str(tmp_path / "bin"))
    runtime = Runtime([tmp_path / "bin", REFERENCE_PLUGIN_DIR], cache_dir=tmp_path / "cache")
    data_dir = tmp_path / "ipam"
    bridge = unique("mntbr")
    node.keep.add(bridge)
    ours = {**bridge_plugin(bridge, host_local(data_dir, SUBNET_V4)), "type": "multinic-bridge"}
    net = parse_network_config_list(conflist("interop-gc-ipam", ours))
    kept, lost = attach(pod), attach(pod2)
    kept_ip = on_node(lambda: runtime.add(net, kept)).ips[0].address.ip
    on_node(lambda: runtime.add(net, lost))
    leak(runtime, net, lost, pod2)

    on_node(lambda: runtime.gc(net, [Attachment(kept.container_id, kept.ifname)]))

    assert reservations(data_dir, net.name) == {str(kept_ip)}
    assert "eth0" in lab.link_names(pod)
    on_node(lambda: runtime.delete(net, kept))
    assert reservations(data_dir, net.name) == set()


def test_status_of_reference_plugins(runtime: Runtime, node: CheckedNode, tmp_path: Path) -> None:
    """STATUS at 1.1.0 reaches every plugin: bridge (which asks host-local, which has
    no STATUS handler and answers ready), tuning, ptp, macvlan; all ready."""
    data_dir = tmp_path / "ipam"
    chain = bridge_network("interop-status", node, data_dir, {"type": "tuning", "mtu": 1400})
    on_node(lambda: runtime.status(chain))
    for plugin in (
        {"type": "ptp", "ipam": host_local(data_dir, SUBNET_V4)},
        {"type": "macvlan", "master": "lo", "ipam": host_local(data_dir, SUBNET_V4)},
    ):
        net = parse_network_config_list(conflist("interop-status-" + plugin["type"], plugin))
        on_node(functools.partial(runtime.status, net))


def test_reference_bridge_relays_our_ipam_not_available(
    pod: str, node: CheckedNode, tmp_path: Path
) -> None:
    """The reference bridge delegates STATUS to multinic-host-local; our 'range
    exhausted' (code 50) comes back through it unchanged, and clears after DEL."""
    install_plugins(str(tmp_path / "bin"))
    runtime = Runtime([tmp_path / "bin", REFERENCE_PLUGIN_DIR], cache_dir=tmp_path / "cache")
    bridge = unique("mntbr")
    node.keep.add(bridge)
    one = {
        "type": "multinic-host-local",
        "ranges": [
            [{"subnet": str(SUBNET_V4), "rangeStart": "198.18.10.9", "rangeEnd": "198.18.10.9"}]
        ],
        "dataDir": str(tmp_path / "ipam"),
    }
    net = parse_network_config_list(conflist("interop-status-full", bridge_plugin(bridge, one)))
    on_node(lambda: runtime.status(net))
    rt = attach(pod)
    on_node(lambda: runtime.add(net, rt))

    with pytest.raises(CNIError) as failure:
        on_node(lambda: runtime.status(net))

    assert failure.value.code == 50
    assert "no free address" in str(failure.value)
    on_node(lambda: runtime.delete(net, rt))
    on_node(lambda: runtime.status(net))


def test_reference_plugins_speak_1_1_0(runtime: Runtime) -> None:
    """VERSION: the reference plugins 1.10 speak every version up to 1.1.0.

    (Debian 12's 1.1.1 stopped at 1.0.0, and a 1.1.0 list failed with code 1.)
    """
    for plugin in ("bridge", "host-local", "ptp", "macvlan", "tuning"):
        info = runtime.version_info(plugin)
        assert info.supported_versions[-1] == "1.1.0", plugin
        assert {"0.3.0", "0.3.1", "0.4.0", "1.0.0"} <= set(info.supported_versions), plugin


@pytest.mark.parametrize("version", ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
def test_every_shared_version_round_trips(
    runtime: Runtime, pod: str, node: CheckedNode, tmp_path: Path, version: str
) -> None:
    """A list at each version both sides speak: ADD (result in that version), CHECK, DEL."""
    data_dir = tmp_path / "ipam"
    net = bridge_network("interop-v" + version.replace(".", ""), node, data_dir, versions=[version])
    rt = attach(pod)

    result = on_node(lambda: runtime.add(net, rt))

    assert result.cni_version == version
    assert assert_cache_entry(runtime, net, rt)["result"]["cniVersion"] == version
    assert lab.addresses("eth0", netns=pod) == [str(result.ips[0].address)]
    if version >= "0.4.0":
        on_node(lambda: runtime.check(net, rt))
    on_node(lambda: runtime.delete(net, rt))
    assert "eth0" not in lab.link_names(pod)
    assert reservations(data_dir, net.name) == set()


def test_a_version_nobody_speaks_fails_cleanly(
    runtime: Runtime, pod: str, node: CheckedNode, tmp_path: Path
) -> None:
    """A list only at 1.2.0 (unknown to both sides): code 1 before any plugin runs."""
    data_dir = tmp_path / "ipam"
    net = bridge_network("interop-version", node, data_dir, versions=["1.2.0"])
    rt = attach(pod)

    with pytest.raises(CNIError) as failure:
        on_node(lambda: runtime.add(net, rt))

    assert failure.value.code == 1
    assert "eth0" not in lab.link_names(pod)
    assert reservations(data_dir, net.name) == set()
    assert not runtime.cache.path(net.name, rt.container_id, rt.ifname).exists()


def test_failed_chain_is_rolled_back(
    runtime: Runtime, pod: str, node: CheckedNode, tmp_path: Path
) -> None:
    """tuning refuses a sysctl outside the interface: bridge's work must be undone."""
    data_dir = tmp_path / "ipam"
    bad_tuning = {"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.no_such_knob": "1"}}
    net = bridge_network("interop-rollback", node, data_dir, bad_tuning)
    rt = attach(pod)

    with pytest.raises(CNIError) as failure:
        on_node(lambda: runtime.add(net, rt))

    assert "tuning" in str(failure.value)
    assert "eth0" not in lab.link_names(pod)
    assert reservations(data_dir, net.name) == set()
    assert not runtime.cache.path(net.name, rt.container_id, rt.ifname).exists()
