"""Fixtures: the store contract runs against SQLite and a real etcd alike.

etcd here is one real member (etcd 3.6, built from its Go module by
scripts/build-third-party; tests/support/etcd_cluster.py) on a free loopback port,
started once per session; the three-member cluster and its failures are the
end-to-end tests' (tests/e2e/etcd).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from multinic.ipam.etcd_store import EtcdStore
from multinic.ipam.sqlite_store import SQLiteStore
from multinic.ipam.store import Store
from tests.support.etcd_cluster import EtcdCluster

_prefixes = itertools.count()

Opener = Callable[[], Store]


@pytest.fixture(scope="session")
def etcd_member(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    with EtcdCluster(tmp_path_factory.mktemp("etcd") / "cluster", size=1) as cluster:
        yield cluster


@pytest.fixture(params=["sqlite", "etcd"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens another handle on one fresh store (as another process would); closes them all."""
    opened: list[Store] = []
    if request.param == "etcd":
        endpoints = request.getfixturevalue("etcd_member").endpoints
        # A fresh key prefix per test: tests share the member, never each other's keys.
        prefix = f"/test-{next(_prefixes)}/"

        def make() -> Store:
            return EtcdStore(endpoints, prefix=prefix)

    else:
        path = str(tmp_path / "ipam.db")

        def make() -> Store:
            return SQLiteStore(path)

    def open_one() -> Store:
        store = make()
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()


@pytest.fixture
def store(opener: Opener) -> Store:
    return opener()
