"""The pure allocator: free intervals, addresses, prefixes, and a model it must agree with."""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from multinic.cni.config import Attachment
from multinic.ipam import allocator
from multinic.ipam.allocator import (
    AddressAllocator,
    AddressUnavailableError,
    CorruptStateError,
    FreeSpace,
    PoolExhaustedError,
    PrefixAllocator,
    subtract,
    subtract_points,
)
from multinic.ipam.ranges import make_range, make_range_set

A = ipaddress.ip_address
N = ipaddress.ip_network


@contextlib.contextmanager
def small_chunks(size: int = 2) -> Iterator[None]:
    """Tiny chunks so a few intervals already exercise splitting and merging chunks."""
    saved = allocator._CHUNK
    allocator._CHUNK = size
    try:
        yield
    finally:
        allocator._CHUNK = saved


def owner(n: int) -> Attachment:
    return Attachment(f"c{n}", "eth0")


# --- FreeSpace against a set ------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["take", "give", "next"]), st.integers(0, 40)), max_size=120)
)
def test_free_space_agrees_with_a_set(ops: list[tuple[str, int]]) -> None:
    with small_chunks():
        free = FreeSpace([(0, 40)])
        model = set(range(41))
        for op, x in ops:
            if op == "take":
                assert free.take(x) == (x in model)
                model.discard(x)
            elif op == "give":
                assert free.give(x) == (x not in model)
                model.add(x)
            else:
                after = [y for y in sorted(model) if y > x]
                expected = after[0] if after else (min(model) if model else None)
                assert free.next_free(x) == expected
            assert free.count == len(model)
            flat = [y for lo, hi in free.intervals() for y in range(lo, hi + 1)]
            assert flat == sorted(model)
            spans = list(free.intervals())
            # Disjoint and never adjacent: merged whenever they touch.
            assert all(a[1] + 1 < b[0] for a, b in itertools.pairwise(spans))
            assert all((y in free) == (y in model) for y in range(-1, 42))


def test_free_space_refuses_unsorted_intervals() -> None:
    with pytest.raises(ValueError, match="sorted"):
        FreeSpace([(5, 9), (1, 2)])
    with pytest.raises(ValueError, match="sorted"):
        FreeSpace([(1, 4), (5, 9)])  # adjacent: should have been one interval


def test_next_free_on_empty_space_is_none() -> None:
    free = FreeSpace()
    assert free.next_free(None) is None
    assert free.give(7) and free.next_free(None) == 7 and free.next_free(7) == 7


def test_subtract() -> None:
    assert subtract([(0, 10), (20, 30)], [(5, 5), (3, 4), (9, 21), (30, 40)]) == [
        (0, 2),
        (6, 8),
        (22, 29),
    ]
    assert subtract([(0, 10)], []) == [(0, 10)]
    assert subtract([(0, 10)], [(0, 10)]) == []


@given(
    st.lists(st.tuples(st.integers(0, 60), st.integers(0, 8)), max_size=6),
    st.sets(st.integers(-5, 80)),
)
def test_subtract_points_agrees_with_sets(raw: list[tuple[int, int]], points: set[int]) -> None:
    flat = sorted({x for lo, width in raw for x in range(lo, lo + width + 1)})
    spans = [(flat[0], flat[0])] if flat else []
    for x in flat[1:]:
        spans[-1:] = [(spans[-1][0], x)] if x == spans[-1][1] + 1 else [spans[-1], (x, x)]
    out = subtract_points(spans, sorted(points))
    assert [x for lo, hi in out for x in range(lo, hi + 1)] == [x for x in flat if x not in points]
    assert all(a[1] + 1 < b[0] for a, b in itertools.pairwise(out))


# --- addresses --------------------------------------------------------------------


def test_round_robin_after_last_reserved_skips_gateway_and_wraps() -> None:
    rs = make_range_set([make_range(N("10.0.0.0/29"))])  # .1 gateway, .2-.6 free
    alloc = AddressAllocator(rs, last_reserved=A("10.0.0.4"))
    got = [alloc.allocate(owner(n)).address for n in range(5)]
    assert got == [A("10.0.0.5"), A("10.0.0.6"), A("10.0.0.2"), A("10.0.0.3"), A("10.0.0.4")]
    assert alloc.last_reserved == A("10.0.0.4")
    with pytest.raises(PoolExhaustedError) as caught:
        alloc.allocate(owner(9))
    assert caught.value.code == allocator.CODE_EXHAUSTED
    alloc.release(A("10.0.0.3"))
    assert alloc.allocate(owner(9)).address == A("10.0.0.3")


def test_cursor_is_kept_when_it_became_reserved_and_dropped_when_outside() -> None:
    # The reference host-local ignores `exclude`: sharing a data dir with it, the last
    # reserved address may be an excluded one. Continue after it, as host-local would.
    rs = make_range_set([make_range(N("10.0.0.0/24"), exclude=[N("10.0.0.50/32")])])
    assert AddressAllocator(rs, last_reserved=A("10.0.0.50")).allocate(owner(1)).address == A(
        "10.0.0.51"
    )
    assert AddressAllocator(rs, last_reserved=A("10.9.0.50")).allocate(owner(1)).address == A(
        "10.0.0.2"
    )
    assert AddressAllocator(rs, last_reserved=A("fd00::1")).last_reserved is None


def test_ipv6_hands_out_the_last_address_too() -> None:
    rs = make_range_set([make_range(N("fd00::/126"))])  # ::1 gateway, ::2, ::3 free
    alloc = AddressAllocator(rs)
    assert [alloc.allocate(owner(n)).address for n in range(2)] == [A("fd00::2"), A("fd00::3")]
    assert alloc.size == 2


def test_allocation_values_carry_prefix_and_gateway() -> None:
    rs = make_range_set([make_range(N("10.0.0.0/24"), A("10.0.0.10"), A("10.0.0.20"))])
    got = AddressAllocator(rs).allocate(owner(1))
    assert str(got.interface) == "10.0.0.10/24"
    assert got.gateway == A("10.0.0.1")
    assert got.ip_config().address == ipaddress.ip_interface("10.0.0.10/24")


def test_requested_addresses_are_checked() -> None:
    rs = make_range_set(
        [make_range(N("10.0.0.0/24"), A("10.0.0.1"), A("10.0.0.100"), exclude=[N("10.0.0.50/31")])]
    )
    alloc = AddressAllocator(rs)
    assert alloc.allocate(owner(1), A("10.0.0.7")).address == A("10.0.0.7")
    assert alloc.last_reserved == A("10.0.0.7")  # as host-local: a requested one moves it too
    for bad, words in [
        (A("10.0.0.7"), "held by c1/eth0"),
        (A("10.0.0.1"), "is the gateway"),
        (A("10.0.0.51"), "is reserved"),
        (A("10.0.0.101"), "is not in range set"),
        (A("fd00::1"), "is not in range set"),
    ]:
        with pytest.raises(AddressUnavailableError) as caught:
            alloc.allocate(owner(2), bad)
        assert words in str(caught.value)
        assert caught.value.code == allocator.CODE_UNAVAILABLE
    assert alloc.lookup(owner(2)) == ()


def test_several_ranges_form_one_pool() -> None:
    rs = make_range_set(
        [
            make_range(N("10.0.0.0/24"), A("10.0.0.10"), A("10.0.0.11")),
            make_range(N("10.0.1.0/24"), A("10.0.1.10"), A("10.0.1.11")),
        ]
    )
    alloc = AddressAllocator(rs)
    got = [alloc.allocate(owner(n)) for n in range(4)]
    assert [g.address for g in got] == [
        A("10.0.0.10"),
        A("10.0.0.11"),
        A("10.0.1.10"),
        A("10.0.1.11"),
    ]
    assert got[2].gateway == A("10.0.1.1")


def test_rebuild_from_held_and_release_owner_and_gc() -> None:
    rs = make_range_set([make_range(N("10.0.0.0/24"))])
    held = [(A("10.0.0.2"), owner(1)), (A("10.0.0.3"), owner(2)), (A("10.0.0.9"), owner(2))]
    alloc = AddressAllocator(rs, held, last_reserved=A("10.0.0.9"))
    assert alloc.used_count == 3 and alloc.free_count == 253 - 3
    assert [a.address for a in alloc.lookup(owner(2))] == [A("10.0.0.3"), A("10.0.0.9")]
    assert alloc.owner_of(A("10.0.0.2")) == owner(1)
    assert not alloc.is_free(A("10.0.0.2")) and alloc.is_free(A("10.0.0.4"))
    assert alloc.allocate(owner(3)).address == A("10.0.0.10")
    released = alloc.gc({owner(3)})
    assert sorted(r.address for r in released) == [A("10.0.0.2"), A("10.0.0.3"), A("10.0.0.9")]
    assert alloc.owners() == {owner(3)}
    assert alloc.release_owner(owner(3))[0].address == A("10.0.0.10")
    assert alloc.release_owner(owner(3)) == ()  # DEL of an unknown attachment is fine
    assert alloc.release(A("10.0.0.10")) is None
    assert alloc.free_count == alloc.size


def test_held_outside_the_ranges_is_kept_until_released() -> None:
    # The config changed under a node: an address of the old range is still held.
    rs = make_range_set([make_range(N("10.0.0.0/24"))])
    alloc = AddressAllocator(rs, [(A("10.0.0.1"), owner(1)), (A("10.0.9.9"), owner(2))])
    assert alloc.free_count == alloc.size  # neither is allocatable: gateway, foreign
    stale = alloc.lookup(owner(2))[0]
    assert stale.range is None and str(stale.interface) == "10.0.9.9/32"
    assert alloc.release(A("10.0.0.1")) is not None
    assert not alloc.is_free(A("10.0.0.1"))  # the gateway never becomes free
    assert alloc.free_count == alloc.size


def test_inconsistent_held_state_is_refused() -> None:
    rs = make_range_set([make_range(N("10.0.0.0/24"))])
    with pytest.raises(CorruptStateError):
        AddressAllocator(rs, [(A("10.0.0.5"), owner(1)), (A("10.0.0.5"), owner(2))])
    with pytest.raises(CorruptStateError):
        AddressAllocator(rs, [(A("fd00::5"), owner(1))])


# --- prefixes ---------------------------------------------------------------------


def test_a_24_per_node_out_of_a_11() -> None:
    pool = PrefixAllocator.from_network(N("10.32.0.0/11"), 24, exclude=[N("10.32.1.128/25")])
    assert pool.size == 8192 - 1
    got = [pool.allocate(f"node{n}").prefix for n in range(3)]
    assert got == [N("10.32.0.0/24"), N("10.32.2.0/24"), N("10.32.3.0/24")]
    assert pool.lookup("node1") == (allocator.PrefixAllocation("node1", N("10.32.2.0/24")),)
    assert pool.allocate("node9", N("10.63.255.0/24")).prefix == N("10.63.255.0/24")
    with pytest.raises(AddressUnavailableError, match="outside the pool or excluded"):
        pool.allocate("node9", N("10.32.1.0/24"))
    with pytest.raises(AddressUnavailableError, match="held by node0"):
        pool.allocate("node9", N("10.32.0.0/24"))
    assert pool.release(N("10.32.0.0/24")) == allocator.PrefixAllocation("node0", N("10.32.0.0/24"))
    assert pool.is_free(N("10.32.0.0/24"))
    assert pool.release(N("10.32.0.0/25")) is None  # not a prefix of this pool's length


def test_blocks_of_a_range_lie_wholly_inside_it() -> None:
    r = make_range(N("10.0.0.0/24"), A("10.0.0.10"), A("10.0.0.200"))
    pool = PrefixAllocator.from_range(r, 26)
    assert [pool.allocate("n").prefix for _ in range(2)] == [N("10.0.0.64/26"), N("10.0.0.128/26")]
    with pytest.raises(PoolExhaustedError):
        pool.allocate("n")
    # Inside a block the address allocator still skips what the range reserves.
    block = r.restrict(A("10.0.0.0"), A("10.0.0.63"))
    inner = AddressAllocator(make_range_set([block]))
    assert inner.allocate(owner(1)).address == A("10.0.0.10")


def test_ipv6_prefixes_and_rebuild() -> None:
    held = [(N("fd00:0:0:5::/64"), "a")]
    pool = PrefixAllocator.from_network(
        N("fd00::/48"), 64, held=held, last_reserved=N("fd00:0:0:5::/64")
    )
    assert pool.allocate("b").prefix == N("fd00:0:0:6::/64")
    assert pool.last_reserved == N("fd00:0:0:6::/64")
    assert pool.free_count == 2**16 - 2
    with pytest.raises(CorruptStateError):
        PrefixAllocator.from_network(N("fd00::/48"), 64, held=[(N("fd00::/56"), "a")])
    # A cursor of another length or family is ignored, not an error.
    assert PrefixAllocator.from_network(N("fd00::/48"), 64, last_reserved=N("fd00::/56")).allocate(
        "a"
    ).prefix == N("fd00::/64")


# --- random interleavings against a model -----------------------------------------

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("alloc"), st.integers(0, 15)),
        st.tuples(st.just("request"), st.integers(0, 15), st.integers(0, 70)),
        st.tuples(st.just("release"), st.integers(0, 70)),
        st.tuples(st.just("del"), st.integers(0, 15)),
        st.tuples(st.just("gc"), st.frozensets(st.integers(0, 15))),
        st.tuples(st.just("rebuild")),
    ),
    max_size=80,
)


@settings(max_examples=400, deadline=None)
@given(OPS, st.booleans())
def test_interleavings_never_duplicate_leak_or_leave_the_range(ops: list[tuple], v6: bool) -> None:
    if v6:
        ranges = [
            make_range(N("fd00::/64"), A("fd00::10"), A("fd00::2f"), exclude=[N("fd00::14/126")]),
            make_range(N("fd00:1::/64"), A("fd00:1::3"), A("fd00:1::8"), gateway=A("fd00:1::5")),
        ]
    else:
        ranges = [
            make_range(N("10.0.0.0/27"), exclude=[N("10.0.0.8/30"), N("10.0.0.20/32")]),
            make_range(N("10.0.1.0/29"), gateway=A("10.0.1.6")),
        ]
    rs = make_range_set(ranges)
    # The model: every address the set may hand out, by brute force.
    candidates = [A(str(rs.ranges[0].subnet.network_address + k)) for k in range(64)]
    candidates += [A(str(rs.ranges[1].subnet.network_address + k)) for k in range(16)]
    allowed = sorted(
        a
        for a in candidates
        if a in rs
        and a != rs.range_for(a).gateway
        and not any(a in p for p in rs.range_for(a).exclude)
        and not (a.version == 4 and a in (rs.range_for(a).subnet[0], rs.range_for(a).subnet[-1]))
    )
    held: dict[ipaddress.IPv4Address | ipaddress.IPv6Address, Attachment] = {}
    with small_chunks(3):
        alloc = AddressAllocator(rs)
        for op in ops:
            if op[0] == "alloc":
                cursor = alloc.last_reserved
                free = [a for a in allowed if a not in held]
                if not free:
                    with pytest.raises(PoolExhaustedError):
                        alloc.allocate(owner(op[1]))
                    continue
                after = [a for a in free if cursor is not None and int(a) > int(cursor)]
                got = alloc.allocate(owner(op[1])).address
                assert got == (after or free)[0]  # round-robin, like host-local
                held[got] = owner(op[1])
            elif op[0] == "request":
                want = candidates[op[2] % len(candidates)]
                if want in allowed and want not in held:
                    assert alloc.allocate(owner(op[1]), want).address == want
                    held[want] = owner(op[1])
                else:
                    with pytest.raises(AddressUnavailableError):
                        alloc.allocate(owner(op[1]), want)
            elif op[0] == "release":
                addr = candidates[op[1] % len(candidates)]
                got_back = alloc.release(addr)
                assert (got_back is not None) == (addr in held)
                held.pop(addr, None)
            elif op[0] == "del":
                released = {a.address for a in alloc.release_owner(owner(op[1]))}
                assert released == {a for a, o in held.items() if o == owner(op[1])}
                held = {a: o for a, o in held.items() if o != owner(op[1])}
            elif op[0] == "gc":
                valid = {owner(n) for n in op[1]}
                released = {a.address for a in alloc.gc(valid)}
                assert released == {a for a, o in held.items() if o not in valid}
                held = {a: o for a, o in held.items() if o in valid}
            else:  # a store's snapshot -> a fresh allocator
                alloc = AddressAllocator(
                    rs, [(a.address, a.owner) for a in alloc.held()], alloc.last_reserved
                )
            assert {a.address: a.owner for a in alloc.held()} == held
            assert alloc.free_count == len(allowed) - len(held)
            assert alloc.size == len(allowed)
            assert all(a in allowed for a in held)
            assert all(alloc.is_free(a) == (a not in held) for a in allowed)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("alloc"), st.sampled_from("abcd")),
            st.tuples(st.just("request"), st.sampled_from("abcd"), st.integers(0, 40)),
            st.tuples(st.just("release"), st.integers(0, 40)),
            st.tuples(st.just("gc"), st.frozensets(st.sampled_from("abcd"))),
            st.tuples(st.just("rebuild")),
        ),
        max_size=60,
    )
)
def test_prefix_interleavings_agree_with_a_model(ops: list[tuple]) -> None:
    # /28 blocks of 10.0.0.40-10.0.2.200, minus every block 10.0.1.0/26 touches.
    first, last = A("10.0.0.40"), A("10.0.2.200")
    exclude = [N("10.0.1.0/26")]
    blocks = [N(f"10.0.{k // 16}.{(k % 16) * 16}/28") for k in range(48)]
    allowed = [
        b
        for b in blocks
        if b[0] >= first and b[-1] <= last and not any(b.overlaps(e) for e in exclude)
    ]
    held: dict[ipaddress.IPv4Network, str] = {}
    with small_chunks(2):
        pool = PrefixAllocator(first, last, 28, exclude)
        for op in ops:
            if op[0] == "alloc":
                free = [b for b in allowed if b not in held]
                if not free:
                    with pytest.raises(PoolExhaustedError):
                        pool.allocate(op[1])
                    continue
                got = pool.allocate(op[1]).prefix
                assert got in free
                held[got] = op[1]
            elif op[0] == "request":
                want = blocks[op[2] % len(blocks)]
                if want in allowed and want not in held:
                    assert pool.allocate(op[1], want).prefix == want
                    held[want] = op[1]
                else:
                    with pytest.raises(AddressUnavailableError):
                        pool.allocate(op[1], want)
            elif op[0] == "release":
                block = blocks[op[1] % len(blocks)]
                assert (pool.release(block) is not None) == (block in held)
                held.pop(block, None)
            elif op[0] == "gc":
                pool.gc(op[1])
                held = {b: o for b, o in held.items() if o in op[1]}
            else:
                pool = PrefixAllocator(
                    first,
                    last,
                    28,
                    exclude,
                    [(p.prefix, p.owner) for p in pool.held()],
                    pool.last_reserved,
                )
            assert {p.prefix: p.owner for p in pool.held()} == held
            assert pool.free_count == len(allowed) - len(held) and pool.size == len(allowed)
