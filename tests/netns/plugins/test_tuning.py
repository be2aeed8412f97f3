"""multinic-tuning in real namespaces: applied, refused, checked, restored, rolled back.

In-process tests tune one end of a veth pair the test puts in the pod (what an
interface plugin would have made); the runtime tests chain the executable after
the reference ``bridge`` (the built plugins). The host side (the veths' other
ends, the bridge) is the test's scratch node namespace (``plugin_node``), never
the real host's. Everything is observed with iproute2 and /proc/sys inside the
pod. Addresses: 198.18.96.0/20, fd00:96::/48.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from multinic.cni import skel
from multinic.cni.config import parse_network_config_list
from multinic.cni.errors import CNIError
from multinic.cni.runtime import Runtime, RuntimeConf
from multinic.lab import netns as lab
from multinic.plugins import tuning
from multinic.plugins.install import install_plugins
from multinic.plugins.tuning import PLUGIN
from tests.netns.conftest import REFERENCE_PLUGIN_DIR, unique
from tests.netns.plugins.conftest import PluginNode
from tests.support.lower_plugins import call, conf, link, ok, on_node, with_prev

TYPE = "multinic-tuning"

pytestmark = pytest.mark.usefixtures("plugin_node")

SYSCTLS = {
    "net.ipv4.conf.IFNAME.arp_notify": "1",
    "net.ipv6.conf.IFNAME.accept_ra": "0",
    "net.ipv4.neigh.IFNAME.retrans_time_ms": "500",
    "net.ipv4.ip_forward": "1",
    "net.ipv4.ip_local_port_range": "20000 30000",
    "net.core.somaxconn": "1024",
}


def proc_sys(pod: str, key: str) -> str:
    """A sysctl read inside the pod by cat, through /proc/sys (not by our code)."""
    path = "/proc/sys/" + (key if "/" in key else key.replace(".", "/"))
    return lab.ip("netns", "exec", pod, "cat", path).strip()


def observe(pod: str, ifname: str = "net1") -> dict[str, Any]:
    """What iproute2 says about the attributes tuning changes, plus the sysctls."""
    seen = link(pod, ifname)
    return {
        "mac": seen["address"],
        "mtu": seen["mtu"],
        "txqlen": seen["txqlen"],
        "promisc": seen["promiscuity"] > 0,
        "allmulti": "ALLMULTI" in seen["flags"],
        "sysctl": {key: proc_sys(pod, key.replace("IFNAME", ifname)).split() for key in SYSCTLS},
    }


@pytest.fixture
def veth(pod: str, plugin_node: PluginNode) -> str:
    """A veth pair: one end in the pod as net1, the other on the node; the node end's name."""
    host = unique("mntu")
    plugin_node.keep.add(host)
    lab.ip("link", "add", host, "type", "veth", "peer", "name", "net1", "netns", pod,
           netns=plugin_node.name)  # fmt: skip
    lab.ip("link", "set", host, "up", netns=plugin_node.name)
    lab.ip("link", "set", "net1", "up", netns=pod)
    return host


def prev_result(pod: str, ifname: str = "net1") -> dict[str, Any]:
    mac = link(pod, ifname)["address"]
    sandbox = str(lab.netns_path(pod))
    return {
        "cniVersion": "1.1.0",
        "interfaces": [{"name": ifname, "mac": mac, "sandbox": sandbox}],
        "ips": [{"address": "198.18.96.10/24", "interface": 0}],
    }


def tuned(tmp_path: Path, pod: str, ifname: str = "net1", **fields: Any) -> dict[str, Any]:
    config = conf(TYPE, "tunenet", dataDir=str(tmp_path / "state"), **fields)
    return with_prev(config, prev_result(pod, ifname))


def state_files(tmp_path: Path) -> list[str]:
    directory = tmp_path / "state"
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


EVERYTHING = {
    "sysctl": SYSCTLS,
    "mac": "02:00:00:96:00:01",
    "promisc": True,
    "mtu": 1400,
    "txQLen": 2000,
    "allmulti": True,
}


def test_add_applies_check_passes_del_restores(pod: str, veth: str, tmp_path: Path) -> None:
    before = observe(pod)
    config = tuned(tmp_path, pod, **EVERYTHING)
    result = ok(PLUGIN, "ADD", config, pod)

    after = observe(pod)
    assert after["mac"] == "02:00:00:96:00:01" and after["mtu"] == 1400
    assert after["txqlen"] == 2000 and after["promisc"] and after["allmulti"]
    assert after["sysctl"] == {key: value.split() for key, value in SYSCTLS.items()}
    assert after["sysctl"] != before["sysctl"]  # the test changes something real
    # The previous result passes through, with the MAC the interface has now.
    assert result["interfaces"][0]["mac"] == "02:00:00:96:00:01"
    assert result["ips"] == config["prevResult"]["ips"]
    assert state_files(tmp_path) == ["cid-1-net1.json"]
    saved = json.loads((tmp_path / "state" / "cid-1-net1.json").read_text())
    assert saved["mtu"] == before["mtu"] and saved["mac"] == before["mac"]

    ok(PLUGIN, "CHECK", with_prev(config, result), pod)
    ok(PLUGIN, "DEL", with_prev(config, result), pod)
    assert observe(pod) == before
    assert state_files(tmp_path) == []
    ok(PLUGIN, "DEL", with_prev(config, result), pod)
    assert observe(pod) == before


@pytest.mark.parametrize(
    "key",
    [
        "net.core.rmem_max",  # global to the host, not namespaced
        "net.ipv4.tcp_mem",
        "kernel.hostname",  # not a network key at all
        "vm.swappiness",
        "net/ipv4/conf/../../../kernel/hostname",
        "net.ipv4.conf.net1",  # a directory, not a key
        "net.netfilter.nf_conntrack_max",
    ],
)
def test_refused_keys_are_config_errors_and_change_nothing(
    pod: str, veth: str, tmp_path: Path, key: str
) -> None:
    before = observe(pod)
    config = tuned(tmp_path, pod, sysctl={"net.ipv4.ip_forward": "1", key: "1"}, mtu=1300)
    status, err = call(PLUGIN, "ADD", config, pod)
    assert status == 1 and err["code"] == 7, err
    assert repr(key) in err["msg"]
    assert observe(pod) == before
    assert state_files(tmp_path) == []


def test_duplicated_keys_are_refused(pod: str, veth: str, tmp_path: Path) -> None:
    config = tuned(tmp_path, pod)
    before = proc_sys(pod, "net.core.somaxconn")
    text = json.dumps(config)[:-1] + ', "sysctl": {"net.core.somaxconn": "100", '
    text += '"net.core.somaxconn": "200"}}'
    env = {
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "cid-1",
        "CNI_NETNS": str(lab.netns_path(pod)),
        "CNI_IFNAME": "net1",
        "CNI_PATH": str(REFERENCE_PLUGIN_DIR),
    }
    status, out = on_node(lambda: skel.run(PLUGIN, env, text.encode()))
    assert status == 1 and b"duplicated sysctl keys" in out
    assert proc_sys(pod, "net.core.somaxconn") == before


def test_interface_names_with_dots(pod: str, plugin_node: PluginNode, tmp_path: Path) -> None:
    host = unique("mntu")
    plugin_node.keep.add(host)
    lab.ip("link", "add", host, "type", "veth", "peer", "name", "eth0.96", "netns", pod,
           netns=plugin_node.name)  # fmt: skip
    config = tuned(
        tmp_path,
        pod,
        "eth0.96",
        sysctl={
            "net/ipv4/conf/eth0.96/arp_notify": "1",  # sysctl(8)'s slash form
            "net.ipv4.conf.eth0.96.arp_ignore": "2",  # dotted: the leaf is the last part
            "net.ipv6.conf.IFNAME.accept_ra": "0",
        },
    )
    result = ok(PLUGIN, "ADD", config, pod, ifname="eth0.96")
    assert proc_sys(pod, "net/ipv4/conf/eth0.96/arp_notify") == "1"
    assert proc_sys(pod, "net/ipv4/conf/eth0.96/arp_ignore") == "2"
    assert proc_sys(pod, "net/ipv6/conf/eth0.96/accept_ra") == "0"
    ok(PLUGIN, "CHECK", with_prev(config, result), pod, ifname="eth0.96")
    ok(PLUGIN, "DEL", config, pod, ifname="eth0.96")
    assert proc_sys(pod, "net/ipv4/conf/eth0.96/arp_notify") == "0"
    assert proc_sys(pod, "net/ipv4/conf/eth0.96/arp_ignore") == "0"
    assert proc_sys(pod, "net/ipv6/conf/eth0.96/accept_ra") == "1"


def test_check_names_each_drift(pod: str, veth: str, tmp_path: Path) -> None:
    config = tuned(tmp_path, pod, **EVERYTHING)
    result = ok(PLUGIN, "ADD", config, pod)
    lab.ip("link", "set", "net1", "mtu", "1450", "allmulticast", "off", netns=pod)
    lab.ip("link", "set", "net1", "txqueuelen", "500", netns=pod)
    lab.ip("netns", "exec", pod, "sysctl", "-q", "-w", "net.core.somaxconn=77")
    status, err = call(PLUGIN, "CHECK", with_prev(config, result), pod)
    assert status == 1, err
    details = err["details"]
    assert "MTU is 1450, configured 1400" in details
    assert "allmulti is False, configured True" in details
    assert "txqueuelen is 500, configured 2000" in details
    assert "sysctl net.core.somaxconn is '77', configured '1024'" in details
    lab.ip("link", "set", "net1", "address", "02:00:00:96:00:99", "promisc", "off", netns=pod)
    status, err = call(PLUGIN, "CHECK", with_prev(config, result), pod)
    assert "MAC is 02:00:00:96:00:99, configured 02:00:00:96:00:01" in err["details"]
    assert "promisc is False, configured True" in err["details"]
    ok(PLUGIN, "DEL", config, pod)


@pytest.mark.parametrize(
    ("fields", "refused"),
    [
        ({"mtu": 100000}, "cannot change link"),  # beyond a veth's maximum
        ({"mac": "01:00:5e:00:00:01"}, "cannot change link"),  # multicast: not a station
    ],
)
def test_kernel_refusal_part_way_rolls_back(
    pod: str, veth: str, tmp_path: Path, fields: dict[str, Any], refused: str
) -> None:
    before = observe(pod)
    config = tuned(tmp_path, pod, sysctl=SYSCTLS, promisc=True, **fields)
    status, err = call(PLUGIN, "ADD", config, pod)
    assert status == 1 and refused in err["msg"], err
    assert observe(pod) == before  # the sysctls and promisc written first are back
    assert state_files(tmp_path) == []


def test_prev_result_is_required(pod: str, veth: str, tmp_path: Path) -> None:
    config = conf(TYPE, "tunenet", dataDir=str(tmp_path / "state"), mtu=1300)
    status, err = call(PLUGIN, "ADD", config, pod)
    assert status == 1 and "prevResult missing" in err["msg"]
    assert link(pod, "net1")["mtu"] == 1500


def test_del_when_the_pod_is_gone(plugin_node: PluginNode, tmp_path: Path) -> None:
    name = unique("mnt-pod-")
    with lab.scratch_netns(name):
        host = unique("mntu")
        plugin_node.keep.add(host)  # goes with the pod's namespace
        lab.ip("link", "add", host, "type", "veth", "peer", "name", "net1", "netns", name,
               netns=plugin_node.name)  # fmt: skip
        config = tuned(tmp_path, name, mtu=1300, sysctl={"net.ipv4.ip_forward": "1"})
        ok(PLUGIN, "ADD", config, name)
        assert state_files(tmp_path) == ["cid-1-net1.json"]
    ok(PLUGIN, "DEL", config, None, netns=str(lab.netns_path(name)))
    assert state_files(tmp_path) == []
    ok(PLUGIN, "DEL", config, None)  # and without CNI_NETNS at all


def test_mac_precedence_config_args_runtime_config_args_cni(
    pod: str, veth: str, tmp_path: Path
) -> None:
    def mac_after(config: dict[str, Any], args: str = "") -> str:
        ok(PLUGIN, "ADD", config, pod, args=args)
        mac = str(link(pod, "net1")["address"])
        ok(PLUGIN, "DEL", config, pod)
        return mac

    config = tuned(tmp_path, pod, mac="02:00:00:96:00:01")
    assert mac_after(config) == "02:00:00:96:00:01"
    assert mac_after(config, "IgnoreUnknown=1;MAC=02:00:00:96:00:02") == "02:00:00:96:00:02"
    config["runtimeConfig"] = {"mac": "02:00:00:96:00:03"}
    assert mac_after(config, "MAC=02:00:00:96:00:02") == "02:00:00:96:00:03"
    config["args"] = {"cni": {"mac": "02:00:00:96:00:04", "mtu": 1280}}
    assert mac_after(config, "MAC=02:00:00:96:00:02") == "02:00:00:96:00:04"
    status, err = call(PLUGIN, "ADD", {**config, "args": {"cni": {"mac": "nope"}}}, pod)
    assert status == 1 and err["code"] == 7 and "invalid MAC" in err["msg"]


def test_reference_allowlist_file_narrows_the_builtin_one(
    pod: str, veth: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    allowlist = tmp_path / "allowlist.conf"
    allowlist.write_text("^net\\.core\\.[a-z_]*$\n\n^net\\.ipv4\\.conf\\.net1\\.arp_notify$\n")
    monkeypatch.setattr(tuning, "ALLOWLIST_FILE", str(allowlist))
    allowed = tuned(tmp_path, pod, sysctl={"net.core.somaxconn": "300"})
    ok(PLUGIN, "ADD", allowed, pod)
    assert proc_sys(pod, "net.core.somaxconn") == "300"
    ok(PLUGIN, "DEL", allowed, pod)
    forward = proc_sys(pod, "net.ipv4.ip_forward")
    refused = tuned(tmp_path, pod, sysctl={"net.ipv4.ip_forward": str(1 - int(forward))})
    status, err = call(PLUGIN, "ADD", refused, pod)
    assert status == 1 and err["code"] == 7 and "allowlist.conf" in err["msg"]
    assert proc_sys(pod, "net.ipv4.ip_forward") == forward


def test_status_refuses_a_key_not_allowed(tmp_path: Path) -> None:
    status, err = call(PLUGIN, "STATUS", conf(TYPE, "t", sysctl={"vm.swappiness": "1"}), None)
    assert status == 1 and err["code"] == 7
    ok(PLUGIN, "STATUS", conf(TYPE, "t", sysctl={"net.ipv4.conf.IFNAME.arp_notify": "1"}), None)


# -- chained after the reference bridge, as an executable through our runtime --------------


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    bin_dir = tmp_path / "bin"
    install_plugins(str(bin_dir))
    yield Runtime([bin_dir, REFERENCE_PLUGIN_DIR], cache_dir=tmp_path / "cache")


def bridge_plugin(plugin_node: PluginNode, tmp_path: Path) -> dict[str, Any]:
    # The reference ptp works here too, but under heavy load its ADD sometimes
    # fails to delete the pod's connected route (ESRCH), a flake of its own.
    ipam = {
        "type": "host-local",
        "dataDir": str(tmp_path / "ipam"),
        "ranges": [[{"subnet": "198.18.100.0/24"}], [{"subnet": "fd00:96:100::/64"}]],
    }
    bridge = unique("mntb")
    plugin_node.keep.add(bridge)  # the bridge outlives DEL; its veth must not
    return {"type": "bridge", "bridge": bridge, "isGateway": True, "ipam": ipam}


def test_chained_after_the_reference_bridge(
    pod: str, plugin_node: PluginNode, tmp_path: Path, runtime: Runtime
) -> None:
    fields = {**EVERYTHING, "mac": "02:00:00:96:00:10", "capabilities": {"mac": True}}
    plugins = [
        bridge_plugin(plugin_node, tmp_path),
        {"type": TYPE, "dataDir": str(tmp_path / "state"), **fields},
    ]
    net = parse_network_config_list({"cniVersion": "1.0.0", "name": "tunenet", "plugins": plugins})
    rt = RuntimeConf(
        "cid-rt", str(lab.netns_path(pod)), "eth0", capability_args={"mac": "02:00:00:96:00:11"}
    )
    # The runtime spawns the plugins from a thread in the node's namespace.
    result = on_node(lambda: runtime.add(net, rt))
    seen = link(pod, "eth0")
    assert seen["address"] == "02:00:00:96:00:11"  # the capability beats the config
    assert (seen["mtu"], seen["txqlen"], seen["promiscuity"]) == (1400, 2000, 1)
    assert "ALLMULTI" in seen["flags"]
    assert proc_sys(pod, "net.ipv4.conf.eth0.arp_notify") == "1"
    assert proc_sys(pod, "net.ipv4.ip_local_port_range").split() == ["20000", "30000"]
    [pod_iface] = [i for i in result.interfaces if i.sandbox]
    assert pod_iface.mac == "02:00:00:96:00:11"
    assert {str(ip.address) for ip in result.ips} == set(lab.addresses("eth0", pod))

    on_node(lambda: runtime.check(net, rt))
    lab.ip("link", "set", "eth0", "mtu", "1300", netns=pod)
    with pytest.raises(CNIError, match="drifted") as drift:
        on_node(lambda: runtime.check(net, rt))
    assert "MTU is 1300, configured 1400" in str(drift.value)

    on_node(lambda: runtime.delete(net, rt))
    assert lab.link_names(pod) == {"lo"}
    assert state_files(tmp_path) == []
    on_node(lambda: runtime.delete(net, rt))


def test_unreadable_state_file_does_not_block_del(pod: str, veth: str, tmp_path: Path) -> None:
    config = tuned(tmp_path, pod, mtu=1300)
    ok(PLUGIN, "ADD", config, pod)
    (tmp_path / "state" / "cid-1-net1.json").write_text('{"mtu": 15')  # torn write
    ok(PLUGIN, "DEL", config, pod)
    assert state_files(tmp_path) == []
    assert link(pod, "net1")["mtu"] == 1300  # nothing could be restored from it
