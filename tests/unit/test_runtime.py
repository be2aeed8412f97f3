"""``multinic.cni.runtime.Runtime`` against real executable fake plugins.

Each fake plugin is a small Python script in a temporary plugin directory that
speaks the CNI protocol itself: it reads its environment and stdin, appends one
JSON line per call (plugin, command, CNI_* environment, stdin config) to the
log file named in its config, and answers. A ``behave`` object in its config
makes it misbehave for one verb: print a CNI error, print garbage, exit 1,
sleep, or kill itself.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import stat
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from multinic.cni.config import Attachment, NetworkConfigList, parse_network_config_list
from multinic.cni.errors import CNIError, IncompatibleVersionError, PluginError
from multinic.cni.invoke import PluginExecutor
from multinic.cni.runtime import Runtime, RuntimeConf, VersionInfo
from multinic.cni.types import Result

ALL_VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]

FAKE_PLUGIN = """\
#!{python}
import json
import os
import signal
import sys
import time

NAME = {name!r}
SUPPORTED = {supported!r}

command = os.environ.get("CNI_COMMAND", "")
if command == "VERSION":
    print(json.dumps({{"cniVersion": "1.1.0", "supportedVersions": SUPPORTED}}))
    sys.exit(0)

conf = json.loads(sys.stdin.read())
if "log" in conf:
    env = {{k: v for k, v in os.environ.items() if k.startswith("CNI_")}}
    with open(conf["log"], "a") as log:
        log.write(json.dumps({{"plugin": NAME, "command": command, "env": env, "stdin": conf}}))
        log.write("\\n")

act = conf.get("behave", {{}}).get(command, {{}})
if "stderr" in act:
    sys.stderr.write(act["stderr"])
    sys.stderr.flush()
if "sleep" in act:
    time.sleep(act["sleep"])
if act.get("kill"):
    os.kill(os.getpid(), signal.SIGKILL)
if "stdout" in act:
    sys.stdout.write(act["stdout"])
    sys.exit(act.get("exit", 0))
if "error" in act:
    print(json.dumps(act["error"]))
    sys.exit(1)
if "exit" in act:
    sys.exit(act["exit"])

if command == "ADD":
    version = conf["cniVersion"]
    prev = conf.get("prevResult") or {{}}
    interfaces = list(prev.get("interfaces", []))
    ips = list(prev.get("ips", []))
    interfaces.append({{"name": NAME + "0", "sandbox": os.environ["CNI_NETNS"]}})
    ip = {{"address": "10.0.%d.2/24" % len(interfaces), "interface": len(interfaces) - 1}}
    if version.startswith("0."):
        ip["version"] = "4"
    ips.append(ip)
    print(json.dumps({{"cniVersion": version, "interfaces": interfaces, "ips": ips}}))
"""


@dataclass
class Lab:
    """A plugin directory, a cache directory and a call log, all under tmp_path."""

    root: Path
    bin: Path
    cache: Path
    log: Path

    def plugin(self, name: str, supported: list[str] | None = None) -> Path:
        script = self.bin / name
        script.write_text(
            FAKE_PLUGIN.format(
                python=sys.executable, name=name, supported=supported or ALL_VERSIONS
            )
        )
        script.chmod(0o755)
        return script

    def runtime(self, timeout: float | None = 60.0) -> Runtime:
        return Runtime([self.root / "empty", self.bin], self.cache, PluginExecutor(timeout))

    def net(
        self, *plugins: str | dict[str, Any], version: str = "1.1.0", **top: Any
    ) -> NetworkConfigList:
        """A conflist (parsed from bytes) whose plugins log to this lab's log file."""
        entries = []
        for plugin in plugins:
            entry = {"type": plugin} if isinstance(plugin, str) else dict(plugin)
            entry.setdefault("log", str(self.log))
            entries.append(entry)
        obj: dict[str, Any] = {"cniVersion": version, "name": "net1", "plugins": entries}
        obj.update(top)
        return parse_network_config_list(json.dumps(obj).encode())

    def calls(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def trace(self) -> list[tuple[str, str]]:
        """(command, plugin) of every call so far, in order."""
        return [(call["command"], call["plugin"]) for call in self.calls()]

    def clear(self) -> None:
        self.log.unlink(missing_ok=True)

    def cache_file(self, net: str = "net1", cid: str = "c1", ifname: str = "eth0") -> Path:
        return self.cache / "results" / f"{net}-{cid}-{ifname}"


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    lab = Lab(tmp_path, tmp_path / "bin", tmp_path / "cache", tmp_path / "calls.log")
    lab.bin.mkdir()
    for name in ("alpha", "beta", "gamma"):
        lab.plugin(name)
    return lab


RT = RuntimeConf(
    container_id="c1",
    netns="/var/run/netns/pod1",
    ifname="eth0",
    args=(("IgnoreUnknown", "1"), ("K8S_POD_NAME", "web-0")),
)


def ips_of(result: dict[str, Any]) -> list[str]:
    return [ip["address"] for ip in result.get("ips", [])]


# --- ADD ------------------------------------------------------------------------------


def test_add_runs_the_chain_in_order_passing_each_result_on(lab: Lab) -> None:
    result = lab.runtime().add(lab.net("alpha", "beta", "gamma"), RT)
    calls = lab.calls()
    assert [(c["command"], c["plugin"]) for c in calls] == [
        ("ADD", "alpha"),
        ("ADD", "beta"),
        ("ADD", "gamma"),
    ]
    assert "prevResult" not in calls[0]["stdin"]
    assert ips_of(calls[1]["stdin"]["prevResult"]) == ["10.0.1.2/24"]
    assert ips_of(calls[2]["stdin"]["prevResult"]) == ["10.0.1.2/24", "10.0.2.2/24"]
    assert result.cni_version == "1.1.0"
    assert [i.name for i in result.interfaces] == ["alpha0", "beta0", "gamma0"]
    assert [str(ip.address) for ip in result.ips] == ["10.0.1.2/24", "10.0.2.2/24", "10.0.3.2/24"]


def test_add_sets_the_cni_environment(lab: Lab) -> None:
    lab.runtime().add(lab.net("alpha"), RT)
    [call] = lab.calls()
    assert call["env"] == {
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "c1",
        "CNI_NETNS": "/var/run/netns/pod1",
        "CNI_IFNAME": "eth0",
        "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=web-0",
        "CNI_PATH": f"{lab.root / 'empty'}:{lab.bin}",
    }


def test_add_injects_list_name_and_negotiated_version(lab: Lab) -> None:
    net = lab.net(
        {"type": "alpha", "name": "own-name", "cniVersion": "0.3.1"},
        version="0.4.0",
        cniVersions=["0.3.1", "1.0.0", "2.0.0"],
    )
    result = lab.runtime().add(net, RT)
    [call] = lab.calls()
    assert call["stdin"]["name"] == "net1"
    assert call["stdin"]["cniVersion"] == "1.0.0"
    assert result.cni_version == "1.0.0"


def test_add_passes_unknown_plugin_fields_through(lab: Lab) -> None:
    custom = {"bridge": "br0", "ipam": {"type": "host-local", "ranges": [[{"subnet": "10/8"}]]}}
    lab.runtime().add(lab.net({"type": "alpha", **custom, "x-vendor": [1, None, True]}), RT)
    [call] = lab.calls()
    stdin = call["stdin"]
    assert stdin["bridge"] == "br0"
    assert stdin["ipam"] == custom["ipam"]
    assert stdin["x-vendor"] == [1, None, True]
    assert stdin["type"] == "alpha"


def test_runtime_config_has_only_declared_and_given_capabilities(lab: Lab) -> None:
    net = lab.net(
        {
            "type": "alpha",
            "capabilities": {"portMappings": True, "bandwidth": False, "ipRanges": True},
        }
    )
    rt = RuntimeConf(
        "c1",
        "/var/run/netns/pod1",
        capability_args={
            "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
            "bandwidth": {"ingressRate": 1000},
            "mac": "0a:58:00:00:00:01",
        },
    )
    lab.runtime().add(net, rt)
    [call] = lab.calls()
    assert call["stdin"]["runtimeConfig"] == {
        "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]
    }


def test_plugin_without_matching_capabilities_keeps_its_own_runtime_config(lab: Lab) -> None:
    net = lab.net(
        {"type": "alpha", "capabilities": {"mac": True}, "runtimeConfig": {"static": 1}},
        {"type": "beta", "capabilities": {"mac": True, "ips": True}, "runtimeConfig": {"x": 2}},
    )
    rt = RuntimeConf("c1", "/var/run/netns/pod1", capability_args={"ips": ["10.9.9.9/24"]})
    lab.runtime().add(net, rt)
    alpha, beta = lab.calls()
    assert alpha["stdin"]["runtimeConfig"] == {"static": 1}
    assert beta["stdin"]["runtimeConfig"] == {"ips": ["10.9.9.9/24"]}


def test_no_runtime_config_without_capability_args(lab: Lab) -> None:
    lab.runtime().add(lab.net({"type": "alpha", "capabilities": {"portMappings": True}}), RT)
    [call] = lab.calls()
    assert "runtimeConfig" not in call["stdin"]


def test_add_writes_the_libcni_cache_file(lab: Lab) -> None:
    net = lab.net("alpha", "beta")
    rt = RuntimeConf(
        "c1",
        "/var/run/netns/pod1",
        "eth0",
        args=(("K8S_POD_NAME", "web-0"),),
        capability_args={"mac": "0a:58:00:00:00:01"},
    )
    result = lab.runtime().add(net, rt)
    path = lab.cache_file("net1", "c1", "eth0")
    assert sorted(p.name for p in path.parent.iterdir()) == ["net1-c1-eth0"]
    raw = path.read_bytes()
    obj = json.loads(raw)
    assert list(obj) == [
        "kind",
        "containerId",
        "config",
        "ifName",
        "networkName",
        "netns",
        "cniArgs",
        "capabilityArgs",
        "result",
    ]
    assert obj["kind"] == "cniCacheV1"
    assert obj["containerId"] == "c1"
    assert base64.b64decode(obj["config"]) == net.source_bytes
    assert obj["ifName"] == "eth0"
    assert obj["networkName"] == "net1"
    assert obj["netns"] == "/var/run/netns/pod1"
    assert obj["cniArgs"] == [["K8S_POD_NAME", "web-0"]]
    assert obj["capabilityArgs"] == {"mac": "0a:58:00:00:00:01"}
    assert obj["result"] == result.to_dict()
    assert b" " not in raw  # compact, as libcni writes it
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_cached_result_reads_back_the_final_result(lab: Lab) -> None:
    runtime = lab.runtime()
    net = lab.net("alpha", "beta")
    result = runtime.add(net, RT)
    assert runtime.cached_result(net, RT) == result


@pytest.mark.parametrize(
    ("container_id", "ifname"), [("a/b", "eth0"), ("", "eth0"), ("c1", "x" * 16), ("c1", "..")]
)
def test_add_rejects_bad_container_id_or_ifname_before_running_anything(
    lab: Lab, container_id: str, ifname: str
) -> None:
    with pytest.raises(CNIError) as info:
        lab.runtime().add(lab.net("alpha"), RuntimeConf(container_id, "/ns", ifname))
    assert info.value.code == 4
    assert lab.calls() == []
    assert not (lab.cache / "results").exists()


def test_add_rejects_container_id_with_trailing_newline(lab: Lab) -> None:
    with pytest.raises(CNIError) as info:
        lab.runtime().add(lab.net("alpha"), RuntimeConf("c1\n", "/ns"))
    assert info.value.code == 4


# --- ADD failure and rollback ------------------------------------------------------------


def test_failing_plugin_in_the_middle_is_named_and_the_chain_rolled_back(lab: Lab) -> None:
    error = {"cniVersion": "1.1.0", "code": 107, "msg": "no free address", "details": "pool"}
    net = lab.net("alpha", {"type": "beta", "behave": {"ADD": {"error": error}}}, "gamma")
    with pytest.raises(PluginError) as info:
        lab.runtime().add(net, RT)
    err = info.value
    assert err.plugin == "beta"
    assert err.code == 107
    assert err.msg == "no free address"
    assert err.details == "pool"
    assert "beta" in str(err)
    assert lab.trace() == [
        ("ADD", "alpha"),
        ("ADD", "beta"),
        ("DEL", "gamma"),
        ("DEL", "beta"),
        ("DEL", "alpha"),
    ]
    assert not lab.cache_file().exists()


def test_rollback_del_gets_the_last_good_result_and_the_same_environment(lab: Lab) -> None:
    net = lab.net("alpha", {"type": "beta", "behave": {"ADD": {"exit": 3}}})
    with pytest.raises(PluginError):
        lab.runtime().add(net, RT)
    dels = [c for c in lab.calls() if c["command"] == "DEL"]
    assert [c["plugin"] for c in dels] == ["beta", "alpha"]
    for call in dels:  # alpha's ADD result: what the chain had built before beta failed
        assert [i["name"] for i in call["stdin"]["prevResult"]["interfaces"]] == ["alpha0"]
        assert call["stdin"]["prevResult"]["ips"] == [{"interface": 0, "address": "10.0.1.2/24"}]
        assert call["env"]["CNI_CONTAINERID"] == "c1"
        assert call["env"]["CNI_IFNAME"] == "eth0"


def test_failed_rollback_is_reported_in_the_details(lab: Lab) -> None:
    error = {"code": 107, "msg": "no free address", "details": "pool"}
    gone = {"code": 108, "msg": "cannot release"}
    net = lab.net(
        "alpha", {"type": "beta", "behave": {"ADD": {"error": error}, "DEL": {"error": gone}}}
    )
    with pytest.raises(PluginError) as info:
        lab.runtime().add(net, RT)
    assert info.value.code == 107
    assert info.value.details.startswith("pool; rollback DEL also failed: ")
    assert "cannot release" in info.value.details
    assert not lab.cache_file().exists()


def test_rollback_continues_past_a_plugin_whose_del_also_fails(lab: Lab) -> None:
    error = {"code": 107, "msg": "no free address"}
    net = lab.net(
        "alpha", {"type": "beta", "behave": {"ADD": {"error": error}, "DEL": {"exit": 1}}}
    )
    with pytest.raises(PluginError):
        lab.runtime().add(net, RT)
    assert lab.trace() == [("ADD", "alpha"), ("ADD", "beta"), ("DEL", "beta"), ("DEL", "alpha")]


def test_add_failing_to_write_the_cache_rolls_back(lab: Lab) -> None:
    lab.cache.mkdir()
    (lab.cache / "results").write_text("not a directory")
    with pytest.raises(CNIError) as info:
        lab.runtime().add(lab.net("alpha", "beta"), RT)
    assert info.value.code == 5
    assert lab.trace() == [("ADD", "alpha"), ("ADD", "beta"), ("DEL", "beta"), ("DEL", "alpha")]


def test_rollback_with_a_broken_cache_still_reports_the_plugins_error(lab: Lab) -> None:
    lab.cache.mkdir()
    (lab.cache / "results").write_text("not a directory")
    net = lab.net({"type": "alpha", "behave": {"ADD": {"error": {"code": 107, "msg": "x"}}}})
    with pytest.raises(PluginError) as info:
        lab.runtime().add(net, RT)
    assert info.value.code == 107


# --- CHECK -------------------------------------------------------------------------------


def test_check_passes_the_cached_result_to_each_plugin_in_order(lab: Lab) -> None:
    runtime = lab.runtime()
    net = lab.net("alpha", "beta", "gamma")
    result = runtime.add(net, RT)
    lab.clear()
    runtime.check(net, RT)
    calls = lab.calls()
    assert [(c["command"], c["plugin"]) for c in calls] == [
        ("CHECK", "alpha"),
        ("CHECK", "beta"),
        ("CHECK", "gamma"),
    ]
    for call in calls:
        assert call["stdin"]["prevResult"] == result.to_dict()
        assert call["stdin"]["name"] == "net1"
        assert call["env"]["CNI_CONTAINERID"] == "c1"


def test_check_without_a_cache_sends_no_prev_result(lab: Lab) -> None:
    lab.runtime().check(lab.net("alpha"), RT)
    [call] = lab.calls()
    assert call["command"] == "CHECK"
    assert "prevResult" not in call["stdin"]


def test_check_is_a_no_op_with_disable_check(lab: Lab) -> None:
    runtime = lab.runtime()
    runtime.add(lab.net("alpha", "beta"), RT)
    lab.clear()
    runtime.check(lab.net("alpha", "beta", disableCheck=True), RT)
    assert lab.calls() == []


def test_check_below_0_4_0_is_refused(lab: Lab) -> None:
    with pytest.raises(IncompatibleVersionError) as info:
        lab.runtime().check(lab.net("alpha", version="0.3.1"), RT)
    assert info.value.code == 1
    assert lab.calls() == []


def test_check_failure_stops_the_chain_with_the_plugins_code(lab: Lab) -> None:
    runtime = lab.runtime()
    runtime.add(lab.net("alpha", "beta", "gamma"), RT)
    lab.clear()
    bad = {"code": 110, "msg": "address missing"}
    net = lab.net("alpha", {"type": "beta", "behave": {"CHECK": {"error": bad}}}, "gamma")
    with pytest.raises(PluginError) as info:
        runtime.check(net, RT)
    assert (info.value.plugin, info.value.code) == ("beta", 110)
    assert lab.trace() == [("CHECK", "alpha"), ("CHECK", "beta")]


# --- DEL ---------------------------------------------------------------------------------


def test_del_runs_in_reverse_with_the_cached_result_and_removes_the_cache(lab: Lab) -> None:
    runtime = lab.runtime()
    net = lab.net("alpha", "beta", "gamma")
    result = runtime.add(net, RT)
    lab.clear()
    runtime.delete(net, RT)
    calls = lab.calls()
    assert [(c["command"], c["plugin"]) for c in calls] == [
        ("DEL", "gamma"),
        ("DEL", "beta"),
        ("DEL", "alpha"),
    ]
    for call in calls:
        assert call["stdin"]["prevResult"] == result.to_dict()
        assert call["env"]["CNI_NETNS"] == "/var/run/netns/pod1"
    assert not lab.cache_file().exists()


def test_second_del_succeeds_without_prev_result(lab: Lab) -> None:
    runtime = lab.runtime()
    net = lab.net("alpha", "beta")
    runtime.add(net, RT)
    runtime.delete(net, RT)
    lab.clear()
    runtime.delete(net, RT)
    calls = lab.calls()
    assert [(c["command"], c["plugin"]) for c in calls] == [("DEL", "beta"), ("DEL", "alpha")]
    assert all("prevResult" not in c["stdin"] for c in calls)


def test_del_below_0_4_0_sends_no_prev_result(lab: Lab) -> None:
    runtime = lab.runtime()
    net = lab.net("alpha", version="0.3.1")
    runtime.add(net, RT)
    lab.clear()
    runtime.delete(net, RT)
    [call] = lab.calls()
    assert "prevResult" not in call["stdin"]
    assert not lab.cache_file().exists()


def test_del_with_an_unreadable_cache_still_deletes(lab: Lab) -> None:
    path = lab.cache_file()
    path.parent.mkdir(parents=True)
    path.write_text('{"kind": "cniCacheV1", "containerId": "c1", "result": {"ips": 7}}')
    lab.runtime().delete(lab.net("alpha"), RT)
    [call] = lab.calls()
    assert "prevResult" not in call["stdin"]
    assert not path.exists()


def test_del_failure_keeps_the_cache(lab: Lab) -> None:
    runtime = lab.runtime()
    runtime.add(lab.net("alpha", "beta"), RT)
    net = lab.net(
        "alpha", {"type": "beta", "behave": {"DEL": {"error": {"code": 11, "msg": "busy"}}}}
    )
    with pytest.raises(PluginError) as info:
        runtime.delete(net, RT)
    assert info.value.code == 11
    assert lab.cache_file().exists()


def test_del_succeeds_when_the_cache_entry_cannot_be_removed(lab: Lab) -> None:
    lab.cache.mkdir()
    (lab.cache / "results").write_text("not a directory")
    lab.runtime().delete(lab.net("alpha", "beta"), RT)
    assert lab.trace() == [("DEL", "beta"), ("DEL", "alpha")]


def test_del_reads_a_legacy_bare_result_cache(lab: Lab) -> None:
    path = lab.cache_file()
    path.parent.mkdir(parents=True)
    legacy = {"cniVersion": "0.4.0", "ips": [{"version": "4", "address": "10.5.0.9/16"}]}
    path.write_text(json.dumps(legacy))
    lab.runtime().delete(lab.net("alpha", version="1.0.0"), RT)
    [call] = lab.calls()
    assert call["stdin"]["prevResult"] == {
        "cniVersion": "1.0.0",
        "ips": [{"address": "10.5.0.9/16"}],
    }


# --- GC ----------------------------------------------------------------------------------


def add_attachments(lab: Lab, runtime: Runtime) -> tuple[NetworkConfigList, NetworkConfigList]:
    """c1/eth0 and c2/eth0 on net1 (alpha, beta); c1/eth0 on other (gamma)."""
    net = lab.net("alpha", "beta")
    other = lab.net("gamma", name="other")
    runtime.add(net, RuntimeConf("c1", "/var/run/netns/pod1"))
    runtime.add(net, RuntimeConf("c2", "/var/run/netns/pod2"))
    runtime.add(other, RuntimeConf("c1", "/var/run/netns/pod1"))
    lab.clear()
    return net, other


def test_gc_with_no_valid_attachments_deletes_every_cached_attachment_of_the_network(
    lab: Lab,
) -> None:
    runtime = lab.runtime()
    net, _ = add_attachments(lab, runtime)
    c1_result = json.loads(lab.cache_file("net1", "c1").read_bytes())["result"]
    runtime.gc(net, [])
    calls = lab.calls()
    dels = [(c["command"], c["plugin"], c["env"]["CNI_CONTAINERID"]) for c in calls[:4]]
    assert dels == [
        ("DEL", "beta", "c1"),
        ("DEL", "alpha", "c1"),
        ("DEL", "beta", "c2"),
        ("DEL", "alpha", "c2"),
    ]
    assert calls[0]["stdin"]["prevResult"] == c1_result
    assert calls[0]["env"]["CNI_NETNS"] == "/var/run/netns/pod1"
    assert calls[2]["env"]["CNI_NETNS"] == "/var/run/netns/pod2"
    assert not lab.cache_file("net1", "c1").exists()
    assert not lab.cache_file("net1", "c2").exists()
    assert lab.cache_file("other", "c1").exists()
    gcs = calls[4:]
    assert [(c["command"], c["plugin"]) for c in gcs] == [("GC", "alpha"), ("GC", "beta")]
    for call in gcs:
        assert call["stdin"]["cni.dev/valid-attachments"] == []
        assert call["stdin"]["cni.dev/attachments"] == []
        assert call["stdin"]["name"] == "net1"
        assert call["stdin"]["cniVersion"] == "1.1.0"
        assert "prevResult" not in call["stdin"]
        assert call["env"]["CNI_COMMAND"] == "GC"
        assert call["env"]["CNI_PATH"] == f"{lab.root / 'empty'}:{lab.bin}"


def test_gc_keeps_valid_attachments_and_lists_them_to_plugins(lab: Lab) -> None:
    runtime = lab.runtime()
    net, _ = add_attachments(lab, runtime)
    runtime.gc(net, [Attachment("c1", "eth0")])
    assert lab.trace() == [("DEL", "beta"), ("DEL", "alpha"), ("GC", "alpha"), ("GC", "beta")]
    assert lab.calls()[0]["env"]["CNI_CONTAINERID"] == "c2"
    assert lab.cache_file("net1", "c1").exists()
    assert not lab.cache_file("net1", "c2").exists()
    listed = [{"containerID": "c1", "ifname": "eth0"}]
    for call in lab.calls()[2:]:
        assert call["stdin"]["cni.dev/valid-attachments"] == listed
        assert call["stdin"]["cni.dev/attachments"] == listed


def test_gc_without_a_valid_list_sends_no_attachment_keys(lab: Lab) -> None:
    runtime = lab.runtime()
    net, _ = add_attachments(lab, runtime)
    runtime.gc(net, None)
    gcs = [c for c in lab.calls() if c["command"] == "GC"]
    assert len(gcs) == 2
    for call in gcs:
        assert "cni.dev/valid-attachments" not in call["stdin"]
        assert "cni.dev/attachments" not in call["stdin"]
    assert not lab.cache_file("net1", "c1").exists()


def test_gc_does_nothing_with_disable_gc(lab: Lab) -> None:
    runtime = lab.runtime()
    add_attachments(lab, runtime)
    runtime.gc(lab.net("alpha", "beta", disableGC=True), [])
    assert lab.calls() == []
    assert lab.cache_file("net1", "c1").exists()
    assert lab.cache_file("net1", "c2").exists()


def test_gc_at_1_0_0_deletes_stale_attachments_but_sends_no_gc(lab: Lab) -> None:
    runtime = lab.runtime()
    net = lab.net("alpha", version="1.0.0")
    runtime.add(net, RT)
    lab.clear()
    runtime.gc(net, [])
    assert lab.trace() == [("DEL", "alpha")]
    assert not lab.cache_file().exists()


def test_gc_deletes_a_stale_attachment_with_the_plugins_it_was_added_with(lab: Lab) -> None:
    runtime = lab.runtime()
    runtime.add(lab.net("alpha", "beta"), RT)
    lab.clear()
    runtime.gc(lab.net("gamma"), [])
    assert lab.trace() == [("DEL", "beta"), ("DEL", "alpha"), ("GC", "gamma")]


def test_gc_failures_are_collected_and_every_plugin_still_gets_gc(lab: Lab) -> None:
    runtime = lab.runtime()
    net = lab.net(
        "alpha", {"type": "beta", "behave": {"GC": {"error": {"code": 120, "msg": "x"}}}}, "gamma"
    )
    with pytest.raises(CNIError) as info:
        runtime.gc(net, [])
    assert lab.trace() == [("GC", "alpha"), ("GC", "beta"), ("GC", "gamma")]
    assert info.value.msg == "garbage collection incomplete"
    assert info.value.details.startswith("failed to GC plugin beta: ")


def test_gc_and_status_send_empty_attachment_variables(lab: Lab) -> None:
    runtime = lab.runtime()
    net = lab.net("alpha")
    runtime.gc(net, None)
    runtime.status(net)
    for call in lab.calls():
        env = call["env"]
        assert (env["CNI_CONTAINERID"], env["CNI_NETNS"], env["CNI_IFNAME"]) == ("", "", "")
        assert env["CNI_ARGS"] == ""


# --- STATUS ------------------------------------------------------------------------------


def test_status_calls_each_plugin_with_only_name_and_version_injected(lab: Lab) -> None:
    runtime = lab.runtime()
    net = lab.net("alpha", {"type": "beta", "capabilities": {"mac": True}})
    runtime.status(net)
    calls = lab.calls()
    assert [(c["command"], c["plugin"]) for c in calls] == [("STATUS", "alpha"), ("STATUS", "beta")]
    assert calls[0]["stdin"] == {
        "type": "alpha",
        "log": str(lab.log),
        "name": "net1",
        "cniVersion": "1.1.0",
    }
    assert "runtimeConfig" not in calls[1]["stdin"]


def test_status_raises_the_code_the_plugin_returned(lab: Lab) -> None:
    error = {"cniVersion": "1.1.0", "code": 50, "msg": "no addresses left", "details": "pool"}
    net = lab.net("alpha", {"type": "beta", "behave": {"STATUS": {"error": error}}}, "gamma")
    with pytest.raises(PluginError) as info:
        lab.runtime().status(net)
    assert (info.value.plugin, info.value.code, info.value.msg) == ("beta", 50, "no addresses left")
    assert lab.trace() == [("STATUS", "alpha"), ("STATUS", "beta")]


def test_status_below_1_1_0_calls_nothing(lab: Lab) -> None:
    error = {"code": 50, "msg": "down"}
    lab.runtime().status(
        lab.net({"type": "alpha", "behave": {"STATUS": {"error": error}}}, version="1.0.0")
    )
    assert lab.calls() == []


# --- plugin failures ---------------------------------------------------------------------


def test_plugin_printing_garbage_is_code_6_naming_it(lab: Lab) -> None:
    net = lab.net({"type": "beta", "behave": {"ADD": {"stdout": "hello, not json"}}})
    with pytest.raises(PluginError) as info:
        lab.runtime().add(net, RT)
    assert info.value.plugin == "beta"
    assert info.value.code == 6
    assert info.value.msg == "plugin printed output that is not JSON"
    assert "'hello, not json'" in info.value.details
    assert not lab.cache_file().exists()


def test_plugin_printing_an_invalid_result_is_code_6(lab: Lab) -> None:
    bad = json.dumps({"cniVersion": "1.0.0", "ips": [{"address": "300.1.1.1/24"}]})
    net = lab.net({"type": "alpha", "behave": {"ADD": {"stdout": bad}}})
    with pytest.raises(PluginError) as info:
        lab.runtime().add(net, RT)
    assert (info.value.plugin, info.value.code) == ("alpha", 6)
    assert info.value.msg == "plugin printed an invalid result"


def test_plugin_exiting_1_without_output_quotes_its_stderr(lab: Lab) -> None:
    act = {"exit": 1, "stderr": "panic: cannot open /run/thing\n"}
    net = lab.net({"type": "alpha", "behave": {"DEL": act}})
    with pytest.raises(PluginError) as info:
        lab.runtime().delete(net, RT)
    err = info.value
    assert err.plugin == "alpha"
    assert err.code == 999
    assert err.msg == "plugin exited 1 without a CNI error object"
    assert err.details == "stdout: ''; stderr: 'panic: cannot open /run/thing'"


def test_plugin_exiting_1_with_an_unrelated_json_object_is_code_999(lab: Lab) -> None:
    net = lab.net({"type": "alpha", "behave": {"DEL": {"stdout": '{"hello": 1}', "exit": 1}}})
    with pytest.raises(PluginError) as info:
        lab.runtime().delete(net, RT)
    assert info.value.code == 999
    assert info.value.msg == "plugin exited 1 without a CNI error object"


def test_plugin_killed_by_a_signal(lab: Lab) -> None:
    net = lab.net({"type": "alpha", "behave": {"CHECK": {"kill": True}}})
    with pytest.raises(PluginError) as info:
        lab.runtime().check(net, RT)
    assert info.value.plugin == "alpha"
    assert info.value.code == 999
    assert info.value.msg == "plugin was killed by SIGKILL without a CNI error object"


def test_plugin_slower_than_the_timeout_is_code_11(lab: Lab) -> None:
    net = lab.net({"type": "alpha", "behave": {"CHECK": {"sleep": 30}}})
    with pytest.raises(PluginError) as info:
        lab.runtime(timeout=0.5).check(net, RT)
    assert info.value.plugin == "alpha"
    assert info.value.code == 11
    assert info.value.msg == "timed out after 0.5 s"


def test_plugin_not_on_the_path_is_code_7_naming_the_searched_dirs(lab: Lab) -> None:
    with pytest.raises(CNIError) as info:
        lab.runtime().check(lab.net("alpha", "nosuch"), RT)
    err = info.value
    assert err.code == 7
    assert err.msg == "failed to find plugin 'nosuch'"
    assert err.details == f"searched CNI_PATH {[str(lab.root / 'empty'), str(lab.bin)]}"
    assert lab.trace() == [("CHECK", "alpha")]


def test_a_file_without_the_execute_bit_is_not_a_plugin(lab: Lab) -> None:
    (lab.bin / "alpha").chmod(0o644)
    with pytest.raises(CNIError) as info:
        lab.runtime().status(lab.net("alpha"))
    assert info.value.code == 7


def test_the_first_directory_on_the_path_wins(lab: Lab) -> None:
    first = lab.root / "first"
    first.mkdir()
    shadow = Lab(lab.root, first, lab.cache, lab.log)
    shadow.plugin("alpha", ["1.1.0"])
    runtime = Runtime([first, lab.bin], lab.cache)
    assert runtime.version_info("alpha") == VersionInfo("1.1.0", ("1.1.0",))


# --- VERSION and validate ------------------------------------------------------------------


def test_version_info_reports_the_plugins_versions(lab: Lab) -> None:
    lab.plugin("delta", ["0.4.0", "1.0.0"])
    assert lab.runtime().version_info("delta") == VersionInfo("1.1.0", ("0.4.0", "1.0.0"))


def test_version_info_of_a_plugin_printing_garbage_is_code_6(lab: Lab) -> None:
    script = lab.bin / "broken"
    script.write_text(f"#!{sys.executable}\nprint('not json')\n")
    script.chmod(0o755)
    with pytest.raises(PluginError) as info:
        lab.runtime().version_info("broken")
    assert (info.value.plugin, info.value.code) == ("broken", 6)


def test_version_info_without_supported_versions_is_code_6(lab: Lab) -> None:
    script = lab.bin / "old"
    script.write_text(f'#!{sys.executable}\nprint(\'{{"cniVersion": "0.3.1"}}\')\n')
    script.chmod(0o755)
    with pytest.raises(PluginError) as info:
        lab.runtime().version_info("old")
    assert info.value.code == 6
    assert info.value.msg == "VERSION output has no supportedVersions"


def test_validate_returns_the_union_of_enabled_capabilities(lab: Lab) -> None:
    net = lab.net(
        {"type": "alpha", "capabilities": {"portMappings": True, "bandwidth": False}},
        {"type": "beta", "capabilities": {"mac": True}},
        "gamma",
        version="1.0.0",
    )
    assert lab.runtime().validate(net) == frozenset({"portMappings", "mac"})
    assert lab.calls() == []


def test_validate_reports_unsupported_versions_and_missing_plugins(lab: Lab) -> None:
    lab.plugin("old", ["0.3.1", "0.4.0"])
    net = lab.net("alpha", "old", "nosuch", version="1.0.0")
    with pytest.raises(IncompatibleVersionError) as info:
        lab.runtime().validate(net)
    err = info.value
    assert err.code == 1
    assert err.msg == "network 'net1' is not usable"
    problems = err.details.split("; ")
    assert problems[0] == "plugin old does not support config version 1.0.0"
    assert problems[1].startswith("failed to find plugin 'nosuch'")
    assert len(problems) == 2


def test_add_result_round_trips_through_the_public_result_type(lab: Lab) -> None:
    result = lab.runtime().add(lab.net("alpha", version="0.4.0"), RT)
    assert Result.from_dict(result.to_dict()) == result
    assert result.to_dict()["ips"] == [{"version": "4", "interface": 0, "address": "10.0.1.2/24"}]


def test_del_of_a_corrupt_cache_entry_goes_on_without_prev_result(lab: Lab) -> None:
    path = lab.cache_file()
    path.parent.mkdir(parents=True)
    path.write_text('{"kind": "cniCacheV1", "containerId": 7, "ifName": "eth0"}')
    lab.runtime().delete(lab.net("alpha", version="1.0.0"), RT)
    [call] = lab.calls()
    assert call["command"] == "DEL"
    assert "prevResult" not in call["stdin"]
    assert not path.exists()


HANGING_PLUGIN_WITH_A_CHILD = """\
#!{python}
import os, subprocess, sys, time
if os.environ.get("CNI_COMMAND") == "VERSION":
    print('{{"cniVersion": "1.1.0", "supportedVersions": ["1.0.0"]}}')
    sys.exit(0)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
with open({pid_file!r}, "w") as out:
    out.write(str(child.pid))
time.sleep(60)
"""


def test_timeout_kills_the_plugin_and_what_it_started(lab: Lab) -> None:
    pid_file = lab.root / "child.pid"
    script = lab.bin / "hangs"
    script.write_text(
        HANGING_PLUGIN_WITH_A_CHILD.format(python=sys.executable, pid_file=str(pid_file))
    )
    script.chmod(0o755)
    with pytest.raises(PluginError) as info:
        lab.runtime(timeout=1.0).check(lab.net({"type": "hangs"}, version="1.0.0"), RT)
    assert info.value.code == 11
    child = int(pid_file.read_text())
    try:
        # The child was SIGKILLed with its group; once reaped by init it is gone for good.
        for _ in range(100):
            if _proc_state(child) == "Z":
                break
            time.sleep(0.05)
        assert _proc_state(child) == "Z"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)


def _proc_state(pid: int) -> str:
    """The state letter in /proc/PID/stat; a process that is gone counts as a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return "Z"


@pytest.mark.parametrize("verb", ["check", "delete"])
@pytest.mark.parametrize(("container_id", "ifname"), [("../../etc", "eth0"), ("c1", "../x")])
def test_ids_that_could_escape_the_cache_dir_are_refused(
    lab: Lab, verb: str, container_id: str, ifname: str
) -> None:
    net = lab.net("alpha", version="1.0.0")
    with pytest.raises(CNIError) as info:
        getattr(lab.runtime(), verb)(net, RuntimeConf(container_id, "/var/run/netns/p", ifname))
    assert info.value.code == 4
    assert lab.calls() == []
