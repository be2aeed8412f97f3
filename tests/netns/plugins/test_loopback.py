"""multinic-loopback in real namespaces: in-process and as an executable through our runtime."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from multinic.cni import skel
from multinic.cni.config import parse_network_config_list
from multinic.cni.runtime import Runtime, RuntimeConf
from multinic.lab import netns as lab
from multinic.plugins.install import install_plugins
from multinic.plugins.loopback import PLUGIN
from tests.netns.conftest import REFERENCE_PLUGIN_DIR, unique
from tests.netns.plugins import inprocess

CONF: dict[str, Any] = {"cniVersion": "1.1.0", "name": "lo-net", "type": "multinic-loopback"}


class Pod(inprocess.Pod):
    """An attachment of multinic-loopback."""

    def __init__(self, netns: str, conf: dict[str, Any] = CONF) -> None:
        super().__init__(PLUGIN, netns, conf)
        self.ifname = "lo"


def lo_flags(pod: str) -> list[str]:
    flags: list[str] = lab.ip_json("link", "show", "lo", netns=pod)[0]["flags"]
    return flags


def lo_addresses(pod: str) -> set[str]:
    info = lab.ip_json("addr", "show", "lo", netns=pod)[0]["addr_info"]
    return {f"{a['local']}/{a['prefixlen']}" for a in info}


def test_add_check_del_del(pod: str) -> None:
    lab.ip("link", "set", "lo", "down", netns=pod)
    attachment = Pod(pod)
    result = attachment.add()
    assert "UP" in lo_flags(pod)
    assert {"127.0.0.1/8", "::1/128"} <= lo_addresses(pod)
    assert result["interfaces"] == [
        {"name": "lo", "mac": "00:00:00:00:00:00", "sandbox": str(lab.netns_path(pod))}
    ]
    assert result["ips"] == [
        {"interface": 0, "address": "127.0.0.1/8"},
        {"interface": 0, "address": "::1/128"},
    ]
    attachment.ok("CHECK")
    attachment.ok("DEL")
    assert "UP" not in lo_flags(pod)
    status, out = attachment.run("CHECK")
    assert status == 1 and "down" in out["msg"]
    attachment.ok("DEL")


def test_ifname_is_ignored_and_a_prev_result_passes_through(pod: str) -> None:
    prev = {
        "cniVersion": "1.1.0",
        "interfaces": [{"name": "eth0", "sandbox": str(lab.netns_path(pod))}],
        "ips": [{"interface": 0, "address": "198.18.71.9/24"}],
    }
    attachment = Pod(pod, {**CONF, "prevResult": prev})
    attachment.ifname = "eth7"
    result = attachment.add()
    assert result["interfaces"] == prev["interfaces"] and result["ips"] == prev["ips"]
    assert "UP" in lo_flags(pod)
    assert lab.link_names(pod) == {"lo"}


def test_check_detects_a_missing_loopback_address(pod: str) -> None:
    attachment = Pod(pod)
    attachment.add()
    lab.ip("addr", "del", "::1/128", "dev", "lo", netns=pod)
    status, out = attachment.run("CHECK")
    assert status == 1 and "::1/128" in out["msg"]


def test_without_ipv6_only_the_ipv4_address(pod: str) -> None:
    lab.ip("netns", "exec", pod, "sysctl", "-qw", "net.ipv6.conf.lo.disable_ipv6=1")
    lab.ip("link", "set", "lo", "down", netns=pod)
    attachment = Pod(pod)
    result = attachment.add()
    assert [ip["address"] for ip in result["ips"]] == ["127.0.0.1/8"]
    attachment.ok("CHECK")


def test_del_tolerates_a_missing_namespace_and_no_namespace() -> None:
    gone = Pod("mnt-no-such-pod")
    gone.ok("DEL")
    status, out = gone.run("ADD")
    assert status == 1 and "namespace" in out["msg"]
    # DEL without CNI_NETNS at all (the runtime no longer knows it): nothing to do.
    env = {"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "c1", "CNI_IFNAME": "lo", "CNI_PATH": "/x"}
    assert skel.run(PLUGIN, env, json.dumps(CONF).encode()) == (0, b"")


def test_status_and_gc_succeed(pod: str) -> None:
    attachment = Pod(pod)
    attachment.ok("STATUS")
    attachment.ok("GC", **{"cni.dev/valid-attachments": []})


def test_executable_through_our_runtime(pod: str, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    install_plugins(str(bin_dir))
    lab.ip("link", "set", "lo", "down", netns=pod)
    net = parse_network_config_list(
        {"cniVersion": "1.0.0", "name": "lo-exec", "plugins": [{"type": "multinic-loopback"}]}
    )
    runtime = Runtime([bin_dir, REFERENCE_PLUGIN_DIR], cache_dir=tmp_path / "cache")
    rt = RuntimeConf(unique("ctr-"), str(lab.netns_path(pod)), "lo")
    result = runtime.add(net, rt)
    assert [str(ip.address) for ip in result.ips] == ["127.0.0.1/8", "::1/128"]
    assert "UP" in lo_flags(pod)
    runtime.check(net, rt)
    runtime.delete(net, rt)
    assert "UP" not in lo_flags(pod)
    runtime.delete(net, rt)
