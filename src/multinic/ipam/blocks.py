"""Cluster-wide allocation in per-node blocks with affinity (Calico's idea) over a Store.

Whereabouts keeps a whole range in one object, so every node of a cluster
fights over that one key and allocations take minutes at scale. Here a range
(a *pool*) is carved into small aligned blocks (a /26 or /122 by default):

* ``pools/<pool>`` maps each claimed block to the node it has affinity to, and
  lists the pools whose ranges overlap this one. A node writes it only to claim
  a block, once per block-size allocations.
* ``blocks/<pool>/<node>`` holds the addresses allocated in that node's blocks
  and who holds each (network, containerID, ifname, and the pod when known):
  the reservations themselves, as Calico's IPAMBlock carries its handles. Only
  that node writes it, unless the range has no unclaimed block left: then a node
  borrows a free address from another node's block, and its own document points
  at the one holding the address (``away``).
* ``registry/pools`` names every pool and its subnet, so a pool created later
  finds the pools its range overlaps.

So a normal ADD (a free address in this node's blocks) reads one document and
commits one document, and so does a DEL. More documents change together only
when a node claims a block, borrows, or allocates in a block that intersects a
block of another pool whose range overlaps (overlap protection: such a block is
marked ``shared`` with the other pool's node documents, which the allocation
then reads and guards, so two networks never hold one address). Every commit is
one store transaction guarded by the revisions it read, so it is whole or
absent: a process killed at any point leaves no half reservation. The
allocation inside a block, and the choice of a block, are the pure allocator's.

Documents carry their layout (``"v": 2``). Layout 1 (a reservation document per
attachment and a claim per address) is refused with StoreError (code 5).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Iterable, Sequence
from functools import partial

from multinic.cni.config import Attachment
from multinic.ipam.allocator import (
    AddressAllocator,
    AddressUnavailableError,
    AllocationError,
    PoolExhaustedError,
    PrefixAllocator,
)
from multinic.ipam.doc_cache import DocumentCache
from multinic.ipam.ranges import IPAddress, IPNetwork, IPRange, RangeSet, make_range
from multinic.ipam.store import Conflict, Store, StoreError, Versioned, retry_cas
from multinic.records import TYPE_CHECKING, NamedTuple, TypeVar

if TYPE_CHECKING:
    from typing import Any, TypeAlias

    #: A decoded store document (annotations only, so typing is not needed at run time).
    Doc: TypeAlias = dict[str, Any]

_R = TypeVar("_R")

#: Default block sizes: 64 addresses per node per claim.
DEFAULT_BLOCK_PREFIX = {4: 26, 6: 122}

#: The pool namespace when the config names no ``network_name``.
DEFAULT_NAMESPACE = "_"

#: The document layout this code reads and writes (``"v"`` in pool and node documents).
LAYOUT = 2

#: Every pool and its subnet: how a new pool finds the pools its range overlaps.
REGISTRY_KEY = "registry/pools"


class Pool(NamedTuple):
    """One range of a network's IPAM config, as the cluster allocator sees it."""

    namespace: str
    range: IPRange
    block_prefixlen: int
    protect_overlap: bool = True

    @property
    def id(self) -> str:
        subnet = self.range.subnet
        return f"{self.namespace}/{subnet.network_address}-{subnet.prefixlen}"


class Owner(NamedTuple):
    """Who holds a reservation: an attachment of a network."""

    network: str
    container_id: str
    ifname: str

    def encode(self) -> list[str]:
        return [self.network, self.container_id, self.ifname]

    @property
    def text(self) -> str:
        return "/".join(self.encode())


class Reservation(NamedTuple):
    """One address an attachment holds, and where it is recorded."""

    address: IPAddress
    pool: str
    node: str
    block: IPNetwork


# --- keys ------------------------------------------------------------------------


def pool_key(pool_id: str) -> str:
    return f"pools/{pool_id}"


def node_key(pool_id: str, node: str) -> str:
    return f"blocks/{pool_id}/{node}"


def node_prefix(pool_id: str) -> str:
    return f"blocks/{pool_id}/"


def split_node_key(key: str) -> tuple[str, str]:
    """(pool id, node) of a node document's key."""
    _, namespace, subnet, node = key.split("/", 3)
    return f"{namespace}/{subnet}", node


# --- documents -------------------------------------------------------------------


def encode(doc: Doc) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def decode(key: str, item: Versioned) -> Doc | None:
    if item.value is None:
        return None
    try:
        doc = json.loads(item.value)
    except ValueError as exc:
        raise StoreError(f"corrupt IPAM document {key!r}: {exc}") from exc
    if not isinstance(doc, dict):
        raise StoreError(f"corrupt IPAM document {key!r}: not an object")
    if key.startswith(("pools/", "blocks/")) and doc.get("v") != LAYOUT:
        raise StoreError(
            f"IPAM document {key!r} has layout {doc.get('v', 1)}; this multinic-ipam reads "
            f"layout {LAYOUT} only: release the attachments with the version that wrote it, "
            "or remove the store's documents (docs/ipam-cluster.md, 'Layout')"
        )
    return doc


def new_pool_doc(pool: Pool) -> Doc:
    r = pool.range
    return {
        "v": LAYOUT,
        "subnet": str(r.subnet),
        "start": str(r.range_start),
        "end": str(r.range_end),
        "gateway": None if r.gateway is None else str(r.gateway),
        "exclude": [str(p) for p in r.exclude],
        "prefixlen": pool.block_prefixlen,
        "blocks": {},
        "overlaps": [],
    }


def new_node_doc() -> Doc:
    return {"v": LAYOUT, "blocks": {}}


def pool_range(doc: Doc) -> IPRange:
    """The range a pool document was created for (what the CLI measures against)."""
    gateway = doc.get("gateway")
    return make_range(
        ipaddress.ip_network(doc["subnet"]),
        ipaddress.ip_address(doc["start"]),
        ipaddress.ip_address(doc["end"]),
        None if gateway is None else ipaddress.ip_address(gateway),
        [ipaddress.ip_network(p) for p in doc.get("exclude", [])],
        default_gateway=False,
    )


def held_in(key: str, doc: Doc, owner: Owner) -> list[Reservation]:
    """What ``owner`` holds in the node document ``doc`` stored at ``key``."""
    pool_id, node = split_node_key(key)
    code = owner.encode()
    return [
        Reservation(ipaddress.ip_address(a), pool_id, node, ipaddress.ip_network(b))
        for b, entry in doc["blocks"].items()
        for a, holder in entry["ips"].items()
        if holder == code
    ]


# --- one transaction's worth of reads and writes --------------------------------


class Plan:
    """What one attempt read, and what it will write if nothing it read has moved."""

    def __init__(self, store: Store, deadline: float, read: dict[str, Versioned]) -> None:
        self.store = store
        self.deadline = deadline
        self.read = read
        self.docs: dict[str, Doc | None] = {}
        self.expected: dict[str, int] = {}
        #: keys to write, with their documents as they are at commit time
        self.written: dict[str, None] = {}

    def get(self, key: str) -> Doc | None:
        """The document at ``key`` as this attempt sees it (read on first use)."""
        if key not in self.docs:
            if key not in self.read:
                self.read.update(self.store.snapshot([key], deadline=self.deadline))
            self.docs[key] = decode(key, self.read[key])
        return self.docs[key]

    def node_doc(self, key: str) -> Doc:
        """The node document at ``key``; a new empty one when absent (written only if put)."""
        doc = self.get(key)
        return new_node_doc() if doc is None else doc

    def scan(self, prefix: str) -> list[str]:
        """Keys under ``prefix``, now readable with :meth:`get`."""
        found = self.store.scan(prefix, deadline=self.deadline)
        for key, item in found.items():
            if key not in self.read:
                self.read[key] = item
        return sorted(found)

    def guard(self, key: str) -> None:
        """Commit only if ``key`` is still as read, even if unchanged: the decision used it."""
        if key not in self.expected:
            self.expected[key] = self.read[key].revision if key in self.read else 0

    def put(self, key: str, doc: Doc | None) -> None:
        """Write ``doc`` (None deletes) if ``key`` is still as read (absent if unread)."""
        self.docs[key] = doc
        self.expected[key] = self.read[key].revision if key in self.read else 0
        self.written[key] = None

    def commit(self) -> dict[str, Versioned] | None:
        """Write every put document as it is now (later edits of a put document count):
        each as written, with its new revision when the store told it; None when a
        document read has moved."""
        if not self.written:
            return {}
        changes = {}
        for key in self.written:
            doc = self.docs[key]
            changes[key] = None if doc is None else encode(doc)
        revisions = self.store.commit(self.expected, changes, deadline=self.deadline)
        if revisions is None:
            return None
        return {key: Versioned(revisions[key], changes[key]) for key in changes if key in revisions}


# --- allocation inside one block ------------------------------------------------


def _block_range(pool: Pool, block: IPNetwork, skip: Iterable[IPAddress]) -> IPRange | None:
    try:
        r = pool.range.restrict(block[0], block[-1])
    except ValueError:
        return None  # a block claimed under an older config that no longer meets the range
    extra = tuple(ipaddress.ip_network(a) for a in skip if a in block)
    return r._replace(exclude=r.exclude + extra) if extra else r


def foreign_addresses(plan: Plan, pool: Pool, block: IPNetwork, entry: Doc) -> set[IPAddress]:
    """Addresses of ``block`` held by overlapping pools (read and guarded), when protected."""
    if not pool.protect_overlap:
        return set()
    out: set[IPAddress] = set()
    for key in entry.get("shared", []):
        doc = plan.get(key)
        plan.guard(key)  # their next allocation in this range must see ours, and ours theirs
        for block_text, other in ({} if doc is None else doc["blocks"]).items():
            if not ipaddress.ip_network(block_text).overlaps(block):
                continue
            out.update(a for a in map(ipaddress.ip_address, other["ips"]) if a in block)
    return out


def allocate_in_block(
    plan: Plan,
    pool: Pool,
    block_text: str,
    node_doc: Doc,
    owner: Owner,
    requested: IPAddress | None,
) -> IPAddress | None:
    """Take an address of ``block_text`` in ``node_doc`` (edited in place); None when full."""
    block = ipaddress.ip_network(block_text)
    entry = node_doc["blocks"].setdefault(block_text, {"ips": {}})
    r = _block_range(pool, block, foreign_addresses(plan, pool, block, entry))
    if r is None:
        return None
    if requested is None and len(entry["ips"]) >= _room(r):
        return None  # full: no need to parse what it holds
    held = [(ipaddress.ip_address(a), Attachment(v[1], v[2])) for a, v in entry["ips"].items()]
    last = entry.get("last")
    allocator = AddressAllocator(
        RangeSet((r,)), held, None if last is None else ipaddress.ip_address(last)
    )
    try:
        got = allocator.allocate(Attachment(owner.container_id, owner.ifname), requested)
    except PoolExhaustedError:
        return None
    entry["ips"][str(got.address)] = owner.encode()
    entry["last"] = str(got.address)
    return got.address


def _room(r: IPRange) -> int:
    """At most how many addresses ``r`` can hand out (excluded prefixes not counted)."""
    lo, hi = int(r.range_start), int(r.range_end)
    reserved = {span[0] for span in r.reserved() if span[0] == span[1]}
    return hi - lo + 1 - sum(1 for x in reserved if lo <= x <= hi)


def block_allocator(pool: Pool, pool_doc: Doc) -> PrefixAllocator:
    """The pool's blocks: aligned /prefixlen covering range start..end, claimed ones held."""
    prefixlen = int(pool_doc["prefixlen"])
    r = pool.range
    first = ipaddress.ip_network((r.range_start, prefixlen), strict=False)
    last = ipaddress.ip_network((r.range_end, prefixlen), strict=False)
    # Excluded prefixes of a block or larger remove whole blocks; smaller ones are
    # skipped inside the block by the address allocator.
    whole = [p for p in r.exclude if p.prefixlen <= prefixlen]
    held = [(ipaddress.ip_network(b), n) for b, n in pool_doc["blocks"].items()]
    held = [(b, n) for b, n in held if b.version == r.version and b.prefixlen == prefixlen]
    cursor = pool_doc.get("last")
    return PrefixAllocator(
        first.network_address,
        last.broadcast_address,
        prefixlen,
        whole,
        held,
        None if cursor is None else ipaddress.ip_network(cursor),
    )


# --- pools, and blocks of pools whose ranges overlap ------------------------------


def _pool_doc(plan: Plan, pool: Pool) -> Doc:
    """The pool's document; a new one registers the pool and links the pools it overlaps."""
    pkey = pool_key(pool.id)
    doc = plan.get(pkey)
    if doc is not None:
        return doc
    doc = new_pool_doc(pool)
    registry = plan.get(REGISTRY_KEY) or {"v": LAYOUT, "pools": {}}
    subnet = pool.range.subnet
    for other_id, text in sorted(registry["pools"].items()):
        other_subnet = ipaddress.ip_network(text)
        if other_id == pool.id or other_subnet.version != subnet.version:
            continue
        other = plan.get(pool_key(other_id)) if other_subnet.overlaps(subnet) else None
        if other is None:
            continue
        if pool.id not in other["overlaps"]:
            other["overlaps"].append(pool.id)
            plan.put(pool_key(other_id), other)
        doc["overlaps"].append(other_id)
    registry["pools"][pool.id] = str(subnet)
    plan.put(REGISTRY_KEY, registry)
    return doc


def _intersecting(plan: Plan, pool_doc: Doc, block: IPNetwork) -> list[tuple[str, str]]:
    """(node document, block) of every block of an overlapping pool that meets ``block``.

    Their pool documents are guarded: a block they claim meanwhile makes this commit
    fail, so two pools never claim intersecting blocks without seeing each other."""
    found = []
    for other_id in pool_doc.get("overlaps", []):
        other = plan.get(pool_key(other_id))
        plan.guard(pool_key(other_id))
        for block_text, node in ({} if other is None else other["blocks"]).items():
            if ipaddress.ip_network(block_text).overlaps(block):
                found.append((node_key(other_id, node), block_text))
    return found


def _open_block(plan: Plan, pool_doc: Doc, block: IPNetwork, doc: Doc) -> list[tuple[str, str]]:
    """Add ``block`` to the node document ``doc``, marked shared with what it intersects."""
    shared = _intersecting(plan, pool_doc, block)
    entry = doc["blocks"].setdefault(str(block), {"ips": {}})
    if shared:
        entry["shared"] = sorted({key for key, _ in shared} | set(entry.get("shared", [])))
    return shared


def _take_block(
    plan: Plan,
    pool: Pool,
    pool_doc: Doc,
    node: str,
    block: IPNetwork,
    shared: Sequence[tuple[str, str]],
) -> None:
    """Record ``block`` as ``node``'s, and mark the blocks it intersects shared with it."""
    home = node_key(pool.id, node)
    for key, block_text in shared:
        doc = plan.get(key)
        entry = None if doc is None else doc["blocks"].get(block_text)
        if doc is None or entry is None:
            continue
        if home not in entry.setdefault("shared", []):
            entry["shared"] = sorted([*entry["shared"], home])
            plan.put(key, doc)
    pool_doc["blocks"][str(block)] = node
    plan.put(pool_key(pool.id), pool_doc)


# --- allocation in one pool -----------------------------------------------------


def reserve_in_pool(
    plan: Plan,
    pool: Pool,
    node: str,
    owner: Owner,
    requested: IPAddress | None,
    pod: Doc | None = None,
) -> Reservation:
    """Plan one address of ``pool`` for ``owner``: own blocks, a new block, or a borrowed one."""
    home = node_key(pool.id, node)
    if requested is not None:
        got = _reserve_requested(plan, pool, node, owner, requested)
    else:
        got = (
            _reserve_own(plan, pool, node, owner)
            or _claim_block(plan, pool, node, owner)
            or _borrow(plan, pool, node, owner)
        )
    _note(plan, home, owner, got, pod)
    return got


def _reserve_own(plan: Plan, pool: Pool, node: str, owner: Owner) -> Reservation | None:
    home = node_key(pool.id, node)
    mine = plan.node_doc(home)
    for block_text in sorted(mine["blocks"], key=_block_order):
        got = allocate_in_block(plan, pool, block_text, mine, owner, None)
        if got is not None:
            plan.put(home, mine)
            return _reservation(pool, node, block_text, got)
    return None


def _note(plan: Plan, home: str, owner: Owner, got: Reservation, pod: Doc | None) -> None:
    """Record the pod at the address, and point the node's own document at a borrowed one."""
    holder = node_key(got.pool, got.node)
    if pod is not None:
        doc = plan.node_doc(holder)
        doc["blocks"][str(got.block)].setdefault("pods", {})[str(got.address)] = pod
        plan.put(holder, doc)
    if holder != home:
        mine = plan.node_doc(home)
        away = mine.setdefault("away", {}).setdefault(owner.text, [])
        if holder not in away:
            away.append(holder)
        plan.put(home, mine)


def _claim_block(plan: Plan, pool: Pool, node: str, owner: Owner) -> Reservation | None:
    pool_doc = _pool_doc(plan, pool)
    mine = plan.node_doc(node_key(pool.id, node))
    blocks = block_allocator(pool, pool_doc)
    while True:
        try:
            block = blocks.allocate(node).prefix
        except PoolExhaustedError:
            return None
        shared = _open_block(plan, pool_doc, block, mine)
        got = allocate_in_block(plan, pool, str(block), mine, owner, None)
        if got is None:
            # Wholly excluded (or taken by overlapping networks): not worth claiming.
            mine["blocks"].pop(str(block), None)
            continue
        pool_doc["last"] = str(block)
        _take_block(plan, pool, pool_doc, node, block, shared)
        plan.put(node_key(pool.id, node), mine)
        return _reservation(pool, node, str(block), got)


def _borrow(plan: Plan, pool: Pool, node: str, owner: Owner) -> Reservation:
    prefix = node_prefix(pool.id)
    for key in plan.scan(prefix):
        other = key[len(prefix) :]
        doc = plan.get(key)
        if other == node or doc is None:
            continue  # our own blocks were tried first
        for block_text in sorted(doc["blocks"], key=_block_order):
            got = allocate_in_block(plan, pool, block_text, doc, owner, None)
            if got is not None:
                plan.put(key, doc)
                return _reservation(pool, other, block_text, got)
    raise PoolExhaustedError("no IP addresses available in range", str(pool.range))


def _reserve_requested(
    plan: Plan, pool: Pool, node: str, owner: Owner, requested: IPAddress
) -> Reservation:
    if requested not in pool.range:
        raise AddressUnavailableError(
            f"requested IP address {requested} is not in range {pool.range}"
        )
    pool_doc = _pool_doc(plan, pool)
    block = ipaddress.ip_network((requested, int(pool_doc["prefixlen"])), strict=False)
    holder = pool_doc["blocks"].get(str(block))
    if holder is None:
        # Claim the block it lies in for this node (refused when outside the range).
        block_allocator(pool, pool_doc).allocate(node, block)
        holder = node
        mine = plan.node_doc(node_key(pool.id, node))
        _take_block(plan, pool, pool_doc, node, block, _open_block(plan, pool_doc, block, mine))
        plan.put(node_key(pool.id, node), mine)
    key = node_key(pool.id, holder)
    doc = plan.node_doc(key)
    entry = doc["blocks"].setdefault(str(block), {"ips": {}})
    if requested in foreign_addresses(plan, pool, block, entry):
        raise AddressUnavailableError(
            f"requested IP address {requested} is not available",
            "held by another network whose range overlaps this one",
        )
    got = allocate_in_block(plan, pool, str(block), doc, owner, requested)
    if got is None:
        raise AddressUnavailableError(f"requested IP address {requested} is not available")
    plan.put(key, doc)
    return _reservation(pool, holder, str(block), got)


def _reservation(pool: Pool, node: str, block_text: str, address: IPAddress) -> Reservation:
    return Reservation(address, pool.id, node, ipaddress.ip_network(block_text))


def _block_order(block_text: str) -> int:
    return int(ipaddress.ip_network(block_text).network_address)


# --- the operations ---------------------------------------------------------------


class Request(NamedTuple):
    """One attachment's ADD: which pools, which node, which addresses it asks for."""

    owner: Owner
    node: str
    pools: tuple[Pool, ...]
    requested: tuple[IPAddress | None, ...]
    #: the pod it is for ({namespace, name, uid, since}), when the runtime said
    pod: Doc | None = None


def homes(pools: Iterable[Pool], node: str) -> list[str]:
    """The node documents where ``node``'s attachments of ``pools`` are recorded."""
    return [node_key(p.id, node) for p in pools]


def find(plan: Plan, owner: Owner, where: Iterable[str]) -> list[Reservation]:
    """What ``owner`` holds in the node documents ``where``, following their pointers."""
    found: dict[tuple[str, IPAddress], Reservation] = {}
    for key in where:
        doc = plan.get(key)
        if doc is None:
            continue
        for r in held_in(key, doc, owner):
            found.setdefault((r.pool, r.address), r)
        for other in doc.get("away", {}).get(owner.text, []):
            other_doc = plan.get(other)
            for r in [] if other_doc is None else held_in(other, other_doc, owner):
                found.setdefault((r.pool, r.address), r)
    return list(found.values())


def allocate(
    store: Store, request: Request, deadline: float, cache: DocumentCache | None = None
) -> tuple[Reservation, ...]:
    """Reserve one address per pool for the attachment, or return what it already holds.

    With a ``cache``, the node's documents are first taken from it (no read); see
    :func:`_from_copies` for when the copies are not trusted."""
    where = homes(request.pools, request.node)

    def decide(read: dict[str, Versioned], copies: bool) -> tuple[Reservation, ...] | None:
        plan = Plan(store, deadline, read)
        existing = find(plan, request.owner, where)
        if existing:
            return None if copies else tuple(existing)  # nothing committed checks a copy
        got = tuple(
            reserve_in_pool(plan, pool, request.node, request.owner, wanted, request.pod)
            for pool, wanted in zip(request.pools, request.requested, strict=True)
        )
        return _committed(plan, cache, got)

    def attempt() -> tuple[Reservation, ...]:
        return _from_copies(store, where, deadline, cache, decide)

    return retry_cas(attempt, deadline, what="allocating IP addresses")


def _committed(plan: Plan, cache: DocumentCache | None, result: _R) -> _R | None:
    """``result`` if ``plan`` commits (the cache then keeps what it wrote); None if not."""
    written = plan.commit()
    if written is None:
        return None
    if cache is not None:
        cache.remember(written)
    return result


def _from_copies(
    store: Store,
    keys: Sequence[str],
    deadline: float,
    cache: DocumentCache | None,
    decide: Callable[[dict[str, Versioned], bool], _R | None],
) -> _R:
    """Run ``decide`` on the cache's copies of ``keys``, then on a fresh read of them.

    ``decide(read, copies)`` answers None when its commit lost, or, working from
    copies, when its answer would commit nothing (a copy may be stale, and only a
    commit's guard proves it is not). An allocation error computed from copies is
    not trusted either. A fresh read that loses raises Conflict (retry_cas backs off)."""
    copies = cache.recall(keys) if cache is not None else None
    if copies is not None:
        try:
            got = decide(copies, True)
        except AllocationError:
            got = None
        if got is not None:
            return got
    read = store.snapshot(keys, deadline=deadline)
    if cache is not None:
        cache.remember(read)
    got = decide(read, False)
    if got is None:
        if cache is not None:
            cache.forget(keys)
        raise Conflict
    return got


class Found(NamedTuple):
    """One attachment as a scan of the node documents finds it."""

    owner: Owner
    #: the node documents that record it (its addresses, or pointers to them)
    keys: tuple[str, ...]
    #: the pod recorded with its addresses, if any
    pod: Doc | None


def scan_attachments(store: Store, deadline: float) -> dict[Owner, Found]:
    """Every attachment holding a reservation anywhere, by one scan of the node documents."""
    keys: dict[Owner, list[str]] = {}
    pods: dict[Owner, Doc] = {}
    for key, item in store.scan("blocks/", deadline=deadline).items():
        doc = decode(key, item) or new_node_doc()
        for entry in doc["blocks"].values():
            for address, holder in entry["ips"].items():
                owner = Owner(*holder)
                keys.setdefault(owner, []).append(key)
                pod = entry.get("pods", {}).get(address)
                if pod is not None:
                    pods.setdefault(owner, pod)
        for text, _ in doc.get("away", {}).items():
            keys.setdefault(Owner(*text.split("/", 2)), []).append(key)
    return {o: Found(o, tuple(dict.fromkeys(k)), pods.get(o)) for o, k in keys.items()}


def lookup(
    store: Store, owner: Owner, deadline: float, where: Sequence[str] | None = None
) -> tuple[Reservation, ...]:
    """What ``owner`` holds (empty when nothing), looked for in ``where`` (None: everywhere)."""
    if where is None:
        found = scan_attachments(store, deadline).get(owner)
        where = () if found is None else found.keys
    plan = Plan(store, deadline, store.snapshot(where, deadline=deadline) if where else {})
    return tuple(find(plan, owner, where))


def release(
    store: Store,
    owner: Owner,
    deadline: float,
    where: Sequence[str] | None = None,
    cache: DocumentCache | None = None,
) -> tuple[Reservation, ...]:
    """Release everything ``owner`` holds, looked for in the node documents ``where``
    (None: a scan of them all); nothing held is not an error. A ``cache`` is used
    as in :func:`allocate` (only with ``where``)."""

    def decide(
        keys: Sequence[str], read: dict[str, Versioned], copies: bool
    ) -> tuple[Reservation, ...] | None:
        plan = Plan(store, deadline, read)
        held = find(plan, owner, keys)
        for r in held:
            _forget(plan, owner, r)
        for key in keys:
            doc = plan.get(key)
            if doc is not None and doc.get("away", {}).pop(owner.text, None) is not None:
                plan.put(key, doc)
        if copies and not plan.written:
            return None  # nothing found in copies: a read must confirm it
        return _committed(plan, cache, tuple(held))

    def attempt() -> tuple[Reservation, ...]:
        if where is not None:
            keys = where
            return _from_copies(store, keys, deadline, cache, partial(decide, keys)) if keys else ()
        found = scan_attachments(store, deadline).get(owner)
        if found is None:
            return ()
        got = decide(found.keys, store.snapshot(found.keys, deadline=deadline), False)
        if got is None:
            raise Conflict
        return got

    return retry_cas(attempt, deadline, what="releasing IP addresses")


def _forget(plan: Plan, owner: Owner, r: Reservation) -> None:
    key = node_key(r.pool, r.node)
    doc = plan.get(key)
    entry = None if doc is None else doc["blocks"].get(str(r.block))
    if doc is not None and entry is not None and entry["ips"].get(str(r.address)) == owner.encode():
        del entry["ips"][str(r.address)]
        entry.get("pods", {}).pop(str(r.address), None)
        plan.put(key, doc)


def attachments(store: Store, network: str, deadline: float) -> list[Owner]:
    """Every attachment of ``network`` that holds a reservation."""
    found = scan_attachments(store, deadline)
    return sorted(o for o in found if o.network == network)


def gc(
    store: Store,
    network: str,
    valid: Iterable[Attachment],
    deadline: float,
    on_release: Callable[[Owner, tuple[Reservation, ...]], None] | None = None,
) -> list[Owner]:
    """Release every reservation of ``network`` whose attachment is not in ``valid``."""
    keep = {(a.container_id, a.ifname) for a in valid}
    released = []
    for owner, found in sorted(scan_attachments(store, deadline).items()):
        if owner.network != network or (owner.container_id, owner.ifname) in keep:
            continue
        held = release(store, owner, deadline, found.keys)
        released.append(owner)
        if on_release is not None:
            on_release(owner, held)
    return released


# --- inspection and upkeep (the `multinic ipam` CLI) -------------------------------------


class Held(NamedTuple):
    """One address as recorded in a node's block document."""

    address: IPAddress
    block: IPNetwork
    node: str
    owner: Owner


class PoolState(NamedTuple):
    """A pool as stored: its range, its blocks and who holds what."""

    id: str
    range: IPRange
    prefixlen: int
    blocks: dict[IPNetwork, str]
    held: tuple[Held, ...]

    @property
    def capacity(self) -> int:
        """Addresses the range can hand out at all (gateway, network, broadcast and
        excluded ones not counted)."""
        return AddressAllocator(RangeSet((self.range,))).size

    def used_in(self, block: IPNetwork) -> int:
        return sum(1 for h in self.held if h.block == block)


def networks(store: Store, deadline: float) -> list[str]:
    """Every network with at least one attachment holding a reservation."""
    return sorted({owner.network for owner in scan_attachments(store, deadline)})


def pool_ids(store: Store, deadline: float) -> list[str]:
    """Every pool that has ever had a block claimed."""
    return sorted(key[len("pools/") :] for key in store.scan("pools/", deadline=deadline))


def pool_state(store: Store, pool_id: str, deadline: float) -> PoolState | None:
    """The pool ``pool_id`` as stored, or None when there is no such pool."""
    pkey = pool_key(pool_id)
    doc = decode(pkey, store.snapshot([pkey], deadline=deadline)[pkey])
    if doc is None:
        return None
    prefix = node_prefix(pool_id)
    held = []
    for key, item in sorted(store.scan(prefix, deadline=deadline).items()):
        node_doc = decode(key, item) or new_node_doc()
        for block_text, entry in node_doc["blocks"].items():
            for address, owner in entry["ips"].items():
                held.append(
                    Held(
                        ipaddress.ip_address(address),
                        ipaddress.ip_network(block_text),
                        key[len(prefix) :],
                        Owner(*owner),
                    )
                )
    return PoolState(
        pool_id,
        pool_range(doc),
        int(doc["prefixlen"]),
        {ipaddress.ip_network(b): n for b, n in doc["blocks"].items()},
        tuple(sorted(held, key=lambda h: (h.address.version, int(h.address)))),
    )


def release_empty_blocks(store: Store, pool_id: str, deadline: float) -> list[IPNetwork]:
    """Give back every block of ``pool_id`` that holds no address, so any node can claim it."""
    pkey = pool_key(pool_id)

    def attempt() -> list[IPNetwork]:
        plan = Plan(store, deadline, store.snapshot([pkey], deadline=deadline))
        pool_doc = plan.get(pkey)
        if pool_doc is None:
            return []
        plan.scan(node_prefix(pool_id))
        freed = []
        for block_text, node in sorted(pool_doc["blocks"].items()):
            nkey = node_key(pool_id, node)
            node_doc = plan.node_doc(nkey)
            entry = node_doc["blocks"].get(block_text)
            if entry is not None and entry["ips"]:
                continue
            # Committed only if the node document did not move: a concurrent ADD
            # into this block makes the commit fail and the next attempt keep it.
            node_doc["blocks"].pop(block_text, None)
            plan.put(nkey, node_doc)
            del pool_doc["blocks"][block_text]
            freed.append(ipaddress.ip_network(block_text))
        if freed:
            plan.put(pkey, pool_doc)
        if plan.commit() is None:
            raise Conflict
        return freed

    return retry_cas(attempt, deadline, what="releasing empty blocks")
