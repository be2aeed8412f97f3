"""The node daemon's document copies (multinic.ipam.doc_cache) over a real store.

A warm ADD or DEL from copies is one commit and no read; every way a copy can
be stale (another writer, a release elsewhere, an ADD by an executable) must
still give the answer a fresh read would.
"""

from __future__ import annotations

import ipaddress

from multinic.ipam import blocks
from multinic.ipam.doc_cache import DocumentCache
from multinic.ipam.store import ABSENT, Store, Versioned, deadline_after
from tests.unit.ipam_cluster.conftest import Opener
from tests.unit.ipam_cluster.test_blocks import CountingStore, add, node_addresses, pool

P = pool("10.7.0.0/24")
HOME = blocks.homes([P], "a")


def owner(cid: str) -> blocks.Owner:
    return blocks.Owner("net", cid, "eth1")


def cached_add(store: Store, cache: DocumentCache, cid: str, p: blocks.Pool = P) -> str:
    request = blocks.Request(owner(cid), "a", (p,), (None,))
    (got,) = blocks.allocate(store, request, deadline_after(20), cache)
    return str(got.address)


def cached_del(store: Store, cache: DocumentCache, cid: str) -> list[str]:
    held = blocks.release(store, owner(cid), deadline_after(20), HOME, cache)
    return [str(r.address) for r in held]


def test_a_warm_add_and_del_commit_without_reading(store: Store) -> None:
    cache = DocumentCache()
    cached_add(store, cache, "first")  # the block claim reads; its commit fills the cache
    counted = CountingStore(store)
    assert cached_add(counted, cache, "second") == "10.7.0.2"
    assert counted.snapshots == [] and counted.commits == [HOME]
    assert cached_del(counted, cache, "second") == ["10.7.0.2"]
    assert counted.snapshots == [] and counted.commits == [HOME, HOME]
    # What the cache holds is what the store holds.
    assert cache.recall(HOME) == store.snapshot(HOME, deadline=deadline_after(5))


def test_a_copy_made_stale_by_another_writer_costs_one_read(store: Store, opener: Opener) -> None:
    cache = DocumentCache()
    cached_add(store, cache, "mine")
    add(opener(), P, "a", "elsewhere")  # the same node document, by a process without copies
    counted = CountingStore(store)
    assert cached_add(counted, cache, "next") == "10.7.0.3"
    # The commit from the copy lost; one read, one commit from it.
    assert counted.snapshots == [HOME] and counted.commits == [HOME, HOME]
    held = {ipaddress.ip_address(f"10.7.0.{n}") for n in (1, 2, 3)}
    assert node_addresses(store, P) == {"a": held}


def test_a_repeated_add_found_in_a_copy_is_confirmed_by_a_read(
    store: Store, opener: Opener
) -> None:
    cache = DocumentCache()
    assert cached_add(store, cache, "c1") == "10.7.0.1"
    counted = CountingStore(store)
    assert cached_add(counted, cache, "c1") == "10.7.0.1"
    assert counted.snapshots == [HOME] and counted.commits == []
    # Released elsewhere (multinic ipam release, GC): the copy still shows it held.
    blocks.release(opener(), owner("c1"), deadline_after(5), HOME)
    assert cached_add(store, cache, "c1") == "10.7.0.2"  # a new address, really reserved
    assert node_addresses(store, P) == {"a": {ipaddress.ip_address("10.7.0.2")}}


def test_a_del_that_finds_nothing_in_a_copy_reads_before_it_answers(
    store: Store, opener: Opener
) -> None:
    cache = DocumentCache()
    cached_add(store, cache, "first")
    # An ADD the daemon did not see (the executable, another daemon instance).
    add(opener(), P, "a", "unseen")
    counted = CountingStore(store)
    assert cached_del(counted, cache, "unseen") == ["10.7.0.2"]
    assert counted.snapshots == [HOME]
    assert node_addresses(store, P) == {"a": {ipaddress.ip_address("10.7.0.1")}}
    # Nothing held anywhere: the read says so, and nothing is written.
    counted.snapshots.clear()
    counted.commits.clear()
    assert cached_del(counted, cache, "never") == []
    assert counted.snapshots == [HOME] and counted.commits == []


def test_an_exhausted_pool_in_a_stale_copy_is_not_believed(store: Store, opener: Opener) -> None:
    tiny = pool("10.7.1.0/30", prefixlen=30)  # two usable addresses, one block
    home = blocks.homes([tiny], "a")
    cache = DocumentCache()
    first = cached_add(store, cache, "c1", tiny)
    cached_add(store, cache, "c2", tiny)
    blocks.release(opener(), owner("c1"), deadline_after(5), home)  # not through the cache
    assert cached_add(store, cache, "c3", tiny) == first


def test_the_cache_keeps_the_newest_copy_and_forgets_absent_documents() -> None:
    cache = DocumentCache(limit=2)
    cache.remember({"k": Versioned(5, b"new")})
    cache.remember({"k": Versioned(3, b"old")})  # a slower request's commit, finished later
    assert cache.recall(["k"]) == {"k": Versioned(5, b"new")}
    assert cache.recall(["k", "other"]) is None  # all or nothing
    cache.remember({"k": ABSENT})
    assert cache.recall(["k"]) is None
    cache.remember({"a": Versioned(1, b"1"), "b": Versioned(1, b"1"), "c": Versioned(1, b"1")})
    assert len(cache) == 2 and cache.recall(["a"]) is None  # the oldest went first
    cache.forget(["b"])
    assert cache.recall(["c"]) == {"c": Versioned(1, b"1")}
