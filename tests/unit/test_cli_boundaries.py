"""The command line, its environment and its files are a boundary: nonsense there is a
message and an exit code (``multinic cni``: the CNI code), never a traceback.

Exit codes: 1 a CNI operation or a write failed, 2 the command line was wrong.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st

from multinic.cli import cni_commands
from multinic.cli.main import cli
from tests.unit.plan.fabrics import fabric

NET = {"cniVersion": "1.0.0", "name": "net", "plugins": [{"type": "fake"}]}

#: A plugin that answers every verb: ADD with an empty result, the rest with nothing.
FAKE_PLUGIN = """#!/bin/sh
cat >/dev/null
case "$CNI_COMMAND" in
  ADD) echo '{"cniVersion": "1.0.0"}' ;;
  VERSION) echo '{"cniVersion": "1.0.0", "supportedVersions": ["1.0.0"]}' ;;
esac
"""

NOT_UTF8 = [b"\xff", b"eth\xfe0", b"\xc3", b"a\xed\xa0\x80"]


@pytest.fixture
def node(tmp_path: Path) -> dict[str, str]:
    """A config dir with ``net``, a plugin dir with its fake plugin, a cache dir."""
    (tmp_path / "net.d").mkdir()
    (tmp_path / "net.d" / "10-net.conflist").write_text(json.dumps(NET))
    (tmp_path / "bin").mkdir()
    plugin = tmp_path / "bin" / "fake"
    plugin.write_text(FAKE_PLUGIN)
    plugin.chmod(0o755)
    return {
        "NETCONFPATH": str(tmp_path / "net.d"),
        "CNI_PATH": str(tmp_path / "bin"),
        "CNI_CACHE_DIR": str(tmp_path / "cache"),
    }


def invoke(env: dict[str, str], *args: str) -> Result:
    return CliRunner(env=env).invoke(cli, list(args))


def assert_no_traceback(done: Result) -> None:
    assert done.exception is None or isinstance(done.exception, SystemExit), done.exception
    assert "Traceback" not in done.output


def cni_error(done: Result) -> int:
    """The CNI code a failed ``multinic cni`` command names."""
    assert_no_traceback(done)
    assert done.exit_code == 1, done.output
    assert done.stderr.startswith("multinic: CNI error "), done.stderr
    return int(done.stderr.split()[3].rstrip(":"))


# -- --timeout ----------------------------------------------------------------------------

BAD_SECONDS = ["nan", "NaN", "inf", "-inf", "infinity", "-1", "0", "-0.0", "1e400", "ten", ""]


@pytest.mark.parametrize("group", ["cni", "ipam"])
@pytest.mark.parametrize("value", BAD_SECONDS)
def test_a_timeout_must_be_finite_and_positive(group: str, value: str) -> None:
    done = invoke({}, group, "--timeout", value, "ls")
    assert done.exit_code == 2, done.output
    assert "--timeout" in done.stderr
    assert_no_traceback(done)


@settings(max_examples=30, deadline=None)
@given(st.floats(min_value=1e-3, max_value=1e6))
def test_any_finite_positive_timeout_is_taken(value: float) -> None:
    done = invoke({"NETCONFPATH": "/nonexistent"}, "cni", "--timeout", repr(value), "ls")
    assert done.exit_code == 0, done.output


# -- the environment and config files of `multinic cni` --------------------------------


@pytest.mark.parametrize("raw", NOT_UTF8)
def test_an_ifname_that_is_not_utf8_is_code_4(node: dict[str, str], raw: bytes) -> None:
    env = {**node, "CNI_IFNAME": os.fsdecode(raw)}
    for verb in ("add", "check", "del"):
        done = invoke(env, "cni", verb, "net", "/proc/self/ns/net")
        assert cni_error(done) == 4
        assert "interface name is not UTF-8" in done.stderr


@pytest.mark.parametrize("ifname", ["a" * 16, "eth0:1", "a/b", "eth 0", ".", "eth\u00e0"])
def test_an_ifname_the_kernel_refuses_is_code_4(node: dict[str, str], ifname: str) -> None:
    done = invoke({**node, "CNI_IFNAME": ifname}, "cni", "add", "net", "/proc/self/ns/net")
    assert cni_error(done) == 4


@pytest.mark.parametrize("raw", NOT_UTF8)
def test_cni_args_that_are_not_utf8_are_code_4(node: dict[str, str], raw: bytes) -> None:
    env = {**node, "CNI_ARGS": "K8S_POD_NAME=" + os.fsdecode(raw)}
    assert cni_error(invoke(env, "cni", "add", "net", "/proc/self/ns/net")) == 4


@pytest.mark.parametrize(
    "cap_args",
    ["[" * 100_000, '{"a":' * 70 + "1" + "}" * 70, "{not json", "[]", os.fsdecode(b'{"\xff": 1}')],
)
def test_bad_cap_args_are_a_usage_error(node: dict[str, str], cap_args: str) -> None:
    done = invoke({**node, "CAP_ARGS": cap_args}, "cni", "add", "net", "/proc/self/ns/net")
    assert done.exit_code == 2, done.output
    assert "CAP_ARGS" in done.stderr
    assert_no_traceback(done)


def test_a_netns_path_that_is_not_utf8_is_code_4(node: dict[str, str]) -> None:
    done = invoke(node, "cni", "add", "net", os.fsdecode(b"/var/run/netns/\xff"))
    assert cni_error(done) == 4
    assert "netns path is not UTF-8" in done.stderr


@pytest.mark.parametrize(
    "broken",
    [
        b"[" * 100_000,
        b'{"name": "deep", "cniVersion": "1.0.0", "plugins": [' + b"[" * 5000,
        b'{"name": "x\xff", "cniVersion": "1.0.0", "plugins": [{"type": "a"}]}',
        b"\xff\xfe\x00",
        b"",
    ],
)
def test_a_broken_unrelated_file_breaks_no_command(node: dict[str, str], broken: bytes) -> None:
    (Path(node["NETCONFPATH"]) / "05-broken.conflist").write_bytes(broken)
    (Path(node["NETCONFPATH"]) / "06-broken.conf").write_bytes(broken)

    assert invoke(node, "cni", "validate", "net").exit_code == 0
    assert invoke(node, "cni", "status", "net").exit_code == 0
    assert invoke(node, "cni", "add", "net", "/proc/self/ns/net").exit_code == 0
    assert invoke(node, "cni", "del", "net", "/proc/self/ns/net").exit_code == 0
    listed = invoke(node, "cni", "ls", "--json")
    assert listed.exit_code == 1  # the problems are listed, the good network too
    doc = json.loads(listed.stdout)
    assert [n["name"] for n in doc["networks"]] == ["net"] and len(doc["problems"]) == 2
    missing = invoke(node, "cni", "validate", "other")
    assert cni_error(missing) == 7
    assert "05-broken.conflist" in missing.stderr  # named, since it may be the one meant


def test_a_config_dir_whose_name_is_not_utf8_is_listed(node: dict[str, str]) -> None:
    odd = Path(node["NETCONFPATH"]).parent / os.fsdecode(b"net\xff.d")
    Path(node["NETCONFPATH"]).rename(odd)
    done = invoke({**node, "NETCONFPATH": str(odd)}, "cni", "ls")
    assert done.exit_code == 0, done.output
    assert "net\\xff.d" in done.stdout


# -- namespaces by name, and DEL of nothing ---------------------------------------------


def test_a_bare_name_is_an_ip_netns_namespace_never_a_file_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("pod1", "a.b", "x-y_z"):
        (tmp_path / name).write_text("")  # a file of that name here must not be taken
        assert cni_commands.resolve_netns(name) == f"/var/run/netns/{name}"
    assert cni_commands.resolve_netns("./pod1") == str(tmp_path / "pod1")


@pytest.mark.parametrize("verb", ["add", "check"])
@pytest.mark.parametrize("netns", ["no-such-pod", "/var/run/netns/no-such-pod", "./nope"])
def test_add_or_check_of_a_missing_namespace_is_code_3_with_its_path(
    node: dict[str, str], verb: str, netns: str
) -> None:
    done = invoke(node, "cni", verb, "net", netns)
    assert cni_error(done) == 3
    assert "no namespace at /" in done.stderr
    if "/" not in netns:
        assert f"/var/run/netns/{netns}" in done.stderr


@pytest.mark.parametrize("netns", ["", ".", ".."])
def test_a_netns_that_names_nothing_is_code_4(node: dict[str, str], netns: str) -> None:
    assert cni_error(invoke(node, "cni", "add", "net", netns)) == 4


def test_del_of_an_attachment_that_never_was_warns_but_still_deletes(
    node: dict[str, str],
) -> None:
    done = invoke(node, "cni", "del", "net", "mistyped-pod")
    assert done.exit_code == 0, done.output
    assert "warning: nothing was cached" in done.stderr
    assert "/var/run/netns/mistyped-pod" in done.stderr


def test_del_runs_when_the_namespace_exists_or_a_result_is_cached(
    node: dict[str, str], tmp_path: Path
) -> None:
    netns = tmp_path / "ns"  # stands in for a namespace file: DEL only needs it to exist
    netns.write_text("")
    assert invoke(node, "cni", "del", "net", str(netns)).exit_code == 0  # nothing cached
    assert invoke(node, "cni", "add", "net", str(netns)).exit_code == 0
    netns.unlink()  # the pod's namespace went first: its cached result still gets DEL
    gone = invoke(node, "cni", "del", "net", str(netns))
    assert gone.exit_code == 0 and "warning" not in gone.stderr  # the cached result was there
    again = invoke(node, "cni", "del", "net", str(netns))
    assert again.exit_code == 0 and "warning: nothing was cached" in again.stderr


# -- mutually exclusive options ---------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["ipam", "--db", "/x.db", "--etcd", "http://127.0.0.1:2379", "ls"],
        ["ipam", "--prefix", "/p/", "ls"],
        ["plan", "FABRIC", "--json", "--yaml"],
        ["plan", "FABRIC", "--yaml", "--json", "--check"],
    ],
)
def test_mutually_exclusive_options_are_refused(tmp_path: Path, args: list[str]) -> None:
    path = tmp_path / "fabric.yaml"
    path.write_text(yaml.safe_dump(fabric()))
    done = invoke({}, *[str(path) if a == "FABRIC" else a for a in args])
    assert done.exit_code == 2, done.output
    assert "mutually exclusive" in done.stderr or "needs --etcd" in done.stderr


def test_db_from_the_environment_and_etcd_are_refused_too() -> None:
    done = invoke({"MULTINIC_IPAM_DB": "/x.db"}, "ipam", "--etcd", "http://127.0.0.1:1", "ls")
    assert done.exit_code == 2 and "mutually exclusive" in done.stderr


@pytest.mark.parametrize("fmt", ["--json", "--yaml"])
def test_one_format_given_twice_is_fine(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "fabric.yaml"
    path.write_text(yaml.safe_dump(fabric()))
    assert invoke({}, "plan", str(path), fmt, fmt).exit_code == 0


# -- output paths -----------------------------------------------------------------------


@pytest.mark.parametrize("where", ["missing/map.svg", "missing/deeper/map.html", "file/map.svg"])
def test_a_map_in_a_missing_directory_is_a_usage_error(tmp_path: Path, where: str) -> None:
    path = tmp_path / "fabric.yaml"
    path.write_text(yaml.safe_dump(fabric()))
    (tmp_path / "file").write_text("")
    done = invoke({}, "plan", str(path), "--map", str(tmp_path / where))
    assert done.exit_code == 2, done.output
    assert "--map" in done.stderr and "does not exist" in done.stderr
    assert_no_traceback(done)


def test_a_map_onto_a_directory_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "fabric.yaml"
    path.write_text(yaml.safe_dump(fabric()))
    (tmp_path / "x.svg").mkdir()
    done = invoke({}, "plan", str(path), "--map", str(tmp_path / "x.svg"))
    assert done.exit_code == 2 and "is a directory" in done.stderr


def test_an_export_that_cannot_be_written_is_exit_1_with_the_path(tmp_path: Path) -> None:
    path = tmp_path / "fabric.yaml"
    path.write_text(yaml.safe_dump(fabric()))
    (tmp_path / "file").write_text("")
    done = invoke({}, "plan", str(path), "--export", str(tmp_path / "file" / "out"))
    assert done.exit_code == 1, done.output
    assert "cannot write" in done.stderr and str(tmp_path / "file") in done.stderr
    assert_no_traceback(done)


def test_install_plugins_into_a_file_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    done = invoke({}, "install-plugins", str(tmp_path / "file" / "bin"))
    assert done.exit_code == 1 and "cannot install plugins" in done.stderr
    assert_no_traceback(done)
