"""multinic-ipam's Kubernetes store on the session's control plane: a scope per test.

Every object a test's store writes carries the test's scope label, so tests
share the API server but never each other's objects, and the scope's objects
are deleted afterwards (by label) even when the test failed.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable, Iterator

import pytest

from multinic.ipam.kube_store import KubeStore
from multinic.ipam.store import Store
from tests.support.kube import KubeCluster

KINDS = "ipampools,ipamnodeblocks,ipamreservations,ipamaddressclaims,ipamtransactions,ipamdocuments"
_count = itertools.count()

Opener = Callable[[], Store]


def delete_scope(cluster: KubeCluster, scope: str) -> None:
    cluster.kubectl(
        "delete", KINDS, "-l", f"ipam.multinic.io/scope={scope}", "--wait=false", check=False
    )


def scope_objects(cluster: KubeCluster, scope: str) -> list[str]:
    done = cluster.kubectl("get", KINDS, "-l", f"ipam.multinic.io/scope={scope}", "-o", "name")
    return done.stdout.split()


@pytest.fixture
def scope(kube_cluster: KubeCluster) -> Iterator[str]:
    name = f"t{next(_count)}-{secrets.token_hex(3)}"
    yield name
    delete_scope(kube_cluster, name)


@pytest.fixture
def opener(kube_cluster: KubeCluster, scope: str) -> Iterator[Opener]:
    """Opens another store on the test's scope (as another process would); closes them all."""
    opened: list[Store] = []

    def open_one() -> Store:
        store = KubeStore.connect(str(kube_cluster.kubeconfig), timeout=5.0, scope=scope)
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()


@pytest.fixture
def store(opener: Opener) -> Store:
    return opener()
