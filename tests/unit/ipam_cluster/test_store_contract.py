"""The Store contract, run against SQLite and a real etcd member alike."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from multinic.cni.errors import ErrorCode, TryAgainLaterError
from multinic.ipam.etcd_store import EtcdStore
from multinic.ipam.sqlite_store import SQLiteStore
from multinic.ipam.store import (
    ABSENT,
    Conflict,
    Store,
    StoreError,
    StoreUnavailableError,
    deadline_after,
    retry_cas,
)
from tests.support.etcd_cluster import EtcdCluster, free_port
from tests.unit.ipam_cluster.conftest import Opener


def soon() -> float:
    return deadline_after(10)


def test_absent_keys_read_as_revision_zero(store: Store) -> None:
    assert store.snapshot(["a", "b"], deadline=soon()) == {"a": ABSENT, "b": ABSENT}
    assert store.snapshot([], deadline=soon()) == {}


def test_create_only_when_absent(store: Store) -> None:
    assert store.commit({"a": 0}, {"a": b"one"}, deadline=soon())
    first = store.snapshot(["a"], deadline=soon())["a"]
    assert first.value == b"one" and first.revision > 0
    # A second create of the same key loses: it expected the key absent.
    assert not store.commit({"a": 0}, {"a": b"two"}, deadline=soon())
    assert store.snapshot(["a"], deadline=soon())["a"] == first


def test_update_needs_the_current_revision(store: Store) -> None:
    store.commit({"a": 0}, {"a": b"1"}, deadline=soon())
    rev = store.snapshot(["a"], deadline=soon())["a"].revision
    assert store.commit({"a": rev}, {"a": b"2"}, deadline=soon())
    assert not store.commit({"a": rev}, {"a": b"3"}, deadline=soon())  # stale now
    now = store.snapshot(["a"], deadline=soon())["a"]
    assert now.value == b"2" and now.revision > rev


def test_a_commit_answers_the_revisions_it_wrote(store: Store) -> None:
    created = store.commit({"a": 0}, {"a": b"1"}, deadline=soon())
    assert created == {"a": store.snapshot(["a"], deadline=soon())["a"].revision}
    # The answered revision guards the next commit as a read's would: no read needed.
    both = store.commit({"a": created["a"], "b": 0}, {"a": b"2", "b": b"x"}, deadline=soon())
    assert both is not None
    now = store.snapshot(["a", "b"], deadline=soon())
    assert both == {"a": now["a"].revision, "b": now["b"].revision}
    assert both["a"] > created["a"]
    # A deleted key answers 0, the revision of an absent one.
    assert store.commit({"b": both["b"]}, {"b": None}, deadline=soon()) == {"b": 0}
    # Only a guard, nothing written: an empty answer, which is not a lost race.
    assert store.commit({"a": both["a"]}, {}, deadline=soon()) == {}
    assert store.commit({"a": created["a"]}, {}, deadline=soon()) is None


def test_a_commit_is_all_or_nothing(store: Store) -> None:
    store.commit({"a": 0}, {"a": b"1"}, deadline=soon())
    rev = store.snapshot(["a"], deadline=soon())["a"].revision
    # "b" is expected to exist but does not: neither key changes.
    assert not store.commit({"a": rev, "b": 5}, {"a": b"2", "b": b"x"}, deadline=soon())
    after = store.snapshot(["a", "b"], deadline=soon())
    assert after["a"].revision == rev and after["a"].value == b"1"
    assert after["b"] == ABSENT


def test_a_check_guards_a_key_it_does_not_change(store: Store) -> None:
    store.commit({"guard": 0}, {"guard": b"g"}, deadline=soon())
    guard = store.snapshot(["guard"], deadline=soon())["guard"].revision
    assert not store.commit({"guard": guard + 100, "x": 0}, {"x": b"1"}, deadline=soon())
    assert store.commit({"guard": guard, "x": 0}, {"x": b"1"}, deadline=soon())


def test_delete_and_recreate_never_matches_a_stale_revision(store: Store) -> None:
    store.commit({"a": 0}, {"a": b"1"}, deadline=soon())
    old = store.snapshot(["a"], deadline=soon())["a"].revision
    assert store.commit({"a": old}, {"a": None}, deadline=soon())
    assert store.snapshot(["a"], deadline=soon())["a"] == ABSENT
    assert store.commit({"a": 0}, {"a": b"again"}, deadline=soon())
    new = store.snapshot(["a"], deadline=soon())["a"].revision
    assert new > old  # revisions only grow: no ABA
    assert not store.commit({"a": old}, {"a": b"stale"}, deadline=soon())


def test_unguarded_writes_are_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="unguarded"):
        store.commit({}, {"a": b"1"}, deadline=soon())
    assert store.snapshot(["a"], deadline=soon())["a"] == ABSENT


def test_scan_by_prefix_and_by_range(store: Store) -> None:
    keys = ["p/a", "p/b", "p/b/c", "q/a", "p0"]
    assert store.commit(dict.fromkeys(keys, 0), {k: k.encode() for k in keys}, deadline=soon())
    assert sorted(store.scan("p/", deadline=soon())) == ["p/a", "p/b", "p/b/c"]
    assert sorted(store.scan_range("p/b", "p/c", deadline=soon())) == ["p/b", "p/b/c"]
    assert store.scan("r/", deadline=soon()) == {}
    found = store.scan("q/", deadline=soon())
    assert found["q/a"].value == b"q/a" and found["q/a"].revision > 0


def test_two_handles_see_each_others_commits(opener: Opener) -> None:
    one, two = opener(), opener()
    assert one.commit({"k": 0}, {"k": b"v"}, deadline=soon())
    assert two.snapshot(["k"], deadline=soon())["k"].value == b"v"


def test_concurrent_increments_lose_nothing(opener: Opener) -> None:
    """Many writers, one counter: every increment lands exactly once through CAS."""
    writers, rounds = 4, 15
    stores = [opener() for _ in range(writers)]
    errors: list[BaseException] = []

    def increment(store: Store) -> None:
        deadline = deadline_after(60)

        def attempt() -> None:
            seen = store.snapshot(["n"], deadline=deadline)["n"]
            value = int(seen.value or b"0") + 1
            if store.commit({"n": seen.revision}, {"n": b"%d" % value}, deadline=deadline) is None:
                raise Conflict

        try:
            for _ in range(rounds):
                retry_cas(attempt, deadline, what="increment")
        except BaseException as exc:  # reported to the test thread below
            errors.append(exc)

    threads = [threading.Thread(target=increment, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert stores[0].snapshot(["n"], deadline=soon())["n"].value == b"%d" % (writers * rounds)


def test_etcd_with_no_member_listening_is_unavailable_then_code_11() -> None:
    # A port nothing listens on: connection refused at once, on every attempt.
    store = EtcdStore([f"http://127.0.0.1:{free_port()}"], timeout=0.5)
    try:
        with pytest.raises(StoreUnavailableError):
            store.snapshot(["a"], deadline=deadline_after(2))
        deadline = deadline_after(0.5)
        with pytest.raises(TryAgainLaterError) as caught:
            retry_cas(lambda: store.snapshot(["a"], deadline=deadline), deadline, what="read")
        assert caught.value.code == ErrorCode.TRY_AGAIN_LATER
        assert "store unavailable" in caught.value.details
    finally:
        store.close()


def test_etcd_fails_over_to_a_member_that_answers(etcd_member: EtcdCluster) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    endpoints = [dead, *etcd_member.endpoints]
    store = EtcdStore(endpoints, prefix="/failover/")
    try:
        assert store.commit({"a": 0}, {"a": b"1"}, deadline=soon())
        assert store.snapshot(["a"], deadline=soon())["a"].value == b"1"
    finally:
        store.close()


def test_etcd_rejects_bad_endpoints() -> None:
    for bad in ("ftp://127.0.0.1:2379", "http://:2379", "http://127.0.0.1:notaport"):
        with pytest.raises(StoreError):
            EtcdStore([bad])
    with pytest.raises(StoreError, match="no endpoints"):
        EtcdStore([])


def test_sqlite_write_lock_held_past_the_deadline_is_unavailable(tmp_path: Path) -> None:
    path = str(tmp_path / "ipam.db")
    store = SQLiteStore(path)
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # another process holding the write lock
        with pytest.raises(StoreUnavailableError, match="busy"):
            store.commit({"a": 0}, {"a": b"1"}, deadline=deadline_after(0.2))
        blocker.execute("ROLLBACK")
        assert store.commit({"a": 0}, {"a": b"1"}, deadline=soon())
    finally:
        blocker.close()
        store.close()


def test_sqlite_database_is_owner_only_and_unopenable_path_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "ipam.db"
    SQLiteStore(str(path)).close()
    assert path.stat().st_mode & 0o077 == 0
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match="cannot open"):
        SQLiteStore(str(tmp_path / "file" / "ipam.db"))


def test_sqlite_many_handles_opening_one_fresh_file_at_once_all_succeed(tmp_path: Path) -> None:
    # The first pods on a node open the not-yet-created database together and
    # write at once; switching the file to WAL does not wait in SQLite's busy
    # handler, so before the fix about 1 attempt in 25 failed with "locked".
    for attempt in range(60):
        assert open_and_write_at_once(str(tmp_path / f"ipam-{attempt}.db"), handles=6) == []


def open_and_write_at_once(path: str, handles: int) -> list[BaseException]:
    start = threading.Barrier(handles)
    failures: list[BaseException] = []
    opened: list[SQLiteStore] = []

    def open_and_write() -> None:
        key = f"k{threading.get_ident()}"
        start.wait()
        try:
            store = SQLiteStore(path)
            opened.append(store)
            assert store.commit({key: 0}, {key: b"1"}, deadline=soon())
        except BaseException as exc:  # reported to the test thread below
            failures.append(exc)

    threads = [threading.Thread(target=open_and_write) for _ in range(handles)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in opened:
        store.close()
    return failures
