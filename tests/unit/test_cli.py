"""The ``multinic`` command line, without root: parsing, listing, cnitool's conventions."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from multinic.cli.cni_commands import cnitool_container_id, resolve_netns
from multinic.cli.main import cli


def write(path: Path, obj: object) -> None:
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))


def test_container_id_is_cnitools() -> None:
    # cnitool's rule: "cnitool-" and the first 20 hex digits of the netns path's SHA-512.
    # A known value, worked out once (`printf %s /var/run/netns/pod1 | sha512sum`), so
    # the test does not restate the code it checks.
    assert cnitool_container_id("/var/run/netns/pod1") == "cnitool-bea13e247008fe5f4a37"


def test_netns_paths_are_made_absolute(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_netns("some/relative") == str(tmp_path / "some/relative")
    assert resolve_netns("/proc/1/ns/net") == "/proc/1/ns/net"


def test_ls_marks_the_first_file_by_name_as_default_and_reports_problems(tmp_path: Path) -> None:
    write(
        tmp_path / "20-b.conflist", {"cniVersion": "1.0.0", "name": "b", "plugins": [{"type": "x"}]}
    )
    write(tmp_path / "10-a.conf", {"cniVersion": "0.4.0", "name": "a", "type": "macvlan"})
    write(tmp_path / "30-broken.conflist", "{not json")

    done = CliRunner().invoke(cli, ["cni", "--conf-dir", str(tmp_path), "ls", "--json"])

    assert done.exit_code == 1
    listing = json.loads(done.stdout)
    assert [(n["name"], n["default"]) for n in listing["networks"]] == [("b", False), ("a", True)]
    assert listing["networks"][1]["cniVersion"] == "0.4.0"
    assert len(listing["problems"]) == 1
    assert "30-broken.conflist" in listing["problems"][0]


def test_ls_shows_an_unusable_version(tmp_path: Path) -> None:
    write(tmp_path / "10-old.conf", {"cniVersion": "0.2.0", "name": "old", "type": "bridge"})

    done = CliRunner().invoke(cli, ["cni", "--conf-dir", str(tmp_path), "ls", "--json"])

    assert done.exit_code == 0
    (row,) = json.loads(done.stdout)["networks"]
    assert row["cniVersion"].startswith("unusable: ")


def test_ls_table_for_people(tmp_path: Path) -> None:
    write(
        tmp_path / "10-a.conflist",
        {"cniVersion": "1.0.0", "name": "a", "plugins": [{"type": "bridge"}, {"type": "tuning"}]},
    )

    done = CliRunner().invoke(cli, ["cni", "--conf-dir", str(tmp_path), "ls"])

    assert done.exit_code == 0
    assert "a (default)" in done.stdout
    assert "bridge -> tuning" in done.stdout


def test_unknown_network_is_exit_1_with_the_cni_code(tmp_path: Path) -> None:
    done = CliRunner().invoke(
        cli, ["cni", "--conf-dir", str(tmp_path), "del", "nope", "/var/run/netns/x"]
    )
    assert done.exit_code == 1
    assert "CNI error 7" in done.stderr


def test_gc_valid_attachments_must_be_containerid_slash_ifname(tmp_path: Path) -> None:
    done = CliRunner().invoke(
        cli, ["cni", "--conf-dir", str(tmp_path), "gc", "net", "--valid", "no-slash"]
    )
    assert done.exit_code == 2
    assert "CONTAINERID/IFNAME" in done.stderr


def test_version() -> None:
    done = CliRunner().invoke(cli, ["--version"])
    assert done.exit_code == 0
    assert done.stdout.startswith("multinic, version ")
