"""The SQLite store's rollback after a failed statement."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from multinic.ipam.sqlite_store import _roll_back


def test_roll_back_ends_an_open_transaction(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    db.execute("CREATE TABLE t (x)")
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO t VALUES (1)")

    _roll_back(db)

    assert not db.in_transaction
    assert db.execute("SELECT count(*) FROM t").fetchone() == (0,)


def test_roll_back_after_sqlite_already_did_is_quiet(tmp_path: Path) -> None:
    """SQLite rolls back by itself on some errors (SQLITE_BUSY mid-transaction); a
    second ROLLBACK raised "no transaction is active" over the error that mattered."""
    db = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    assert not db.in_transaction

    _roll_back(db)  # must not raise

    assert not db.in_transaction


def test_opening_the_store_again_in_one_process_loses_no_write(tmp_path: Path) -> None:
    """POSIX drops every lock of a process on a file when it closes any descriptor
    of it. Opening a store used to open and close the existing file, dropping the
    lock that tells other processes a connection is using the database; the next
    process to close it then thought it was the last, deleted the WAL, and the
    daemon's following write went into a deleted file: lost, and "disk I/O error"
    for readers (seen in the lab, where several connections share the daemon)."""
    from multinic.ipam.sqlite_store import SQLiteStore

    path = str(tmp_path / "ipam.db")
    daemon = SQLiteStore(path)
    write(daemon, "a", b"1")
    SQLiteStore(path).close()  # another thread of the daemon opens the store, and is done
    run_python(_WRITE_AND_CLOSE, path)  # another process uses the store and closes it

    write(daemon, "b", b"2")  # the daemon goes on

    assert run_python(_READ, path) == "b'1' b'2'"
    daemon.close()


def write(store: object, key: str, value: bytes) -> None:
    from multinic.ipam.store import deadline_after

    assert store.commit({key: 0}, {key: value}, deadline=deadline_after(5))  # type: ignore[attr-defined]


def run_python(code: str, path: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code, path], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


_WRITE_AND_CLOSE = """
import sys
from multinic.ipam.sqlite_store import SQLiteStore
from multinic.ipam.store import deadline_after
store = SQLiteStore(sys.argv[1])
store.commit({"c": 0}, {"c": b"3"}, deadline=deadline_after(5))
store.close()
"""

_READ = """
import sys
from multinic.ipam.sqlite_store import SQLiteStore
from multinic.ipam.store import deadline_after
got = SQLiteStore(sys.argv[1]).snapshot(["a", "b"], deadline=deadline_after(5))
print(got["a"].value, got["b"].value)
"""
