"""``multinic ipam``: destructive commands ask for a list or --all, show with --dry-run,
refuse names that match nothing; inspection never writes, and never to a stranger's database."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.ipam_cluster.test_cli import fill, ipam

READ_ONLY = (["ls"], ["usage"], ["show", "_/10.50.0.0-24"], ["ls", "--json"])


def used(tmp_path: Path) -> int:
    done = ipam(tmp_path, "ls", "--json")
    assert done.exit_code == 0, done.output
    return int(json.loads(done.output)[0]["used"])


def test_gc_of_a_network_needs_a_keep_list_or_all(tmp_path: Path) -> None:
    fill(tmp_path, 4)
    bare = ipam(tmp_path, "gc", "--network", "net1")
    assert bare.exit_code == 2 and "--all" in bare.output and "--keep" in bare.output
    both = ipam(tmp_path, "gc", "--network", "net1", "--all", "--keep", "c0/net1")
    assert both.exit_code == 2 and "exclude each other" in both.output
    orphan = ipam(tmp_path, "gc", "--all", "--empty-blocks")
    assert orphan.exit_code == 2 and "need --network" in orphan.output
    assert used(tmp_path) == 4
    everything = ipam(tmp_path, "gc", "--network", "net1", "--all", "--json")
    assert everything.exit_code == 0, everything.output
    assert len(json.loads(everything.output)["released"]) == 4
    assert used(tmp_path) == 0


def test_dry_runs_show_what_would_go_and_change_nothing(tmp_path: Path) -> None:
    fill(tmp_path, 20)
    db = tmp_path / "ipam.db"
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    gc = ipam(tmp_path, "gc", "--network", "net1", "--keep", "c3/net1", "--dry-run", "--json")
    assert gc.exit_code == 0, gc.output
    report = json.loads(gc.output)
    assert report["dry_run"] is True and len(report["released"]) == 19
    assert "c3/net1" not in report["released"]
    human = ipam(tmp_path, "gc", "--network", "net1", "--all", "--empty-blocks", "--dry-run")
    assert "would release 20 attachment(s)" in human.output
    assert "would give back 0 empty block(s)" in human.output
    release = ipam(tmp_path, "release", "net1", "c1", "net1", "--dry-run")
    assert release.exit_code == 0 and "would release 10.50.0.2" in release.output
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert used(tmp_path) == 20


def test_dry_run_of_empty_blocks_lists_what_gc_gives_back(tmp_path: Path) -> None:
    fill(tmp_path, 20)
    ipam(tmp_path, "gc", "--network", "net1", "--keep", "c3/net1")
    shown = json.loads(ipam(tmp_path, "gc", "--empty-blocks", "--dry-run", "--json").output)
    done = json.loads(ipam(tmp_path, "gc", "--empty-blocks", "--json").output)
    assert shown["blocks"] == done["blocks"] == ["_/10.50.0.0-24 10.50.0.16/28"]


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    network=st.from_regex(r"[a-z][a-z0-9-]{0,12}", fullmatch=True),
    cid=st.from_regex(r"c[0-9]{1,3}", fullmatch=True),
    ifname=st.sampled_from(["net1", "eth0", "net2"]),
)
def test_names_that_match_nothing_are_errors_not_silent_no_ops(
    tmp_path_factory: pytest.TempPathFactory, network: str, cid: str, ifname: str
) -> None:
    tmp_path = tmp_path_factory.mktemp("typo")
    fill(tmp_path, 3)  # net1: c0/net1, c1/net1, c2/net1
    exists = network == "net1" and cid in {"c0", "c1", "c2"} and ifname == "net1"
    release = ipam(tmp_path, "release", network, cid, ifname, "--dry-run")
    assert (release.exit_code == 0) is exists, release.output
    if network != "net1":
        assert "networks holding addresses: net1" in release.output
        gc = ipam(tmp_path, "gc", "--network", network, "--all")
        assert gc.exit_code == 1 and f"no attachment of network {network!r}" in gc.output
    keep = ipam(tmp_path, "gc", "--network", "net1", "--keep", f"{cid}/{ifname}")
    assert (keep.exit_code == 0) is (cid in {"c0", "c1", "c2"} and ifname == "net1")
    if keep.exit_code:
        # A mistyped keep entry must not release what it meant to keep.
        assert "nothing released" in keep.output and used(tmp_path) == 3


def foreign_database(path: Path, statements: list[str]) -> str:
    db = sqlite3.connect(path)
    for statement in statements:
        db.execute(statement)
    db.commit()
    db.close()
    return hashlib.sha256(path.read_bytes()).hexdigest()


FOREIGN = [
    ["CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)", "INSERT INTO users VALUES (1, 'a')"],
    ["CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB)"],  # our table name, not our schema
    ["PRAGMA user_version = 7"],
    ["CREATE TABLE t (x)", "PRAGMA user_version = 1"],  # our version number, not our tables
    [],  # an empty SQLite file is not a store either, for the commands that only read
]


@pytest.mark.parametrize("statements", FOREIGN)
@pytest.mark.parametrize(
    "command", [*READ_ONLY, ["release", "n", "c", "i"], ["gc", "--empty-blocks"]]
)
def test_a_database_that_is_not_ours_is_refused_untouched(
    tmp_path: Path, statements: list[str], command: list[str]
) -> None:
    path = tmp_path / "ipam.db"
    path.touch()
    digest = foreign_database(path, statements)
    done = ipam(tmp_path, *command)
    if not statements and command[0] in ("release", "gc"):
        # A writing command may start a store in an empty file; it still finds nothing.
        assert done.exit_code in (0, 1), done.output
        return
    assert done.exit_code == 1 and "not a multinic IPAM store" in done.output, done.output
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert {p.name for p in tmp_path.iterdir()} == {"ipam.db"}  # no -wal, no -shm


@pytest.mark.parametrize("content", [b"not a database at all\n", b"\x00" * 100, b"SQLite format 3"])
def test_a_file_that_is_not_sqlite_is_a_message(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "ipam.db").write_bytes(content)
    done = ipam(tmp_path, "ls")
    assert done.exit_code == 1 and "Traceback" not in done.output
    assert (tmp_path / "ipam.db").read_bytes() == content


@pytest.mark.parametrize("command", READ_ONLY)
def test_read_only_commands_never_create_or_write(tmp_path: Path, command: list[str]) -> None:
    missing = ipam(tmp_path, *command)
    assert missing.exit_code == 1 and "no IPAM database" in missing.output
    assert list(tmp_path.iterdir()) == []
    fill(tmp_path, 2)
    db = tmp_path / "ipam.db"
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    assert ipam(tmp_path, *command).exit_code == 0
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest


@pytest.mark.parametrize("statements", FOREIGN[:4])
@pytest.mark.parametrize("verb", ["ADD", "STATUS", "GC"])
def test_the_plugin_refuses_a_stranger_database_with_code_5(
    tmp_path: Path, statements: list[str], verb: str
) -> None:
    from tests.unit.ipam_cluster.test_plugin import conf, run

    path = tmp_path / "ipam.db"
    digest = foreign_database(path, statements)
    config = conf(tmp_path, range="10.50.0.0/24")
    if verb == "GC":
        config["cni.dev/valid-attachments"] = []
    status, answer = run(verb, config)
    assert status != 0 and "not a multinic IPAM store" in answer["details"], answer
    assert answer["code"] in (5, 50)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
