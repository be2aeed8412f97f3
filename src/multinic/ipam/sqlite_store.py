"""The embedded store: one SQLite file (stdlib ``sqlite3``), the default when nothing is configured.

Safe for many plugin processes on one node at once: WAL lets readers run beside
the single writer, and every commit is one ``BEGIN IMMEDIATE`` transaction that
checks the expected revisions and applies the changes, or changes nothing.
Waiting for the write lock is bounded by the caller's deadline; a lock still
held then is "unavailable", which retry_cas turns into CNI code 11.

It is a node's store: the file must be on a local disk (SQLite's locking is not
safe over NFS). Nodes of a real cluster share etcd instead.

Only an empty database gets our schema: a file that holds other tables, or
another schema version, is refused untouched, so a store path pointing at
someone else's database never gains tables or a switch to WAL. ``read_only``
(the CLI's inspection commands) opens the file with SQLite's ``mode=ro`` and
creates nothing, not even the schema.
"""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import time
from _thread import allocate_lock
from collections.abc import Iterable, Mapping

from multinic.ipam.store import (
    ABSENT,
    StoreError,
    StoreUnavailableError,
    Versioned,
    Written,
    check_commit,
    prefix_end,
)

DEFAULT_PATH = "/var/lib/multinic/ipam.db"

# How long opening waits for other processes that hold the file (seconds).
_OPEN_TIMEOUT = 30.0

_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    revision INTEGER NOT NULL,
    value BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('revision', 0);
"""


class SQLiteStore:
    """The Store protocol over one SQLite database file."""

    def __init__(self, path: str = DEFAULT_PATH, *, read_only: bool = False) -> None:
        self.path = path
        self._db = _open_read_only(path) if read_only else _open(path)

    def snapshot(self, keys: Iterable[str], *, deadline: float) -> dict[str, Versioned]:
        wanted = list(dict.fromkeys(keys))
        out = dict.fromkeys(wanted, ABSENT)
        marks = ",".join("?" * len(wanted))
        self._wait_at_most(deadline)
        # Only placeholders are interpolated; the keys travel as parameters.
        sql = f"SELECT key, revision, value FROM kv WHERE key IN ({marks})"  # noqa: S608
        rows = self._select(sql, wanted)
        out.update(rows)
        return out

    def scan(self, prefix: str, *, deadline: float) -> dict[str, Versioned]:
        return self.scan_range(prefix, prefix_end(prefix), deadline=deadline)

    def scan_range(self, start: str, end: str, *, deadline: float) -> dict[str, Versioned]:
        sql = "SELECT key, revision, value FROM kv WHERE key >= ? AND key < ? ORDER BY key"
        self._wait_at_most(deadline)
        return self._select(sql, [start, end])

    def commit(
        self,
        expected: Mapping[str, int],
        changes: Mapping[str, bytes | None],
        *,
        deadline: float,
    ) -> Written | None:
        check_commit(expected, changes)
        self._wait_at_most(deadline)
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise _classify(exc, self.path) from exc
        try:
            if not self._revisions_match(expected):
                self._db.execute("ROLLBACK")
                return None
            revision = self._apply(changes)
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            _roll_back(self._db)
            raise _classify(exc, self.path) from exc
        return {key: 0 if value is None else revision for key, value in changes.items()}

    def close(self) -> None:
        self._db.close()

    def _revisions_match(self, expected: Mapping[str, int]) -> bool:
        for key, revision in expected.items():
            row = self._db.execute("SELECT revision FROM kv WHERE key = ?", (key,)).fetchone()
            if (row[0] if row else 0) != revision:
                return False
        return True

    def _apply(self, changes: Mapping[str, bytes | None]) -> int:
        """Write ``changes`` at the next revision, which it returns."""
        (current,) = self._db.execute("SELECT value FROM meta WHERE name = 'revision'").fetchone()
        revision = current + 1
        for key, value in changes.items():
            if value is None:
                self._db.execute("DELETE FROM kv WHERE key = ?", (key,))
            else:
                self._db.execute(
                    "INSERT OR REPLACE INTO kv VALUES (?, ?, ?)", (key, revision, value)
                )
        self._db.execute("UPDATE meta SET value = ? WHERE name = 'revision'", (revision,))
        return int(revision)

    def _select(self, sql: str, params: list[str]) -> dict[str, Versioned]:
        try:
            rows = self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise _classify(exc, self.path) from exc
        return {key: Versioned(revision, bytes(value)) for key, revision, value in rows}

    def _wait_at_most(self, deadline: float) -> None:
        # The busy handler retries the write lock until this many ms have passed.
        remaining_ms = max(int((deadline - time.monotonic()) * 1000), 0)
        self._db.execute(f"PRAGMA busy_timeout = {remaining_ms}")


#: Held while this process creates a database file or connects to one (see _open).
_CREATING = allocate_lock()


def _open(path: str) -> sqlite3.Connection:
    directory = os.path.dirname(path)
    try:
        if directory:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        with _CREATING:
            _create_owner_only(path)
            db = sqlite3.connect(
                path, timeout=_OPEN_TIMEOUT, isolation_level=None, check_same_thread=False
            )
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"cannot open the IPAM database {path!r}: {exc}") from exc
    try:
        _prepare(db, path)
    except BaseException:
        db.close()
        raise
    return db


def _create_owner_only(path: str) -> None:
    """Create a missing database file owner-only, before SQLite would (with the umask).

    Never open and close a descriptor of a database file that exists: POSIX
    drops *every* lock a process holds on a file when it closes *any*
    descriptor of it, so in the node daemon, where other threads' connections
    hold SQLite's locks on the same file, that close let other processes write
    under them ("disk I/O error", a corrupt WAL index). A file that did not
    exist has no such locks, and the caller holds _CREATING so no connection of
    this process opens it before the descriptor is closed.
    """
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))


def _prepare(db: sqlite3.Connection, path: str) -> None:
    """Creates the schema on first use; retries while another process is doing the same.

    Switching a new file to WAL does not wait in SQLite's busy handler: a second
    process opening the same fresh file at that moment gets "database is locked"
    at once, so the first pods on a node would fail together without this loop.
    """
    deadline = time.monotonic() + _OPEN_TIMEOUT
    while True:
        try:
            if not _is_ours(db):
                _create_schema(db, path)
            _use_wal(db)
            # FULL: an address handed out must survive a power cut, or it is handed out twice.
            db.execute("PRAGMA synchronous = FULL")
            return
        except sqlite3.Error as exc:
            error = _classify(exc, path)
            if not isinstance(error, StoreUnavailableError) or time.monotonic() >= deadline:
                raise error from exc
        time.sleep(random.uniform(0.002, 0.02))  # noqa: S311 - jitter, not security


def _open_read_only(path: str) -> sqlite3.Connection:
    """Opens an existing store without writing to it: no file, schema or WAL switch is made."""
    from urllib.parse import quote  # the CLI's path only: plugins never open read-only

    try:
        db = sqlite3.connect(
            f"file:{quote(path)}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the IPAM database {path!r}: {exc}") from exc
    try:
        if not _is_ours(db):
            raise _not_ours(db, path)
    except sqlite3.Error as exc:
        db.close()
        raise _classify(exc, path) from exc
    except BaseException:
        db.close()
        raise
    return db


def _tables(db: sqlite3.Connection) -> set[str]:
    rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {name for (name,) in rows}


def _is_ours(db: sqlite3.Connection) -> bool:
    (version,) = db.execute("PRAGMA user_version").fetchone()
    return bool(version == _SCHEMA_VERSION and {"kv", "meta"} <= _tables(db))


def _refuse_foreign(db: sqlite3.Connection, path: str) -> None:
    # Only a database with no tables and no version is new: anything else is someone
    # else's, and we never add to it.
    (version,) = db.execute("PRAGMA user_version").fetchone()
    if version != 0 or _tables(db):
        raise _not_ours(db, path)


def _not_ours(db: sqlite3.Connection, path: str) -> StoreError:
    (version,) = db.execute("PRAGMA user_version").fetchone()
    tables = _tables(db)
    found = ", ".join(sorted(tables)[:5]) or "none"
    return StoreError(
        f"{path!r} is not a multinic IPAM store (schema version {version}, "
        f"expected {_SCHEMA_VERSION}; tables: {found}): refusing to use it"
    )


def _create_schema(db: sqlite3.Connection, path: str) -> None:
    # Checked under the write lock: another process may have created it meanwhile,
    # and a database that is someone else's must be left exactly as it was.
    db.execute("BEGIN IMMEDIATE")
    try:
        if not _is_ours(db):
            _refuse_foreign(db, path)
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
        db.execute("COMMIT")
    except (sqlite3.Error, StoreError):
        _roll_back(db)
        raise


def _roll_back(db: sqlite3.Connection) -> None:
    """ROLLBACK if a transaction is still open: SQLite itself rolls back on some
    errors (SQLITE_BUSY on COMMIT among them), and a second ROLLBACK would raise
    "no transaction is active" over the error that matters (a busy database,
    which callers retry)."""
    if db.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")


def _use_wal(db: sqlite3.Connection) -> None:
    # Only once the schema says the file is ours; reading the mode costs nothing.
    (mode,) = db.execute("PRAGMA journal_mode").fetchone()
    if mode != "wal":
        db.execute("PRAGMA journal_mode = WAL")


def _classify(exc: sqlite3.Error, path: str) -> StoreError:
    text = str(exc).lower()
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
        return StoreUnavailableError(f"the IPAM database {path!r} is busy: {exc}")
    return StoreError(f"the IPAM database {path!r} failed: {exc}")
