"""The SQLite store's rollback after a failed statement."""

from __future__ import annotations

import sqlite3
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
