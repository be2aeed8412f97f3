"""The Kubernetes store's multi-object commit when its committer dies at each step.

A committer "dies" here by an exception injected between two of its requests
(the state on the API server is exactly what a SIGKILL there leaves); another
store, as another process, then reads the keys.
"""

from __future__ import annotations

from typing import Any

import pytest

from multinic.ipam.kube_store import KubeStore
from multinic.ipam.store import ABSENT, StoreUnavailableError
from tests.e2e.kube_ipam.conftest import Opener, scope_objects
from tests.support.kube import KubeCluster
from tests.unit.ipam_cluster.test_store_contract import soon


class DiedError(Exception):
    """The committer process ends here."""


def kube(store: Any) -> KubeStore:
    assert isinstance(store, KubeStore)
    return store


def die_at(monkeypatch: pytest.MonkeyPatch, method: str) -> None:
    def dead(*args: Any, **kwargs: Any) -> None:
        raise DiedError(method)

    monkeypatch.setattr(KubeStore, method, dead)


def test_locks_of_a_committer_dead_before_its_decision_are_rolled_back_after_expiry(
    opener: Opener, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer, reader = kube(opener()), kube(opener())
    assert writer.commit({"k/a": 0}, {"k/a": b"old"}, deadline=soon())
    rev = writer.snapshot(["k/a"], deadline=soon())["k/a"].revision
    with monkeypatch.context() as patch:
        die_at(patch, "_record")
        with pytest.raises(DiedError):
            writer.commit({"k/a": rev, "k/b": 0}, {"k/a": b"new", "k/b": b"b"}, deadline=soon())
    # Locked and undecided: busy until the lock expires, never the half-written value.
    with pytest.raises(StoreUnavailableError, match="being changed"):
        reader.snapshot(["k/a"], deadline=soon())
    reader.clock = lambda: 1e12  # far past every expiry
    seen = reader.snapshot(["k/a", "k/b"], deadline=soon())
    assert seen["k/a"].value == b"old" and seen["k/b"] == ABSENT
    # The loser's commit point is taken: it can never commit now.
    assert reader.scan("k/", deadline=soon()).keys() == {"k/a"}


def test_a_committer_dead_after_its_decision_is_rolled_forward_by_readers(
    opener: Opener, monkeypatch: pytest.MonkeyPatch, kube_cluster: KubeCluster, scope: str
) -> None:
    writer, reader = kube(opener()), kube(opener())
    assert writer.commit({"k/a": 0}, {"k/a": b"old"}, deadline=soon())
    rev = writer.snapshot(["k/a"], deadline=soon())["k/a"].revision
    with monkeypatch.context() as patch:
        die_at(patch, "_apply_all")  # the decision is made: committed, nothing applied yet
        with pytest.raises(DiedError):
            writer.commit({"k/a": rev, "k/b": 0}, {"k/a": None, "k/b": b"b"}, deadline=soon())
    assert reader.scan("k/", deadline=soon()).keys() == {"k/b"}
    seen = reader.snapshot(["k/a", "k/b"], deadline=soon())
    assert seen["k/a"] == ABSENT and seen["k/b"].value == b"b"
    # The stranded record goes with gc's sweep once its locks are long expired.
    reader.clock = lambda: 1e12
    assert reader.sweep(deadline=soon()) == 1
    assert [o for o in scope_objects(kube_cluster, scope) if "transaction" in o] == []


def test_a_lost_race_leaves_no_lock_placeholder_or_record(
    opener: Opener, kube_cluster: KubeCluster, scope: str
) -> None:
    store = kube(opener())
    assert store.commit({"k/a": 0}, {"k/a": b"1"}, deadline=soon())
    rev = store.snapshot(["k/a"], deadline=soon())["k/a"].revision
    assert store.commit({"k/a": rev, "k/n": 0}, {"k/a": b"2", "k/n": b"n"}, deadline=soon())
    # The same guard again: stale now. The new key was created (locked) first, then undone.
    assert not store.commit({"k/z": 0, "k/a": rev}, {"k/z": b"z", "k/a": b"3"}, deadline=soon())
    names = scope_objects(kube_cluster, scope)
    assert len(names) == 2 and not any("transaction" in n for n in names), names
    assert store.snapshot(["k/a"], deadline=soon())["k/a"].value == b"2"
