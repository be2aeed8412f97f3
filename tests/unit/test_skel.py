"""The plugin entry point: ``multinic.cni.skel.run`` as a pure function and ``main`` as a process.

An in-test plugin records every call and answers ADD with one fixed 1.1.0
result, so each test can say exactly what the plugin saw and what skel printed.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from multinic.cni import skel
from multinic.cni.errors import CNIError
from multinic.cni.skel import Request
from multinic.cni.types import DNS, Interface, IPConfig, Result, Route
from multinic.cni.version import SUPPORTED_VERSIONS

LATEST = "1.1.0"
ALL_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")

FIXED_RESULT = Result(
    cni_version="1.1.0",
    interfaces=(
        Interface(
            name="eth0",
            mac="0a:58:0a:01:02:03",
            mtu=1400,
            sandbox="/var/run/netns/pod1",
            pci_id="0000:00:01.0",
        ),
    ),
    ips=(
        IPConfig(
            address=ipaddress.ip_interface("10.1.2.3/24"),
            gateway=ipaddress.ip_address("10.1.2.1"),
            interface=0,
        ),
        IPConfig(address=ipaddress.ip_interface("fd00::3/64"), interface=0),
    ),
    routes=(
        Route(
            dst=ipaddress.ip_network("0.0.0.0/0"),
            gw=ipaddress.ip_address("10.1.2.1"),
            mtu=1400,
            table=100,
        ),
    ),
    dns=DNS(nameservers=("10.1.2.1",), search=("svc.cluster.local",)),
)


class RecordingPlugin:
    """Records each verb with its request; ADD returns FIXED_RESULT."""

    name = "recorder"

    def __init__(self, supported_versions: tuple[str, ...] = ALL_VERSIONS) -> None:
        self.supported_versions = supported_versions
        self.calls: list[tuple[str, Request]] = []

    def add(self, request: Request) -> Result:
        self.calls.append(("add", request))
        return FIXED_RESULT

    def delete(self, request: Request) -> None:
        self.calls.append(("delete", request))

    def check(self, request: Request) -> None:
        self.calls.append(("check", request))

    def status(self, request: Request) -> None:
        self.calls.append(("status", request))

    def gc(self, request: Request) -> None:
        self.calls.append(("gc", request))


class RaisingPlugin(RecordingPlugin):
    """Records the call, then raises ``exc`` from every verb."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__()
        self.exc = exc

    def add(self, request: Request) -> Result:
        super().add(request)
        raise self.exc

    def delete(self, request: Request) -> None:
        super().delete(request)
        raise self.exc

    def check(self, request: Request) -> None:
        super().check(request)
        raise self.exc

    def status(self, request: Request) -> None:
        super().status(request)
        raise self.exc

    def gc(self, request: Request) -> None:
        super().gc(request)
        raise self.exc


def full_env(command: str, **overrides: str) -> dict[str, str]:
    env = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": "c0ffee-1",
        "CNI_NETNS": "/var/run/netns/pod1",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/opt/cni/bin:/usr/lib/cni",
    }
    env.update(overrides)
    return env


def conf(version: str = "1.0.0", **extra: Any) -> bytes:
    obj: dict[str, Any] = {"cniVersion": version, "name": "net1", "type": "recorder"}
    obj.update(extra)
    return json.dumps(obj).encode()


def run(
    environ: Mapping[str, str], stdin: bytes, plugin: RecordingPlugin | None = None
) -> tuple[int, Any]:
    """skel.run, with stdout decoded (None when empty)."""
    status, out = skel.run(plugin or RecordingPlugin(), environ, stdin)
    return status, json.loads(out) if out else None


def error_of(
    environ: Mapping[str, str], stdin: bytes, plugin: RecordingPlugin | None = None
) -> Any:
    status, obj = run(environ, stdin, plugin)
    assert status == 1
    assert isinstance(obj, dict)
    return obj


# --- VERSION ------------------------------------------------------------------


def test_version_reports_latest_and_every_supported_version() -> None:
    status, out = skel.run(RecordingPlugin(), {"CNI_COMMAND": "VERSION"}, b"")
    assert status == 0
    assert json.loads(out) == {"cniVersion": LATEST, "supportedVersions": list(ALL_VERSIONS)}


def test_version_ignores_stdin_and_other_env() -> None:
    plugin = RecordingPlugin()
    status, obj = run({"CNI_COMMAND": "VERSION"}, b"\xff not json at all {", plugin)
    assert status == 0
    assert obj == {"cniVersion": LATEST, "supportedVersions": list(ALL_VERSIONS)}
    assert plugin.calls == []


def test_version_info_lists_the_plugins_own_versions() -> None:
    plugin = RecordingPlugin(("0.4.0", "1.0.0", "1.1.0"))
    assert skel.version_info(plugin) == {
        "cniVersion": "1.1.0",
        "supportedVersions": ["0.4.0", "1.0.0", "1.1.0"],
    }


# --- environment ----------------------------------------------------------------


@pytest.mark.parametrize("command", ["ADD", "CHECK"])
@pytest.mark.parametrize("var", ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"])
def test_add_and_check_need_each_variable(command: str, var: str) -> None:
    env = full_env(command)
    del env[var]
    err = error_of(env, conf())
    assert err["code"] == 4
    assert var in err["msg"]
    others = {"CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"} - {var}
    assert not [other for other in others if other in err["msg"]]


def test_missing_variables_are_all_named() -> None:
    err = error_of({"CNI_COMMAND": "ADD", "CNI_IFNAME": "eth0"}, conf())
    assert err["code"] == 4
    for var in ("CNI_CONTAINERID", "CNI_NETNS", "CNI_PATH"):
        assert var in err["msg"]
    assert "CNI_IFNAME" not in err["msg"]


def test_an_empty_variable_counts_as_missing() -> None:
    err = error_of(full_env("ADD", CNI_NETNS=""), conf())
    assert err["code"] == 4
    assert "CNI_NETNS" in err["msg"]


def test_missing_variables_message_matches_libcni() -> None:
    env = full_env("ADD")
    del env["CNI_NETNS"], env["CNI_PATH"]
    err = error_of(env, conf())
    assert err["msg"] == "required env variables [CNI_NETNS,CNI_PATH] missing"


def test_del_does_not_need_a_netns() -> None:
    env = full_env("DEL")
    del env["CNI_NETNS"]
    plugin = RecordingPlugin()
    status, obj = run(env, conf(), plugin)
    assert (status, obj) == (0, None)
    assert [verb for verb, _ in plugin.calls] == ["delete"]
    assert plugin.calls[0][1].netns == ""


@pytest.mark.parametrize("var", ["CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"])
def test_del_needs_container_ifname_and_path(var: str) -> None:
    env = full_env("DEL")
    del env[var]
    err = error_of(env, conf())
    assert err["code"] == 4
    assert var in err["msg"]


@pytest.mark.parametrize("command", ["GC", "STATUS"])
def test_gc_and_status_need_only_cni_path(command: str) -> None:
    plugin = RecordingPlugin()
    status, obj = run({"CNI_COMMAND": command, "CNI_PATH": "/opt/cni/bin"}, conf("1.1.0"), plugin)
    assert (status, obj) == (0, None)
    assert [verb for verb, _ in plugin.calls] == [command.lower()]
    request = plugin.calls[0][1]
    assert (request.container_id, request.netns, request.ifname) == ("", "", "")
    assert request.path == ("/opt/cni/bin",)


@pytest.mark.parametrize("command", ["GC", "STATUS"])
def test_gc_and_status_without_cni_path_fail(command: str) -> None:
    err = error_of({"CNI_COMMAND": command}, conf("1.1.0"))
    assert err["code"] == 4
    assert "CNI_PATH" in err["msg"]
    assert "CNI_CONTAINERID" not in err["msg"]


def test_missing_command_is_code_4() -> None:
    err = error_of({k: v for k, v in full_env("ADD").items() if k != "CNI_COMMAND"}, conf())
    assert err == {
        "cniVersion": LATEST,
        "code": 4,
        "msg": "required env variables [CNI_COMMAND] missing",
    }


@pytest.mark.parametrize("command", ["FOO", "add", "VERSION ", "DELETE"])
def test_unknown_command_is_code_4(command: str) -> None:
    plugin = RecordingPlugin()
    err = error_of(full_env(command), conf(), plugin)
    assert err["code"] == 4
    assert err["msg"] == f"unknown CNI_COMMAND: {command}"
    assert plugin.calls == []


@pytest.mark.parametrize("container_id", ["a/b", "../etc", "-abc", ".hidden", "a b", "a:b", "ü"])
def test_invalid_container_id_is_code_4(container_id: str) -> None:
    plugin = RecordingPlugin()
    err = error_of(full_env("ADD", CNI_CONTAINERID=container_id), conf(), plugin)
    assert err["code"] == 4
    assert err["msg"] == "invalid characters in containerID"
    assert plugin.calls == []


def test_container_id_with_trailing_newline_is_rejected() -> None:
    err = error_of(full_env("ADD", CNI_CONTAINERID="abc\n"), conf())
    assert err["code"] == 4


@pytest.mark.parametrize(
    ("ifname", "msg"),
    [
        ("a/b", "invalid character in interface name"),
        ("a:b", "invalid character in interface name"),
        ("eth 0", "invalid character in interface name"),
        ("eth\t0", "invalid character in interface name"),
        (".", "interface name is . or .."),
        ("..", "interface name is . or .."),
        ("x" * 16, "interface name is too long"),
        ("é" * 8, "interface name is too long"),  # 8 characters, 16 bytes
    ],
)
def test_invalid_ifname_is_code_4(ifname: str, msg: str) -> None:
    plugin = RecordingPlugin()
    err = error_of(full_env("ADD", CNI_IFNAME=ifname), conf(), plugin)
    assert err["code"] == 4
    assert err["msg"] == msg
    assert plugin.calls == []


def test_ifname_of_exactly_15_bytes_is_accepted() -> None:
    plugin = RecordingPlugin()
    status, _ = run(full_env("ADD", CNI_IFNAME="x" * 15), conf(), plugin)
    assert status == 0
    assert plugin.calls[0][1].ifname == "x" * 15


@pytest.mark.parametrize("command", ["DEL", "CHECK"])
def test_invalid_ifname_is_rejected_for_del_and_check(command: str) -> None:
    err = error_of(full_env(command, CNI_IFNAME="../x"), conf())
    assert err["code"] == 4


# --- stdin ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "stdin", [b"", b"{", b"not json", b"[1, 2]", b'"a string"', b"\xff\x00garbage"]
)
def test_undecodable_config_is_code_6(stdin: bytes) -> None:
    plugin = RecordingPlugin()
    err = error_of(full_env("ADD"), stdin, plugin)
    assert err["code"] == 6
    assert err["msg"] == "cannot decode network config"
    assert plugin.calls == []


@pytest.mark.parametrize("name", [None, "", 7, ["net1"], "-net", "net/1", "net 1", "net:1", "ünet"])
def test_missing_or_invalid_name_is_code_7(name: object) -> None:
    obj: dict[str, Any] = {"cniVersion": "1.0.0", "type": "recorder"}
    if name is not None:
        obj["name"] = name
    plugin = RecordingPlugin()
    err = error_of(full_env("ADD"), json.dumps(obj).encode(), plugin)
    assert err["code"] == 7
    assert plugin.calls == []


def test_network_name_with_trailing_newline_is_code_7() -> None:
    stdin = json.dumps({"cniVersion": "1.0.0", "name": "net1\n", "type": "x"}).encode()
    err = error_of(full_env("ADD"), stdin)
    assert err["code"] == 7


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0", "2.0.0", "1.0", "junk", "", 1])
def test_unsupported_cni_version_is_code_1(version: object) -> None:
    plugin = RecordingPlugin()
    err = error_of(full_env("ADD"), conf(version), plugin)  # type: ignore[arg-type]
    assert err["code"] == 1
    assert plugin.calls == []


def test_missing_cni_version_is_code_1() -> None:
    err = error_of(full_env("ADD"), json.dumps({"name": "net1", "type": "recorder"}).encode())
    assert err["code"] == 1


def test_version_the_plugin_does_not_list_is_code_1() -> None:
    plugin = RecordingPlugin(("1.0.0", "1.1.0"))
    err = error_of(full_env("ADD"), conf("0.4.0"), plugin)
    assert err["code"] == 1
    assert err["msg"] == "incompatible CNI versions"
    assert plugin.calls == []


@pytest.mark.parametrize("version", ["0.3.0", "0.3.1"])
def test_check_below_0_4_0_is_code_1(version: str) -> None:
    plugin = RecordingPlugin()
    err = error_of(full_env("CHECK"), conf(version), plugin)
    assert err["code"] == 1
    assert err["msg"] == "config version does not allow CHECK"
    assert plugin.calls == []


@pytest.mark.parametrize("version", ["0.4.0", "1.0.0", "1.1.0"])
def test_check_from_0_4_0_reaches_the_plugin(version: str) -> None:
    plugin = RecordingPlugin()
    assert run(full_env("CHECK"), conf(version), plugin) == (0, None)
    assert [verb for verb, _ in plugin.calls] == ["check"]


@pytest.mark.parametrize("command", ["GC", "STATUS"])
@pytest.mark.parametrize("version", ["0.3.1", "0.4.0", "1.0.0"])
def test_gc_and_status_below_1_1_0_are_code_1(command: str, version: str) -> None:
    plugin = RecordingPlugin()
    err = error_of(full_env(command), conf(version), plugin)
    assert err["code"] == 1
    assert err["msg"] == f"config version does not allow {command}"
    assert plugin.calls == []


# --- ADD result and request -------------------------------------------------------


def test_add_result_is_printed_in_the_config_version_0_4_0() -> None:
    status, obj = run(full_env("ADD"), conf("0.4.0"))
    assert status == 0
    assert obj == {
        "cniVersion": "0.4.0",
        "interfaces": [
            {"name": "eth0", "mac": "0a:58:0a:01:02:03", "sandbox": "/var/run/netns/pod1"}
        ],
        "ips": [
            {"version": "4", "interface": 0, "address": "10.1.2.3/24", "gateway": "10.1.2.1"},
            {"version": "6", "interface": 0, "address": "fd00::3/64"},
        ],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.2.1"}],
        "dns": {"nameservers": ["10.1.2.1"], "search": ["svc.cluster.local"]},
    }


def test_add_result_in_1_0_0_has_no_ip_version_tags() -> None:
    status, obj = run(full_env("ADD"), conf("1.0.0"))
    assert status == 0
    assert obj["cniVersion"] == "1.0.0"
    assert obj["ips"] == [
        {"interface": 0, "address": "10.1.2.3/24", "gateway": "10.1.2.1"},
        {"interface": 0, "address": "fd00::3/64"},
    ]
    assert obj["interfaces"] == [
        {"name": "eth0", "mac": "0a:58:0a:01:02:03", "sandbox": "/var/run/netns/pod1"}
    ]


def test_add_result_in_1_1_0_keeps_the_1_1_fields() -> None:
    status, obj = run(full_env("ADD"), conf("1.1.0"))
    assert status == 0
    assert obj["interfaces"] == [
        {
            "name": "eth0",
            "mac": "0a:58:0a:01:02:03",
            "mtu": 1400,
            "sandbox": "/var/run/netns/pod1",
            "pciID": "0000:00:01.0",
        }
    ]
    assert obj["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.1.2.1", "mtu": 1400, "table": 100}]


def test_add_request_carries_the_environment() -> None:
    plugin = RecordingPlugin()
    env = full_env("ADD", CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAME=web-0;EMPTY=")
    stdin = conf("1.0.0", custom={"x": [1, 2]})
    status, _ = run(env, stdin, plugin)
    assert status == 0
    [(verb, request)] = plugin.calls
    assert verb == "add"
    assert request.command == "ADD"
    assert request.container_id == "c0ffee-1"
    assert request.netns == "/var/run/netns/pod1"
    assert request.ifname == "eth0"
    assert request.path == ("/opt/cni/bin", "/usr/lib/cni")
    assert request.args == (("IgnoreUnknown", "1"), ("K8S_POD_NAME", "web-0"), ("EMPTY", ""))
    assert request.stdin == stdin
    assert request.config.name == "net1"
    assert request.config.type == "recorder"
    assert request.config.cni_version == "1.0.0"
    assert request.config.raw["custom"] == {"x": [1, 2]}
    assert request.config.prev_result is None


@pytest.mark.parametrize("cni_args", ["novalue", "=v", "A=1;;B=2"])
def test_malformed_cni_args_are_code_4(cni_args: str) -> None:
    err = error_of(full_env("ADD", CNI_ARGS=cni_args), conf())
    assert err["code"] == 4
    assert err["msg"] == "invalid CNI_ARGS"


def test_prev_result_is_decoded_into_the_request() -> None:
    prev = {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0", "sandbox": "/var/run/netns/pod1"}],
        "ips": [{"interface": 0, "address": "10.9.0.5/16", "gateway": "10.9.0.1"}],
        "routes": [{"dst": "10.0.0.0/8"}],
        "dns": {"nameservers": ["10.9.0.1"]},
    }
    plugin = RecordingPlugin()
    status, _ = run(full_env("CHECK"), conf("1.0.0", prevResult=prev), plugin)
    assert status == 0
    assert plugin.calls[0][1].config.prev_result == Result(
        cni_version="1.0.0",
        interfaces=(Interface(name="eth0", sandbox="/var/run/netns/pod1"),),
        ips=(
            IPConfig(
                address=ipaddress.ip_interface("10.9.0.5/16"),
                gateway=ipaddress.ip_address("10.9.0.1"),
                interface=0,
            ),
        ),
        routes=(Route(dst=ipaddress.ip_network("10.0.0.0/8")),),
        dns=DNS(nameservers=("10.9.0.1",)),
    )


def test_invalid_prev_result_is_code_6() -> None:
    prev = {"cniVersion": "1.0.0", "ips": [{"address": "10.9.0.5"}]}  # no prefix length
    plugin = RecordingPlugin()
    err = error_of(full_env("ADD"), conf("1.0.0", prevResult=prev), plugin)
    assert err["code"] == 6
    assert plugin.calls == []


# --- errors from the plugin ---------------------------------------------------------


def test_plugin_cni_error_keeps_its_code_and_the_config_version() -> None:
    plugin = RaisingPlugin(CNIError("no free address", "pool 10.1.0.0/16 exhausted", code=107))
    err = error_of(full_env("ADD"), conf("0.4.0"), plugin)
    assert err == {
        "cniVersion": "0.4.0",
        "code": 107,
        "msg": "no free address",
        "details": "pool 10.1.0.0/16 exhausted",
    }


def test_plugin_error_without_details_leaves_details_out() -> None:
    plugin = RaisingPlugin(CNIError("try later", code=11))
    err = error_of(full_env("DEL"), conf("1.0.0"), plugin)
    assert err == {"cniVersion": "1.0.0", "code": 11, "msg": "try later"}


def test_unexpected_exception_becomes_code_999_json() -> None:
    plugin = RaisingPlugin(KeyError("ipam"))
    status, out = skel.run(plugin, full_env("ADD"), conf("1.0.0"))
    assert status == 1
    assert b"Traceback" not in out
    assert json.loads(out) == {
        "cniVersion": "1.0.0",
        "code": 999,
        "msg": "recorder: internal error",
        "details": "KeyError: 'ipam'",
    }


@pytest.mark.parametrize("command", ["DEL", "CHECK", "GC", "STATUS"])
def test_verbs_other_than_add_print_nothing_on_success(command: str) -> None:
    plugin = RecordingPlugin()
    status, out = skel.run(plugin, full_env(command), conf("1.1.0"))
    assert (status, out) == (0, b"")
    assert [verb for verb, _ in plugin.calls] == [
        {"DEL": "delete", "CHECK": "check", "GC": "gc", "STATUS": "status"}[command]
    ]


def test_gc_request_carries_valid_attachments() -> None:
    plugin = RecordingPlugin()
    stdin = conf(
        "1.1.0", **{"cni.dev/valid-attachments": [{"containerID": "c1", "ifname": "eth0"}]}
    )
    status, _ = run({"CNI_COMMAND": "GC", "CNI_PATH": "/opt/cni/bin"}, stdin, plugin)
    assert status == 0
    [(_, request)] = plugin.calls
    assert [(a.container_id, a.ifname) for a in request.config.valid_attachments or ()] == [
        ("c1", "eth0")
    ]


# --- properties ---------------------------------------------------------------------


def _encode(obj: object) -> bytes:
    return json.dumps(obj).encode()


COMMAND_VALUES = st.sampled_from(
    ["ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION", "", "add", "DELETE", "VERSION\n"]
)
IDS = st.one_of(
    st.sampled_from(["c1", "abc-123_x.y", "", "a/b", "..", "-x", "c" * 200]), st.text(max_size=12)
)
IFNAMES = st.one_of(
    st.sampled_from(["eth0", "net1", "", ".", "..", "a/b", "x" * 16, "é" * 8]),
    st.text(max_size=18),
)
PATHS = st.one_of(st.sampled_from(["/opt/cni/bin", "/a:/b", "", ":"]), st.text(max_size=12))
CNI_ARGS = st.one_of(
    st.sampled_from(["", "A=1", "A=1;B=", "junk", "=x", "A=1;;"]), st.text(max_size=12)
)

ENVIRONS = st.fixed_dictionaries(
    {"CNI_COMMAND": COMMAND_VALUES},
    optional={
        "CNI_CONTAINERID": IDS,
        "CNI_NETNS": st.one_of(st.just("/var/run/netns/x"), st.text(max_size=10)),
        "CNI_IFNAME": IFNAMES,
        "CNI_PATH": PATHS,
        "CNI_ARGS": CNI_ARGS,
    },
)
# Environments that pass skel's checks for their verb, so configs get exercised too.
GOOD_ENVIRONS = st.builds(full_env, st.sampled_from(["ADD", "DEL", "CHECK", "GC", "STATUS"]))

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=12,
)
JSON_OBJECTS = st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=5)

VERSIONS = st.one_of(
    st.sampled_from([*SUPPORTED_VERSIONS, "0.1.0", "0.2.0", "2.0.0", "1.0", "", "1.0.0\n"]),
    JSON_VALUES,
)
NAMES = st.one_of(st.sampled_from(["net1", "a.b-c_d", "", "-x", "a/b"]), JSON_VALUES)

ADDRESSES = st.sampled_from(["10.0.0.2/24", "fd00::2/64", "192.168.1.1/32", "10.0.0.2", "x"])
PREV_RESULTS = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "cniVersion": st.sampled_from(SUPPORTED_VERSIONS),
            "interfaces": st.lists(
                st.fixed_dictionaries(
                    {"name": st.sampled_from(["eth0", "net1", ""])},
                    optional={
                        "mac": st.just("0a:58:00:00:00:01"),
                        "mtu": st.one_of(st.integers(0, 9000), st.just("1500")),
                        "sandbox": st.just("/var/run/netns/x"),
                    },
                ),
                max_size=2,
            ),
            "ips": st.lists(
                st.fixed_dictionaries(
                    {"address": ADDRESSES},
                    optional={
                        "interface": st.integers(-1, 3),
                        "gateway": st.sampled_from(["10.0.0.1", "fd00::1", "bogus"]),
                        "version": st.sampled_from(["4", "6"]),
                    },
                ),
                max_size=2,
            ),
            "routes": st.lists(
                st.fixed_dictionaries(
                    {"dst": st.sampled_from(["0.0.0.0/0", "::/0", "10.0.0.5/8", "nope"])},
                    optional={"gw": st.sampled_from(["10.0.0.1", "fd00::1"])},
                ),
                max_size=2,
            ),
            "dns": st.one_of(
                st.fixed_dictionaries({}, optional={"nameservers": st.lists(st.text(max_size=5))}),
                JSON_VALUES,
            ),
        },
    ),
    JSON_VALUES,
)
VALID_PREV_RESULTS = st.sampled_from(
    [
        *(FIXED_RESULT.convert(v).to_dict() for v in SUPPORTED_VERSIONS),
        *({"cniVersion": v} for v in SUPPORTED_VERSIONS),
        {"interfaces": [{"name": "eth0"}], "ips": [{"address": "10.0.0.2/24", "interface": 0}]},
    ]
)
VALID_ATTACHMENT_LISTS = st.lists(
    st.fixed_dictionaries(
        {"containerID": st.sampled_from(["c1", "c2"]), "ifname": st.just("eth0")}
    ),
    max_size=2,
)
# Mostly valid: each field is usually right and sometimes junk, so every check gets its turn.
CONFIGS = st.fixed_dictionaries(
    {
        "cniVersion": st.one_of(*[st.sampled_from(SUPPORTED_VERSIONS)] * 4, VERSIONS),
        "name": st.one_of(st.just("net1"), st.just("a.b-c_d"), NAMES),
    },
    optional={
        "type": st.one_of(st.just("recorder"), st.just("recorder"), JSON_VALUES),
        "prevResult": st.one_of(VALID_PREV_RESULTS, VALID_PREV_RESULTS, PREV_RESULTS),
        "runtimeConfig": st.one_of(JSON_OBJECTS, JSON_OBJECTS, JSON_VALUES),
        "cni.dev/valid-attachments": st.one_of(
            VALID_ATTACHMENT_LISTS, VALID_ATTACHMENT_LISTS, JSON_VALUES
        ),
        "custom": JSON_VALUES,
    },
)


def valid_configs(versions: tuple[str, ...]) -> st.SearchStrategy[dict[str, Any]]:
    """Configs valid in every field, at one of ``versions``: these must reach the plugin."""
    return st.fixed_dictionaries(
        {
            "cniVersion": st.sampled_from(versions),
            "name": st.sampled_from(["net1", "a.b-c_d", "0"]),
            "type": st.just("recorder"),
        },
        optional={
            "prevResult": VALID_PREV_RESULTS,
            "runtimeConfig": JSON_OBJECTS,
            "cni.dev/valid-attachments": VALID_ATTACHMENT_LISTS,
            "custom": JSON_VALUES,
        },
    )


# Valid in every field, so the plugin is reached and the success paths are checked too.
VALID_CONFIGS = st.one_of(valid_configs(SUPPORTED_VERSIONS), valid_configs((LATEST,)))
#: The versions each verb exists in, from the spec: CHECK came with 0.4.0, GC and STATUS
#: with 1.1.0. Written out, not taken from skel, so a skel that refuses a verb it should
#: run fails the tests below.
VERB_VERSIONS = {
    "ADD": ALL_VERSIONS,
    "DEL": ALL_VERSIONS,
    "CHECK": ("0.4.0", "1.0.0", "1.1.0"),
    "GC": ("1.1.0",),
    "STATUS": ("1.1.0",),
}
#: Good environment and valid config for that verb: skel must hand every one to the plugin.
GOOD_REQUESTS = st.sampled_from(sorted(VERB_VERSIONS)).flatmap(
    lambda verb: st.tuples(st.just(full_env(verb)), valid_configs(VERB_VERSIONS[verb]).map(_encode))
)
STDINS = st.one_of(
    st.binary(max_size=40),
    JSON_OBJECTS.map(lambda o: json.dumps(o).encode()),
    CONFIGS.map(_encode),
    VALID_CONFIGS.map(_encode),
)
#: (environ, stdin, good): anything, often nearly right; and good requests, marked so.
REQUESTS = st.one_of(
    st.tuples(st.one_of(ENVIRONS, GOOD_ENVIRONS, GOOD_ENVIRONS), STDINS, st.just(False)),
    GOOD_REQUESTS.map(lambda request: (*request, True)),
)
#: skel's name for each verb's method on the plugin.
METHODS = {"ADD": "add", "DEL": "delete", "CHECK": "check", "GC": "gc", "STATUS": "status"}

EXCEPTIONS = st.one_of(
    st.builds(KeyError, st.text(max_size=10)),
    st.builds(ValueError, st.text(max_size=10)),
    st.builds(RuntimeError, st.text()),
    st.builds(OSError, st.integers(0, 200), st.text(max_size=10)),
    st.builds(ZeroDivisionError),
    st.builds(
        lambda msg, details, code: CNIError(msg, details, code=code),
        st.text(max_size=20),
        st.text(max_size=20),
        st.integers(100, 1000),
    ),
)

ERROR_KEYS = {"cniVersion", "code", "msg", "details"}


def assert_is_cni_answer(environ: Mapping[str, str], stdin: bytes, status: int, out: bytes) -> Any:
    """The protocol's whole promise: a result, a version, nothing, or one error object."""
    assert b"Traceback" not in out
    if status == 0:
        command = environ["CNI_COMMAND"]
        if command == "VERSION":
            assert json.loads(out) == {
                "cniVersion": LATEST,
                "supportedVersions": list(ALL_VERSIONS),
            }
        elif command == "ADD":
            obj = json.loads(out)
            version = json.loads(stdin)["cniVersion"]
            assert obj["cniVersion"] == version
            assert Result.from_dict(obj) == FIXED_RESULT.convert(version)
        else:
            assert command in ("DEL", "CHECK", "GC", "STATUS")
            assert out == b""
        return None
    assert status == 1
    assert out.endswith(b"\n")
    obj = json.loads(out)
    assert isinstance(obj, dict)
    assert set(obj) <= ERROR_KEYS
    assert {"cniVersion", "code", "msg"} <= set(obj)
    assert type(obj["code"]) is int
    assert isinstance(obj["msg"], str)
    assert isinstance(obj["cniVersion"], str)
    assert isinstance(obj.get("details", ""), str)
    return obj


A_GOOD_ADD = (full_env("ADD"), conf(), True)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=REQUESTS)
@example(request=A_GOOD_ADD)
def test_well_behaved_plugin_always_gives_a_protocol_answer(
    request: tuple[dict[str, str], bytes, bool],
) -> None:
    environ, stdin, good = request
    plugin = RecordingPlugin()
    status, out = skel.run(plugin, environ, stdin)
    obj = assert_is_cni_answer(environ, stdin, status, out)
    if good:
        assert status == 0, obj  # a good request is skel's to pass on, not to refuse
    if status == 0 and environ["CNI_COMMAND"] != "VERSION":
        assert len(plugin.calls) == 1
    if status == 1:
        # This plugin never fails: every error is skel's own, raised before the plugin ran.
        assert plugin.calls == []
        assert obj["code"] in (1, 4, 6, 7)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=REQUESTS, exc=EXCEPTIONS)
@example(request=A_GOOD_ADD, exc=ValueError("boom"))
def test_raising_plugin_always_gives_one_error_object(
    request: tuple[dict[str, str], bytes, bool], exc: Exception
) -> None:
    environ, stdin, good = request
    plugin = RaisingPlugin(exc)
    status, out = skel.run(plugin, environ, stdin)
    obj = assert_is_cni_answer(environ, stdin, status, out)
    if good:
        assert plugin.calls, obj  # the error must be the plugin's, not skel's
    if status == 0:
        assert environ["CNI_COMMAND"] == "VERSION"
    if plugin.calls:
        assert status == 1
        assert obj["cniVersion"] == plugin.calls[0][1].config.cni_version
        if isinstance(exc, CNIError):
            assert (obj["code"], obj["msg"]) == (exc.code, exc.msg)
        else:
            assert obj["code"] == 999
            assert obj["details"].startswith(type(exc).__name__ + ":")


@settings(max_examples=100, deadline=None)
@given(request=GOOD_REQUESTS)
@example(request=A_GOOD_ADD[:2])
def test_good_environment_with_valid_config_reaches_the_plugin(
    request: tuple[dict[str, str], bytes],
) -> None:
    environ, stdin = request
    plugin = RecordingPlugin()
    status, out = skel.run(plugin, environ, stdin)
    assert status == 0, out
    [(method, seen)] = plugin.calls
    config = json.loads(stdin)
    assert method == METHODS[environ["CNI_COMMAND"]]
    assert (seen.config.name, seen.config.cni_version) == (config["name"], config["cniVersion"])


# --- as a real executable -------------------------------------------------------------

PLUGIN_SCRIPT = """\
#!{python}
import ipaddress

from multinic.cni import skel
from multinic.cni.errors import CNIError
from multinic.cni.types import Interface, IPConfig, Result


class Tiny:
    name = "tiny"
    supported_versions = ("0.4.0", "1.0.0", "1.1.0")

    def add(self, request):
        if request.config.raw.get("fail"):
            raise CNIError("no free address", "pool exhausted", code=107)
        return Result(
            "1.1.0",
            interfaces=(Interface(request.ifname, sandbox=request.netns, mtu=9000),),
            ips=(IPConfig(ipaddress.ip_interface("10.0.0.7/24"), interface=0),),
        )

    def delete(self, request):
        pass

    check = status = gc = delete


skel.main(Tiny())
"""


@pytest.fixture
def tiny_plugin(tmp_path: Path) -> Path:
    script = tmp_path / "tiny"
    script.write_text(PLUGIN_SCRIPT.format(python=sys.executable))
    script.chmod(0o755)
    return script


def exec_plugin(script: Path, env: Mapping[str, str], stdin: bytes) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(script)], input=stdin, env=dict(env), capture_output=True, timeout=60, check=False
    )


def test_executable_plugin_add_prints_the_result_and_exits_0(tiny_plugin: Path) -> None:
    done = exec_plugin(tiny_plugin, full_env("ADD", CNI_IFNAME="net7"), conf("0.4.0"))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "cniVersion": "0.4.0",
        "interfaces": [{"name": "net7", "sandbox": "/var/run/netns/pod1"}],
        "ips": [{"version": "4", "interface": 0, "address": "10.0.0.7/24"}],
        "dns": {},
    }


def test_executable_plugin_failure_prints_the_error_and_exits_1(tiny_plugin: Path) -> None:
    done = exec_plugin(tiny_plugin, full_env("ADD"), conf("1.0.0", fail=True))
    assert done.returncode == 1
    assert json.loads(done.stdout) == {
        "cniVersion": "1.0.0",
        "code": 107,
        "msg": "no free address",
        "details": "pool exhausted",
    }


def test_executable_plugin_del_prints_nothing(tiny_plugin: Path) -> None:
    done = exec_plugin(tiny_plugin, full_env("DEL"), conf("1.0.0"))
    assert (done.returncode, done.stdout) == (0, b"")


def test_executable_plugin_version_does_not_wait_for_stdin(tiny_plugin: Path) -> None:
    # stdin stays open and empty: a plugin that read it would block until the timeout.
    with subprocess.Popen(
        [str(tiny_plugin)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={"CNI_COMMAND": "VERSION"},
    ) as proc:
        try:
            status = proc.wait(timeout=30)
        finally:
            assert proc.stdin is not None
            proc.stdin.close()
        assert proc.stdout is not None
        out = proc.stdout.read()
    assert status == 0
    assert json.loads(out) == {
        "cniVersion": "1.1.0",
        "supportedVersions": ["0.4.0", "1.0.0", "1.1.0"],
    }


def test_executable_plugin_with_bad_env_exits_1_with_code_4(tiny_plugin: Path) -> None:
    done = exec_plugin(tiny_plugin, {"CNI_COMMAND": "ADD"}, conf("1.0.0"))
    assert done.returncode == 1
    obj = json.loads(done.stdout)
    assert obj["code"] == 4
    assert done.stderr == b""


def test_executable_plugin_that_cannot_read_stdin_answers_code_5(
    tiny_plugin: Path, tmp_path: Path
) -> None:
    # A file opened write-only is a real descriptor whose read() fails (EBADF).
    fd = os.open(tmp_path / "write-only", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        done = subprocess.run(
            [str(tiny_plugin)],
            stdin=fd,
            env=full_env("ADD"),
            capture_output=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(fd)
    assert done.returncode == 1
    obj = json.loads(done.stdout)
    assert obj["code"] == 5
    assert obj["msg"] == "error reading from stdin"
