"""The one allocator: pure, no I/O, flat cost however full the pool is.

Free space is kept as sorted, disjoint, inclusive integer intervals, stored in
chunks of a few hundred (the idea of a B-tree's leaves, or of sortedcontainers):
finding the next free item after a cursor, taking a specific one, releasing one
and asking whether one is free are each two bisections and a list edit of at
most a chunk, so a /10 at 99 % full costs what an empty /24 does. Nothing ever
iterates over addresses.

Two front ends share that core:

* :class:`AddressAllocator` hands out single addresses from a
  :class:`~multinic.ipam.ranges.RangeSet`, round-robin after the last one
  handed out (host-local's ``last_reserved_ip``), never the gateway, an IPv4
  network or broadcast address, or an excluded prefix.
* :class:`PrefixAllocator` hands out aligned prefixes of one length (a /24 per
  node out of a /11, a /26 block out of a range): the items are block numbers,
  so the mechanism is the same.

State is rebuilt from what a store holds (``held`` pairs and the last
reserved item) in one sorted pass; the allocator then answers ``allocate``,
``release`` and ``gc`` and the store writes what changed. Idempotency per
attachment is the caller's: ``lookup(owner)`` first, ``allocate`` if empty.
"""

from __future__ import annotations

import ipaddress
from abc import ABC, abstractmethod
from bisect import bisect_left, bisect_right
from collections.abc import Collection, Hashable, Iterable, Iterator, Sequence

from multinic.cni.config import Attachment
from multinic.cni.errors import CNIError, ErrorCode
from multinic.cni.types import IPConfig
from multinic.ipam.ranges import IPAddress, IPInterface, IPNetwork, IPRange, RangeSet
from multinic.records import Generic, NamedTuple, TypeVar

#: Plugin-specific CNI error codes (the spec leaves 100 and up to plugins).
CODE_EXHAUSTED = 100
CODE_UNAVAILABLE = 101

#: Chunk size of the free-interval lists: a chunk is split at twice this.
_CHUNK = 256


class AllocationError(CNIError):
    """A request the allocator cannot satisfy."""

    default_code = CODE_UNAVAILABLE


class PoolExhaustedError(AllocationError):
    """Code 100: no free address (or prefix) is left in the pool."""

    default_code = CODE_EXHAUSTED


class AddressUnavailableError(AllocationError):
    """Code 101: a requested address is outside the pool, reserved or taken."""

    default_code = CODE_UNAVAILABLE


class CorruptStateError(CNIError):
    """Code 999: the held state given to the allocator is inconsistent (an item held twice)."""

    default_code = ErrorCode.INTERNAL


# --- free space ------------------------------------------------------------------


class FreeSpace:
    """Sorted disjoint inclusive integer intervals, chunked so edits stay small."""

    def __init__(self, intervals: Iterable[tuple[int, int]] = ()) -> None:
        starts: list[int] = []
        ends: list[int] = []
        self.count = 0
        for lo, hi in intervals:
            if lo > hi or (ends and lo <= ends[-1] + 1):
                raise ValueError(f"intervals must be sorted, disjoint and apart: {lo}-{hi}")
            starts.append(lo)
            ends.append(hi)
            self.count += hi - lo + 1
        self._starts = [starts[i : i + _CHUNK] for i in range(0, len(starts), _CHUNK)]
        self._ends = [ends[i : i + _CHUNK] for i in range(0, len(ends), _CHUNK)]
        self._maxes = [chunk[-1] for chunk in self._ends]

    def __contains__(self, x: int) -> bool:
        loc = self._locate(x)
        return loc is not None and self._starts[loc[0]][loc[1]] <= x

    def __len__(self) -> int:
        """The number of intervals (fragmentation), not of free items."""
        return sum(len(chunk) for chunk in self._starts)

    def intervals(self) -> Iterator[tuple[int, int]]:
        for starts, ends in zip(self._starts, self._ends, strict=True):
            yield from zip(starts, ends, strict=True)

    def next_free(self, after: int | None) -> int | None:
        """The first free item after ``after``, wrapping round; None when nothing is free."""
        if not self._maxes:
            return None
        if after is not None:
            loc = self._locate(after + 1)
            if loc is not None:
                return max(self._starts[loc[0]][loc[1]], after + 1)
        return self._starts[0][0]

    def take(self, x: int) -> bool:
        """Mark ``x`` used; False when it was not free."""
        loc = self._locate(x)
        if loc is None:
            return False
        ci, j = loc
        start, end = self._starts[ci][j], self._ends[ci][j]
        if start > x:
            return False
        if start == end:
            self._delete(ci, j)
        elif x == start:
            self._starts[ci][j] = x + 1
        elif x == end:
            self._ends[ci][j] = x - 1
            self._maxes[ci] = self._ends[ci][-1]
        else:
            self._ends[ci][j] = x - 1
            self._insert(ci, j + 1, x + 1, end)
        self.count -= 1
        return True

    def give(self, x: int) -> bool:
        """Mark ``x`` free, merging with its neighbours; False when it already was."""
        after = self._locate(x)
        if after is not None and self._starts[after[0]][after[1]] <= x:
            return False
        before = self._previous(after)
        joins_before = before is not None and self._ends[before[0]][before[1]] == x - 1
        joins_after = after is not None and self._starts[after[0]][after[1]] == x + 1
        if before is not None and joins_before:
            ci, j = before
            if after is not None and joins_after:
                self._ends[ci][j] = self._ends[after[0]][after[1]]
                self._delete(*after)  # after comes later, so `before` stays valid
            else:
                self._ends[ci][j] = x
            self._maxes[ci] = self._ends[ci][-1]
        elif after is not None and joins_after:
            self._starts[after[0]][after[1]] = x
        elif after is not None:
            self._insert(after[0], after[1], x, x)
        elif self._starts:
            self._insert(len(self._starts) - 1, len(self._starts[-1]), x, x)
        else:
            self._starts, self._ends, self._maxes = [[x]], [[x]], [x]
        self.count += 1
        return True

    def _locate(self, x: int) -> tuple[int, int] | None:
        """(chunk, index) of the first interval ending at or after ``x``."""
        ci = bisect_left(self._maxes, x)
        if ci == len(self._maxes):
            return None
        return ci, bisect_left(self._ends[ci], x)

    def _previous(self, loc: tuple[int, int] | None) -> tuple[int, int] | None:
        if loc is None:
            return (len(self._starts) - 1, len(self._starts[-1]) - 1) if self._starts else None
        ci, j = loc
        if j > 0:
            return ci, j - 1
        return (ci - 1, len(self._starts[ci - 1]) - 1) if ci > 0 else None

    def _insert(self, ci: int, j: int, start: int, end: int) -> None:
        self._starts[ci].insert(j, start)
        self._ends[ci].insert(j, end)
        self._maxes[ci] = self._ends[ci][-1]
        if len(self._starts[ci]) > 2 * _CHUNK:
            starts, ends = self._starts[ci], self._ends[ci]
            self._starts[ci : ci + 1] = [starts[:_CHUNK], starts[_CHUNK:]]
            self._ends[ci : ci + 1] = [ends[:_CHUNK], ends[_CHUNK:]]
            self._maxes[ci : ci + 1] = [ends[_CHUNK - 1], ends[-1]]

    def _delete(self, ci: int, j: int) -> None:
        del self._starts[ci][j]
        del self._ends[ci][j]
        if self._starts[ci]:
            self._maxes[ci] = self._ends[ci][-1]
        else:
            del self._starts[ci], self._ends[ci], self._maxes[ci]


def subtract(
    spans: Iterable[tuple[int, int]], cuts: Iterable[tuple[int, int]]
) -> list[tuple[int, int]]:
    """Sorted disjoint ``spans`` minus ``cuts`` (any order, may overlap), in one sweep."""
    merged: list[list[int]] = []
    for lo, hi in sorted(cuts):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    out: list[tuple[int, int]] = []
    k = 0
    for lo, hi in spans:
        while k < len(merged) and merged[k][1] < lo:
            k += 1
        cur = lo
        i = k
        while i < len(merged) and merged[i][0] <= hi:
            if merged[i][0] > cur:
                out.append((cur, merged[i][0] - 1))
            cur = max(cur, merged[i][1] + 1)
            i += 1
        if cur <= hi:
            out.append((cur, hi))
    return out


def subtract_points(spans: list[tuple[int, int]], points: list[int]) -> list[tuple[int, int]]:
    """Sorted disjoint ``spans`` minus sorted ``points`` (which may lie outside them)."""
    out: list[tuple[int, int]] = []
    k, count = 0, len(points)
    for lo, hi in spans:
        k = bisect_left(points, lo, k)
        cur = lo
        while k < count and points[k] <= hi:
            if points[k] > cur:
                out.append((cur, points[k] - 1))
            cur = points[k] + 1
            k += 1
        if cur <= hi:
            out.append((cur, hi))
    return out


# --- the core pool ---------------------------------------------------------------

K = TypeVar("K", bound=Hashable)


class _Pool(Generic[K]):
    """Integer items: which are allocatable, which are free, who holds the rest."""

    def __init__(
        self, allocatable: list[tuple[int, int]], held: Iterable[tuple[int, K]], cursor: int | None
    ) -> None:
        self._lows = [lo for lo, _ in allocatable]
        self._highs = [hi for _, hi in allocatable]
        self.size = sum(hi - lo + 1 for lo, hi in allocatable)
        self.owners: dict[int, K] = {}
        # Per owner an insertion-ordered dict used as a set: O(1) release, oldest first.
        self.by_owner: dict[K, dict[int, None]] = {}
        for item, owner in held:
            if item in self.owners:
                raise CorruptStateError(
                    "inconsistent IPAM state",
                    f"item {item} held by {self.owners[item]} and {owner}",
                )
            self._record(item, owner)
        self.free = FreeSpace(subtract_points(allocatable, sorted(self.owners)))
        self.cursor = cursor

    def allocatable(self, item: int) -> bool:
        i = bisect_right(self._lows, item) - 1
        return i >= 0 and item <= self._highs[i]

    def take_next(self, owner: K) -> int | None:
        item = self.free.next_free(self.cursor)
        if item is None:
            return None
        self.free.take(item)
        self._record(item, owner)
        self.cursor = item
        return item

    def take(self, item: int, owner: K) -> None:
        """Take a specific item; the caller has checked :meth:`allocatable` and the holder."""
        if not self.free.take(item):
            raise CorruptStateError("inconsistent IPAM state", f"item {item} neither free nor held")
        self._record(item, owner)
        self.cursor = item

    def release(self, item: int) -> K | None:
        owner = self.owners.pop(item, None)
        if owner is None:
            return None
        items = self.by_owner[owner]
        del items[item]
        if not items:
            del self.by_owner[owner]
        if self.allocatable(item):
            self.free.give(item)
        return owner

    def _record(self, item: int, owner: K) -> None:
        self.owners[item] = owner
        self.by_owner.setdefault(owner, {})[item] = None


V = TypeVar("V")


class _Allocator(ABC, Generic[K, V]):
    """What both front ends share: owners, release, GC, counts."""

    _pool: _Pool[K]

    @abstractmethod
    def _value(self, item: int, owner: K) -> V:
        """The public value for a held item."""

    @property
    def size(self) -> int:
        """How many items the pool can hand out at all (reserved ones not counted)."""
        return self._pool.size

    @property
    def free_count(self) -> int:
        return self._pool.free.count

    @property
    def fragments(self) -> int:
        """How many disjoint free intervals there are (1 for a pool filled in order)."""
        return len(self._pool.free)

    @property
    def used_count(self) -> int:
        """Items held, including any held outside the pool (left over from an old config)."""
        return len(self._pool.owners)

    def lookup(self, owner: K) -> tuple[V, ...]:
        """What ``owner`` holds, oldest first (empty when nothing)."""
        return tuple(self._value(i, owner) for i in self._pool.by_owner.get(owner, ()))

    def owners(self) -> frozenset[K]:
        return frozenset(self._pool.by_owner)

    def held(self) -> Iterator[V]:
        """Everything held, in item order."""
        for item in sorted(self._pool.owners):
            yield self._value(item, self._pool.owners[item])

    def release_owner(self, owner: K) -> tuple[V, ...]:
        """Release all ``owner`` holds (nothing is not an error: DEL of an unknown attachment)."""
        released = self.lookup(owner)
        for item in list(self._pool.by_owner.get(owner, ())):
            self._pool.release(item)
        return released

    def gc(self, valid: Collection[K]) -> tuple[V, ...]:
        """Release everything whose owner is not in ``valid``; returns what was released."""
        keep = valid if isinstance(valid, set | frozenset | dict) else set(valid)
        released: list[V] = []
        for owner in [o for o in self._pool.by_owner if o not in keep]:
            released.extend(self.release_owner(owner))
        return tuple(released)

    def _release_item(self, item: int) -> V | None:
        owner = self._pool.owners.get(item)
        if owner is None:
            return None
        value = self._value(item, owner)
        self._pool.release(item)
        return value


# --- addresses -------------------------------------------------------------------


class Allocation(NamedTuple):
    """One address held by one attachment; ``range`` is None for an address that no
    longer lies in the configured ranges (held from an older config)."""

    owner: Attachment
    address: IPAddress
    range: IPRange | None

    @property
    def interface(self) -> IPInterface:
        prefixlen = self.range.subnet.prefixlen if self.range else self.address.max_prefixlen
        return ipaddress.ip_interface((self.address, prefixlen))

    @property
    def gateway(self) -> IPAddress | None:
        return self.range.gateway if self.range else None

    def ip_config(self) -> IPConfig:
        """The result's ``ips`` entry (no interface index: IPAM plugins leave it out)."""
        return IPConfig(self.interface, self.gateway)


class AddressAllocator(_Allocator[Attachment, Allocation]):
    """Single addresses out of one range set, round-robin after the last reserved."""

    def __init__(
        self,
        range_set: RangeSet,
        held: Iterable[tuple[IPAddress, Attachment]] = (),
        last_reserved: IPAddress | None = None,
    ) -> None:
        self.range_set = range_set
        self._version = range_set.version
        spans = sorted((int(r.range_start), int(r.range_end)) for r in range_set.ranges)
        cuts = [span for r in range_set.ranges for span in r.reserved()]
        # As host-local: continue after the last reserved address if the set still
        # contains it (even if it is now reserved), else start from the beginning.
        cursor = None
        if last_reserved is not None and last_reserved in range_set:
            cursor = int(last_reserved)
        self._pool = _Pool(subtract(spans, cuts), ((self._item(a), o) for a, o in held), cursor)

    @property
    def last_reserved(self) -> IPAddress | None:
        """What host-local writes to ``last_reserved_ip.<n>``."""
        cursor = self._pool.cursor
        return None if cursor is None else self._address(cursor)

    def allocate(self, owner: Attachment, requested: IPAddress | None = None) -> Allocation:
        """The next free address after the last reserved, or ``requested`` if it is free."""
        if requested is not None:
            item = self._check_requested(requested)
            self._pool.take(item, owner)
            return self._value(item, owner)
        got = self._pool.take_next(owner)
        if got is None:
            raise PoolExhaustedError("no IP addresses available in range set", str(self.range_set))
        return self._value(got, owner)

    def release(self, address: IPAddress) -> Allocation | None:
        """Free ``address``; None when it was not held."""
        if address.version != self._version:
            return None
        return self._release_item(int(address))

    def owner_of(self, address: IPAddress) -> Attachment | None:
        if address.version != self._version:
            return None
        return self._pool.owners.get(int(address))

    def is_free(self, address: IPAddress) -> bool:
        return address.version == self._version and int(address) in self._pool.free

    def _check_requested(self, requested: IPAddress) -> int:
        where = self.range_set.range_for(requested)
        if where is None:
            raise AddressUnavailableError(
                f"requested IP address {requested} is not in range set {self.range_set}"
            )
        item = int(requested)
        holder = self._pool.owners.get(item)
        if holder is not None:
            raise AddressUnavailableError(
                f"requested IP address {requested} is not available",
                f"held by {holder.container_id}/{holder.ifname}",
            )
        if requested == where.gateway:
            raise AddressUnavailableError(f"requested IP address {requested} is the gateway")
        if not self._pool.allocatable(item):
            raise AddressUnavailableError(
                f"requested IP address {requested} is reserved",
                "network, broadcast or excluded address",
            )
        return item

    def _item(self, address: IPAddress) -> int:
        if address.version != self._version:
            raise CorruptStateError(
                "inconsistent IPAM state", f"{address} held in an IPv{self._version} range set"
            )
        return int(address)

    def _address(self, item: int) -> IPAddress:
        if self._version == 4:
            return ipaddress.IPv4Address(item)
        return ipaddress.IPv6Address(item)

    def _value(self, item: int, owner: Attachment) -> Allocation:
        address = self._address(item)
        return Allocation(owner, address, self.range_set.range_for(address))


# --- prefixes --------------------------------------------------------------------


class PrefixAllocation(NamedTuple):
    """One aligned prefix held by one owner (a node name, say)."""

    owner: str
    prefix: IPNetwork


class PrefixAllocator(_Allocator[str, PrefixAllocation]):
    """Aligned prefixes of one length between two addresses; items are block numbers."""

    def __init__(
        self,
        first: IPAddress,
        last: IPAddress,
        prefixlen: int,
        exclude: Sequence[IPNetwork] = (),
        held: Iterable[tuple[IPNetwork, str]] = (),
        last_reserved: IPNetwork | None = None,
    ) -> None:
        if first.version != last.version or not 0 <= prefixlen <= first.max_prefixlen:
            raise ValueError(f"bad prefix pool {first}-{last} /{prefixlen}")
        self.prefixlen = prefixlen
        self._version = first.version
        self._shift = first.max_prefixlen - prefixlen
        block = 1 << self._shift
        # Only blocks lying wholly between first and last; an excluded prefix takes
        # every block it touches.
        lo, hi = -(-int(first) // block), (int(last) + 1) // block - 1
        cuts = [
            (int(p.network_address) >> self._shift, int(p.broadcast_address) >> self._shift)
            for p in exclude
        ]
        cursor = None
        if last_reserved is not None and (last_reserved.version, last_reserved.prefixlen) == (
            self._version,
            prefixlen,
        ):
            cursor = int(last_reserved.network_address) >> self._shift
        spans = [(lo, hi)] if lo <= hi else []
        self._pool = _Pool(subtract(spans, cuts), ((self._block(p), o) for p, o in held), cursor)

    @classmethod
    def from_network(
        cls,
        network: IPNetwork,
        prefixlen: int,
        exclude: Sequence[IPNetwork] = (),
        held: Iterable[tuple[IPNetwork, str]] = (),
        last_reserved: IPNetwork | None = None,
    ) -> PrefixAllocator:
        """Every /prefixlen of ``network`` (e.g. a /24 per node out of a /11)."""
        return cls(
            network.network_address,
            network.broadcast_address,
            prefixlen,
            exclude,
            held,
            last_reserved,
        )

    @classmethod
    def from_range(
        cls,
        ip_range: IPRange,
        prefixlen: int,
        held: Iterable[tuple[IPNetwork, str]] = (),
        last_reserved: IPNetwork | None = None,
    ) -> PrefixAllocator:
        """Blocks inside a range's start..end, minus its excluded prefixes. The gateway
        and network/broadcast stay inside their blocks: an :class:`AddressAllocator`
        over ``ip_range.restrict(block[0], block[-1])`` skips them."""
        return cls(
            ip_range.range_start,
            ip_range.range_end,
            prefixlen,
            ip_range.exclude,
            held,
            last_reserved,
        )

    @property
    def last_reserved(self) -> IPNetwork | None:
        cursor = self._pool.cursor
        return None if cursor is None else self._prefix(cursor)

    def allocate(self, owner: str, requested: IPNetwork | None = None) -> PrefixAllocation:
        """The next free block after the last one handed out, or ``requested``."""
        if requested is None:
            got = self._pool.take_next(owner)
            if got is None:
                raise PoolExhaustedError(f"no free /{self.prefixlen} left in the pool")
            return self._value(got, owner)
        item = self._block(requested)
        holder = self._pool.owners.get(item)
        if holder is not None:
            raise AddressUnavailableError(
                f"requested prefix {requested} is not available", f"held by {holder}"
            )
        if not self._pool.allocatable(item):
            raise AddressUnavailableError(
                f"requested prefix {requested} is outside the pool or excluded"
            )
        self._pool.take(item, owner)
        return self._value(item, owner)

    def release(self, prefix: IPNetwork) -> PrefixAllocation | None:
        if prefix.version != self._version or prefix.prefixlen != self.prefixlen:
            return None
        return self._release_item(self._block(prefix))

    def owner_of(self, prefix: IPNetwork) -> str | None:
        if prefix.version != self._version or prefix.prefixlen != self.prefixlen:
            return None
        return self._pool.owners.get(self._block(prefix))

    def is_free(self, prefix: IPNetwork) -> bool:
        if prefix.version != self._version or prefix.prefixlen != self.prefixlen:
            return False
        return self._block(prefix) in self._pool.free

    def _block(self, prefix: IPNetwork) -> int:
        if prefix.version != self._version or prefix.prefixlen != self.prefixlen:
            raise CorruptStateError(
                "inconsistent IPAM state",
                f"{prefix} in a pool of IPv{self._version} /{self.prefixlen} prefixes",
            )
        return int(prefix.network_address) >> self._shift

    def _prefix(self, item: int) -> IPNetwork:
        if self._version == 4:
            return ipaddress.IPv4Network((item << self._shift, self.prefixlen))
        return ipaddress.IPv6Network((item << self._shift, self.prefixlen))

    def _value(self, item: int, owner: str) -> PrefixAllocation:
        return PrefixAllocation(owner, self._prefix(item))
