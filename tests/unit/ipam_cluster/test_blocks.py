"""Per-node blocks over a real store (SQLite and etcd): affinity, borrowing, overlap, leaks."""

from __future__ import annotations

import ipaddress
import tempfile
import threading
from collections.abc import Iterable, Mapping, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from multinic.cni.config import Attachment
from multinic.ipam import blocks
from multinic.ipam.allocator import AddressUnavailableError, PoolExhaustedError
from multinic.ipam.ranges import IPAddress, parse_whereabouts_range
from multinic.ipam.sqlite_store import SQLiteStore
from multinic.ipam.store import Store, StoreError, Versioned, Written, deadline_after
from tests.unit.ipam_cluster.conftest import Opener


def pool(
    text: str,
    prefixlen: int = 26,
    namespace: str = blocks.DEFAULT_NAMESPACE,
    protect: bool = True,
    exclude: Sequence[str] | None = None,
) -> blocks.Pool:
    r = parse_whereabouts_range(text, exclude=exclude)
    return blocks.Pool(namespace, r, prefixlen, protect)


def add(
    store: Store,
    p: blocks.Pool,
    node: str,
    cid: str,
    network: str = "net",
    requested: IPAddress | None = None,
) -> blocks.Reservation:
    owner = blocks.Owner(network, cid, "eth1")
    (got,) = blocks.allocate(
        store, blocks.Request(owner, node, (p,), (requested,)), deadline_after(20)
    )
    return got


def ip(text: str) -> IPAddress:
    return ipaddress.ip_address(text)


def node_addresses(store: Store, p: blocks.Pool) -> dict[str, set[IPAddress]]:
    """Every address recorded in the pool's node documents, by node."""
    out: dict[str, set[IPAddress]] = {}
    prefix = blocks.node_prefix(p.id)
    for key, item in store.scan(prefix, deadline=deadline_after(10)).items():
        doc = blocks.decode(key, item) or {}
        out[key[len(prefix) :]] = {ip(a) for entry in doc["blocks"].values() for a in entry["ips"]}
    return out


def test_nodes_allocate_in_blocks_of_their_own(store: Store) -> None:
    p = pool("10.1.0.0/24")
    a = [add(store, p, "node-a", f"a{n}") for n in range(3)]
    b = [add(store, p, "node-b", f"b{n}") for n in range(3)]
    assert {r.block for r in a} == {ipaddress.ip_network("10.1.0.0/26")}
    assert {r.block for r in b} == {ipaddress.ip_network("10.1.0.64/26")}
    assert [r.address for r in a] == [ip("10.1.0.1"), ip("10.1.0.2"), ip("10.1.0.3")]
    assert {r.node for r in a} == {"node-a"} and {r.node for r in b} == {"node-b"}
    assert node_addresses(store, p) == {
        "node-a": {r.address for r in a},
        "node-b": {r.address for r in b},
    }


def test_a_repeated_add_gets_the_same_address(store: Store) -> None:
    p = pool("10.1.0.0/24")
    first = add(store, p, "node-a", "c1")
    add(store, p, "node-a", "c2")
    assert add(store, p, "node-a", "c1") == first
    # The attachment key includes the network: another network gets its own address.
    assert add(store, p, "node-a", "c1", network="other").address != first.address


def test_a_full_block_makes_the_node_claim_another(store: Store) -> None:
    p = pool("10.1.0.0/24", prefixlen=29)  # .0/29: .1-.7 usable (.0 is the network)
    got = [add(store, p, "n", f"c{n}") for n in range(9)]
    assert [str(r.block) for r in got] == ["10.1.0.0/29"] * 7 + ["10.1.0.8/29"] * 2
    assert len({r.address for r in got}) == 9
    # The pool's round-robin cursor is written with the claim.
    key = blocks.pool_key(p.id)
    pool_doc = blocks.decode(key, store.snapshot([key], deadline=deadline_after(5))[key])
    assert pool_doc is not None and pool_doc["last"] == "10.1.0.8/29"


def test_when_no_block_is_left_nodes_borrow_then_the_range_is_exhausted(store: Store) -> None:
    p = pool("10.2.0.0/28", prefixlen=29)  # two blocks, 14 usable addresses
    add(store, p, "a", "a0")
    add(store, p, "b", "b0")
    got = [add(store, p, "c", f"c{n}") for n in range(12)]  # node c never gets a block
    assert {r.node for r in got} <= {"a", "b"}
    held = node_addresses(store, p)
    everything = set().union(*held.values())
    assert len(everything) == 14
    assert everything == {ip(f"10.2.0.{n}") for n in range(1, 15)}
    assert not held.get("c")  # node c's document only points at what it borrowed
    with pytest.raises(PoolExhaustedError) as caught:
        add(store, p, "c", "one-too-many")
    assert caught.value.code == 100
    nothing = blocks.Owner("net", "one-too-many", "eth1")
    assert blocks.lookup(store, nothing, deadline_after(5)) == ()


def test_a_requested_address_is_honoured_in_whichever_block_holds_it(store: Store) -> None:
    p = pool("10.3.0.0/24")
    add(store, p, "a", "a0")  # node a has 10.3.0.0/26
    got = add(store, p, "b", "wants", requested=ip("10.3.0.9"))
    assert got.address == ip("10.3.0.9") and got.node == "a"
    # An unclaimed block is claimed for the requesting node.
    far = add(store, p, "b", "far", requested=ip("10.3.0.200"))
    assert far.node == "b" and str(far.block) == "10.3.0.192/26"
    with pytest.raises(AddressUnavailableError, match="not available"):
        add(store, p, "c", "again", requested=ip("10.3.0.9"))
    with pytest.raises(AddressUnavailableError, match="not in range"):
        add(store, p, "c", "outside", requested=ip("10.4.0.9"))
    # The next automatic allocation skips what was requested.
    assert all(add(store, p, "a", f"x{n}").address != ip("10.3.0.9") for n in range(10))


def test_overlapping_ranges_of_two_networks_never_share_an_address(store: Store) -> None:
    wide = pool("10.5.0.0/24")
    narrow = pool("10.5.0.0/25", namespace="other")
    first = add(store, wide, "a", "w0", network="wide")
    second = add(store, narrow, "a", "n0", network="narrow")
    assert first.address == ip("10.5.0.1")
    assert second.address == ip("10.5.0.2")  # .1 is live in the other network
    with pytest.raises(AddressUnavailableError, match="another network"):
        add(store, narrow, "a", "n1", network="narrow", requested=ip("10.5.0.1"))


def test_overlap_protection_holds_both_ways_and_for_later_blocks(store: Store) -> None:
    wide = pool("10.5.8.0/24", prefixlen=28)
    narrow = pool("10.5.8.0/25", prefixlen=27, namespace="other")
    w = [add(store, wide, "a", f"w{n}", network="wide").address for n in range(3)]
    n = [add(store, narrow, "b", f"n{k}", network="narrow").address for k in range(3)]
    # The narrow network's node claimed 10.5.8.0/27, which meets node a's 10.5.8.0/28.
    assert not set(w) & set(n)
    # Node a's next addresses skip what the other network holds, in that block and in
    # the blocks it claims later.
    more = [add(store, wide, "a", f"w{k}", network="wide").address for k in range(3, 30)]
    assert not (set(w) | set(more)) & set(n)
    with pytest.raises(AddressUnavailableError, match="another network"):
        add(store, wide, "c", "wants", network="wide", requested=n[0])
    # Released addresses become free for the other network again.
    blocks.release(store, blocks.Owner("narrow", "n0", "eth1"), deadline_after(5))
    assert add(store, wide, "c", "wants", network="wide", requested=n[0]).address == n[0]


def test_a_warm_add_and_a_del_read_one_document_and_commit_one(store: Store) -> None:
    p = pool("10.5.16.0/24")
    add(store, p, "a", "first")  # claims the node's block: pool, registry and node documents
    counted = CountingStore(store)
    add(counted, p, "a", "second")
    assert counted.snapshots == [["blocks/_/10.5.16.0-24/a"]]
    assert counted.commits == [["blocks/_/10.5.16.0-24/a"]]
    counted.snapshots.clear()
    counted.commits.clear()
    where = blocks.homes([p], "a")
    blocks.release(counted, blocks.Owner("net", "second", "eth1"), deadline_after(5), where)
    assert counted.snapshots == [where] and counted.commits == [where]


class CountingStore:
    """A real store, with the keys of every snapshot and commit written down."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.snapshots: list[list[str]] = []
        self.commits: list[list[str]] = []

    def snapshot(self, keys: Iterable[str], *, deadline: float) -> dict[str, Versioned]:
        keys = list(keys)
        self.snapshots.append(keys)
        return self.inner.snapshot(keys, deadline=deadline)

    def scan(self, prefix: str, *, deadline: float) -> dict[str, Versioned]:
        return self.inner.scan(prefix, deadline=deadline)

    def scan_range(self, start: str, end: str, *, deadline: float) -> dict[str, Versioned]:
        return self.inner.scan_range(start, end, deadline=deadline)

    def commit(
        self, expected: Mapping[str, int], changes: Mapping[str, bytes | None], *, deadline: float
    ) -> Written | None:
        self.commits.append(sorted(expected))
        return self.inner.commit(expected, changes, deadline=deadline)

    def close(self) -> None:
        self.inner.close()


def test_documents_of_the_old_layout_are_refused_untouched(store: Store) -> None:
    p = pool("10.5.24.0/24")
    old = blocks.node_key(p.id, "a")
    value = b'{"blocks":{"10.5.24.0/26":{"ips":{}}}}'
    assert store.commit({old: 0}, {old: value}, deadline=deadline_after(5))
    with pytest.raises(StoreError, match="layout 1"):
        add(store, p, "a", "c1")
    assert store.snapshot([old], deadline=deadline_after(5))[old].value == value


def test_overlap_is_allowed_when_the_config_says_so(store: Store) -> None:
    wide = pool("10.6.0.0/24", protect=False)
    narrow = pool("10.6.0.0/25", namespace="other", protect=False)
    assert add(store, wide, "a", "w0", network="wide").address == ip("10.6.0.1")
    assert add(store, narrow, "a", "n0", network="narrow").address == ip("10.6.0.1")


def test_release_frees_everything_and_unknown_release_is_fine(store: Store) -> None:
    p = pool("10.7.0.0/24")
    got = add(store, p, "a", "c1")
    owner = blocks.Owner("net", "c1", "eth1")
    assert blocks.release(store, owner, deadline_after(10)) == (got,)
    assert blocks.release(store, owner, deadline_after(10)) == ()
    assert blocks.lookup(store, owner, deadline_after(10)) == ()
    assert node_addresses(store, p) == {"a": set()}
    assert blocks.scan_attachments(store, deadline_after(5)) == {}


def test_gc_releases_all_but_the_valid_attachments(store: Store) -> None:
    p = pool("10.8.0.0/24")
    kept = add(store, p, "a", "keep")
    add(store, p, "a", "leak1")
    add(store, p, "b", "leak2")
    add(store, p, "b", "other-network", network="net2")
    released = blocks.gc(store, "net", [Attachment("keep", "eth1")], deadline_after(10))
    assert sorted(o.container_id for o in released) == ["leak1", "leak2"]
    assert blocks.attachments(store, "net", deadline_after(5)) == [
        blocks.Owner("net", "keep", "eth1")
    ]
    assert blocks.attachments(store, "net2", deadline_after(5)) != []  # another network's GC
    assert set().union(*node_addresses(store, p).values()) == {
        kept.address,
        add(store, p, "b", "other-network", network="net2").address,
    }


def test_wholly_excluded_blocks_are_never_claimed(store: Store) -> None:
    p = pool("10.9.0.0/24", exclude=["10.9.0.0/26"])
    got = add(store, p, "a", "c1")
    assert str(got.block) == "10.9.0.64/26" and got.address == ip("10.9.0.64")


def test_concurrent_adds_on_one_node_and_across_nodes_never_collide(opener: Opener) -> None:
    p = pool("10.10.0.0/24", prefixlen=28)
    results: list[blocks.Reservation] = []
    errors: list[BaseException] = []

    def worker(node: str, tag: str) -> None:
        try:
            store = opener()
            for n in range(8):
                results.append(add(store, p, node, f"{tag}-{n}"))
        except BaseException as exc:  # reported to the test thread below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(f"node{t % 2}", f"t{t}")) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    addresses = [r.address for r in results]
    assert len(addresses) == 32 and len(set(addresses)) == 32


# --- random interleavings against a model --------------------------------------------

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.just(""), st.integers(0, 40)),
        st.tuples(st.just("del"), st.just(""), st.integers(0, 40)),
        st.tuples(st.just("gc"), st.just(""), st.integers(0, 40)),
    ),
    max_size=60,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS)
def test_random_interleavings_match_a_model(ops: list[tuple[str, str, int]]) -> None:
    # /27 with /29 blocks, two exclusions: 3 nodes share 4 blocks and must borrow.
    p = pool("10.20.0.0/27", prefixlen=29, exclude=["10.20.0.5/32", "10.20.0.16/30"])
    usable = {ip(f"10.20.0.{n}") for n in range(1, 31)} - {ip("10.20.0.5")}
    usable -= {ip(f"10.20.0.{n}") for n in range(16, 20)}
    model: dict[str, IPAddress] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(f"{tmp}/ipam.db")
        try:
            for op, _, n in ops:
                cid = f"c{n}"
                if op == "add":
                    try:
                        # A container lives on one node: its repeated ADDs come from there.
                        got = add(store, p, f"n{n % 3}", cid)
                    except PoolExhaustedError:
                        assert cid not in model and len(model) == len(usable)
                        continue
                    assert model.setdefault(cid, got.address) == got.address
                elif op == "del":
                    blocks.release(store, blocks.Owner("net", cid, "eth1"), deadline_after(10))
                    model.pop(cid, None)
                else:
                    valid = [Attachment(c, "eth1") for c in model if int(c[1:]) % (n + 1) == 0]
                    blocks.gc(store, "net", valid, deadline_after(10))
                    model = {c: a for c, a in model.items() if int(c[1:]) % (n + 1) == 0}
                assert_state_matches(store, p, model, usable)
        finally:
            store.close()


def assert_state_matches(
    store: Store, p: blocks.Pool, model: dict[str, IPAddress], usable: set[IPAddress]
) -> None:
    held = {
        o.container_id: blocks.lookup(store, o, deadline_after(5))[0].address
        for o in blocks.attachments(store, "net", deadline_after(5))
    }
    assert held == model
    assert len(set(held.values())) == len(held)  # never one address twice
    assert set(held.values()) <= usable  # never outside the range or on an excluded one
    recorded = [a for addrs in node_addresses(store, p).values() for a in addrs]
    assert sorted(recorded) == sorted(held.values())  # no leak in the block documents
    # No pointer to a borrowed address outlives the reservation.
    found = blocks.scan_attachments(store, deadline_after(5))
    assert set(found) == {blocks.Owner("net", c, "eth1") for c in model}
