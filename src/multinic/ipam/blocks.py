"""Cluster-wide allocation in per-node blocks with affinity (Calico's idea) over a Store.

Whereabouts keeps a whole range in one object, so every node of a cluster
fights over that one key and allocations take minutes at scale. Here a range
(a *pool*) is carved into small aligned blocks (a /26 or /122 by default):

* ``pools/<pool>`` maps each claimed block to the node it has affinity to. A
  node writes it only to claim a block, once per block-size allocations.
* ``blocks/<pool>/<node>`` holds the addresses allocated in that node's blocks.
  Only that node writes it, unless the range has no unclaimed block left: then
  a node borrows a free address from another node's block (so every address of
  a range stays usable, down to a /28 shared by many nodes).
* ``handles/<network>/<containerID>/<ifname>`` records what one attachment
  holds, so a repeated ADD gets the same addresses, and DEL and GC find them
  without scanning.
* ``ips/<4|6>/<hex>`` claims an address cluster-wide when overlapping-range
  protection is on: networks whose ranges overlap never hold one address twice.

An ADD reads the handle and this node's block documents in one snapshot and
commits handle, block document and claims in one transaction, so it is whole
or absent: a process killed at any point leaves no half reservation, and what a
killed process did commit is a handle that GC reclaims. The allocation inside a
block, and the choice of a block, are the pure allocator's.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Collection, Iterable, Sequence

from multinic.cni.config import Attachment
from multinic.ipam.allocator import (
    AddressAllocator,
    AddressUnavailableError,
    PoolExhaustedError,
    PrefixAllocator,
)
from multinic.ipam.ranges import IPAddress, IPNetwork, IPRange, RangeSet, make_range
from multinic.ipam.store import Conflict, Store, StoreError, Versioned, retry_cas
from multinic.records import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from typing import Any, TypeAlias

    #: A decoded store document (annotations only, so typing is not needed at run time).
    Doc: TypeAlias = dict[str, Any]

#: Default block sizes: 64 addresses per node per claim.
DEFAULT_BLOCK_PREFIX = {4: 26, 6: 122}

#: The pool namespace when the config names no ``network_name``.
DEFAULT_NAMESPACE = "_"


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


class Reservation(NamedTuple):
    """One address an attachment holds, and where it is recorded."""

    address: IPAddress
    pool: str
    node: str
    block: IPNetwork
    claimed: bool


# --- keys ------------------------------------------------------------------------


def pool_key(pool_id: str) -> str:
    return f"pools/{pool_id}"


def node_key(pool_id: str, node: str) -> str:
    return f"blocks/{pool_id}/{node}"


def node_prefix(pool_id: str) -> str:
    return f"blocks/{pool_id}/"


def handle_key(owner: Owner) -> str:
    return f"handles/{owner.network}/{owner.container_id}/{owner.ifname}"


def handle_prefix(network: str) -> str:
    return f"handles/{network}/"


def claim_key(address: IPAddress) -> str:
    # Fixed-width hex: the claims of one block are one contiguous key range.
    width = 8 if address.version == 4 else 32
    return f"ips/{address.version}/{int(address):0{width}x}"


def claim_range(network: IPNetwork) -> tuple[str, str]:
    """The key range ``[start, end)`` of the claims of addresses in ``network``."""
    # Every claim key of a family has the same length, and "!" sorts before any
    # hex digit, so nothing lies between the last address's key and this end.
    return claim_key(network[0]), claim_key(network[-1]) + "!"


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
    return doc


def new_pool_doc(pool: Pool) -> Doc:
    r = pool.range
    return {
        "subnet": str(r.subnet),
        "start": str(r.range_start),
        "end": str(r.range_end),
        "gateway": None if r.gateway is None else str(r.gateway),
        "exclude": [str(p) for p in r.exclude],
        "prefixlen": pool.block_prefixlen,
        "blocks": {},
    }


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


def handle_doc(reservations: Sequence[Reservation], pod: Doc | None = None) -> Doc:
    doc: Doc = {
        "ips": [
            {
                "ip": str(r.address),
                "pool": r.pool,
                "node": r.node,
                "block": str(r.block),
                "claimed": r.claimed,
            }
            for r in reservations
        ]
    }
    if pod is not None:
        doc["pod"] = pod
    return doc


def handle_reservations(doc: Doc) -> tuple[Reservation, ...]:
    return tuple(
        Reservation(
            ipaddress.ip_address(item["ip"]),
            item["pool"],
            item["node"],
            ipaddress.ip_network(item["block"]),
            bool(item.get("claimed", False)),
        )
        for item in doc.get("ips", [])
    )


# --- one transaction's worth of reads and writes --------------------------------


class Plan:
    """What one attempt read, and what it will write if nothing it read has moved."""

    def __init__(self, store: Store, deadline: float, read: dict[str, Versioned]) -> None:
        self.store = store
        self.deadline = deadline
        self.read = read
        self.docs: dict[str, Doc | None] = {}
        self.expected: dict[str, int] = {}
        self.changes: dict[str, bytes | None] = {}

    def get(self, key: str) -> Doc | None:
        """The document at ``key`` as this attempt sees it (read on first use)."""
        if key not in self.docs:
            if key not in self.read:
                self.read.update(self.store.snapshot([key], deadline=self.deadline))
            self.docs[key] = decode(key, self.read[key])
        return self.docs[key]

    def scan(self, prefix: str) -> list[str]:
        """Keys under ``prefix``, now readable with :meth:`get`."""
        found = self.store.scan(prefix, deadline=self.deadline)
        for key, item in found.items():
            if key not in self.read:
                self.read[key] = item
        return sorted(found)

    def put(self, key: str, doc: Doc | None) -> None:
        """Write ``doc`` (None deletes) if ``key`` is still as read (absent if unread)."""
        self.docs[key] = doc
        self.expected[key] = self.read[key].revision if key in self.read else 0
        self.changes[key] = None if doc is None else encode(doc)

    def commit(self) -> bool:
        if not self.changes:
            return True
        return self.store.commit(self.expected, self.changes, deadline=self.deadline)


# --- allocation inside one block ------------------------------------------------


def _block_range(pool: Pool, block: IPNetwork, skip: Collection[IPAddress]) -> IPRange | None:
    try:
        r = pool.range.restrict(block[0], block[-1])
    except ValueError:
        return None  # a block claimed under an older config that no longer meets the range
    extra = tuple(ipaddress.ip_network(a) for a in skip if a in block)
    return r._replace(exclude=r.exclude + extra) if extra else r


def allocate_in_block(
    pool: Pool,
    block_text: str,
    node_doc: Doc,
    owner: Owner,
    requested: IPAddress | None,
    skip: Collection[IPAddress] = (),
) -> IPAddress | None:
    """Take an address of ``block_text`` in ``node_doc`` (edited in place); None when full."""
    block = ipaddress.ip_network(block_text)
    r = _block_range(pool, block, skip)
    if r is None:
        return None
    entry = node_doc["blocks"].setdefault(block_text, {"ips": {}})
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


# --- allocation in one pool -----------------------------------------------------


def reserve_in_pool(
    plan: Plan,
    pool: Pool,
    node: str,
    owner: Owner,
    requested: IPAddress | None,
    skip: Collection[IPAddress],
) -> Reservation:
    """Plan one address of ``pool`` for ``owner``: own blocks, a new block, or a borrowed one."""
    if requested is not None:
        return _reserve_requested(plan, pool, node, owner, requested, skip)
    mine_key = node_key(pool.id, node)
    mine = plan.get(mine_key) or {"blocks": {}}
    for block_text in sorted(mine["blocks"], key=_block_order):
        got = allocate_in_block(pool, block_text, mine, owner, None, skip)
        if got is not None:
            plan.put(mine_key, mine)
            return _reservation(pool, node, block_text, got)
    claimed = _claim_block(plan, pool, node, owner, mine, skip)
    if claimed is not None:
        return claimed
    return _borrow(plan, pool, node, owner, skip)


def _claim_block(
    plan: Plan, pool: Pool, node: str, owner: Owner, mine: Doc, skip: Collection[IPAddress]
) -> Reservation | None:
    pkey = pool_key(pool.id)
    pool_doc = plan.get(pkey) or new_pool_doc(pool)
    blocks = block_allocator(pool, pool_doc)
    while True:
        try:
            block = blocks.allocate(node).prefix
        except PoolExhaustedError:
            return None
        got = allocate_in_block(pool, str(block), mine, owner, None, skip)
        if got is None:
            # Wholly excluded (or taken by overlapping networks): not worth claiming.
            mine["blocks"].pop(str(block), None)
            continue
        pool_doc["blocks"][str(block)] = node
        pool_doc["last"] = str(block)
        plan.put(pkey, pool_doc)
        plan.put(node_key(pool.id, node), mine)
        return _reservation(pool, node, str(block), got)


def _borrow(
    plan: Plan, pool: Pool, node: str, owner: Owner, skip: Collection[IPAddress]
) -> Reservation:
    prefix = node_prefix(pool.id)
    for key in plan.scan(prefix):
        other = key[len(prefix) :]
        doc = plan.get(key)
        if other == node or doc is None:
            continue  # our own blocks were tried first
        for block_text in sorted(doc.get("blocks", {}), key=_block_order):
            got = allocate_in_block(pool, block_text, doc, owner, None, skip)
            if got is not None:
                plan.put(key, doc)
                return _reservation(pool, other, block_text, got)
    raise PoolExhaustedError("no IP addresses available in range", str(pool.range))


def _reserve_requested(
    plan: Plan,
    pool: Pool,
    node: str,
    owner: Owner,
    requested: IPAddress,
    skip: Collection[IPAddress],
) -> Reservation:
    if requested not in pool.range:
        raise AddressUnavailableError(
            f"requested IP address {requested} is not in range {pool.range}"
        )
    if requested in skip:
        raise AddressUnavailableError(
            f"requested IP address {requested} is not available",
            "held by another network whose range overlaps this one",
        )
    pkey = pool_key(pool.id)
    pool_doc = plan.get(pkey) or new_pool_doc(pool)
    block = ipaddress.ip_network((requested, int(pool_doc["prefixlen"])), strict=False)
    holder = pool_doc["blocks"].get(str(block))
    if holder is None:
        # Claim the block it lies in for this node (refused when outside the range).
        block_allocator(pool, pool_doc).allocate(node, block)
        pool_doc["blocks"][str(block)] = holder = node
        plan.put(pkey, pool_doc)
    key = node_key(pool.id, holder)
    doc = plan.get(key) or {"blocks": {}}
    got = allocate_in_block(pool, str(block), doc, owner, requested, skip)
    if got is None:
        raise AddressUnavailableError(f"requested IP address {requested} is not available")
    plan.put(key, doc)
    return _reservation(pool, holder, str(block), got)


def _reservation(pool: Pool, node: str, block_text: str, address: IPAddress) -> Reservation:
    return Reservation(
        address, pool.id, node, ipaddress.ip_network(block_text), pool.protect_overlap
    )


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


def allocate(store: Store, request: Request, deadline: float) -> tuple[Reservation, ...]:
    """Reserve one address per pool for the attachment, or return what it already holds."""
    hkey = handle_key(request.owner)
    node_keys = [node_key(p.id, request.node) for p in request.pools]
    skip: dict[str, set[IPAddress]] = {p.id: set() for p in request.pools}

    def attempt() -> tuple[Reservation, ...]:
        plan = Plan(store, deadline, store.snapshot([hkey, *node_keys], deadline=deadline))
        existing = plan.get(hkey)
        if existing is not None:
            return handle_reservations(existing)
        got = [
            reserve_in_pool(plan, pool, request.node, request.owner, wanted, skip[pool.id])
            for pool, wanted in zip(request.pools, request.requested, strict=True)
        ]
        for reservation in got:
            if reservation.claimed:
                plan.put(claim_key(reservation.address), _claim_doc(request.owner, reservation))
        plan.put(hkey, handle_doc(got, request.pod))
        if not plan.commit():
            _learn_foreign_claims(store, deadline, got, skip)
            raise Conflict
        return tuple(got)

    return retry_cas(attempt, deadline, what="allocating IP addresses")


def _claim_doc(owner: Owner, reservation: Reservation) -> Doc:
    return {"pool": reservation.pool, "owner": owner.encode()}


def _learn_foreign_claims(
    store: Store, deadline: float, got: Sequence[Reservation], skip: dict[str, set[IPAddress]]
) -> None:
    """After a lost race: addresses of our blocks that another network's pool claimed."""
    claimed = [r for r in got if r.claimed]
    if not claimed:
        return
    present = store.snapshot([claim_key(r.address) for r in claimed], deadline=deadline)
    for r in claimed:
        if present[claim_key(r.address)].value is None:
            continue  # lost the race on our own documents, not to another network
        start, end = claim_range(r.block)
        for key, item in store.scan_range(start, end, deadline=deadline).items():
            doc = decode(key, item)
            if doc is not None and doc.get("pool") != r.pool:
                skip[r.pool].add(_claim_address(key))


def _claim_address(key: str) -> IPAddress:
    _, version, hexa = key.split("/")
    value = int(hexa, 16)
    return ipaddress.IPv4Address(value) if version == "4" else ipaddress.IPv6Address(value)


def lookup(store: Store, owner: Owner, deadline: float) -> tuple[Reservation, ...]:
    """What ``owner`` holds (empty when nothing)."""
    hkey = handle_key(owner)
    item = store.snapshot([hkey], deadline=deadline)[hkey]
    doc = decode(hkey, item)
    return () if doc is None else handle_reservations(doc)


def release(store: Store, owner: Owner, deadline: float) -> tuple[Reservation, ...]:
    """Release everything ``owner`` holds; nothing held is not an error."""
    hkey = handle_key(owner)

    def attempt() -> tuple[Reservation, ...]:
        plan = Plan(store, deadline, store.snapshot([hkey], deadline=deadline))
        doc = plan.get(hkey)
        if doc is None:
            return ()
        held = handle_reservations(doc)
        keys = [node_key(r.pool, r.node) for r in held]
        keys += [claim_key(r.address) for r in held if r.claimed]
        plan.read.update(store.snapshot(keys, deadline=deadline))
        for r in held:
            _forget(plan, owner, r)
        plan.put(hkey, None)
        if not plan.commit():
            raise Conflict
        return held

    return retry_cas(attempt, deadline, what="releasing IP addresses")


def _forget(plan: Plan, owner: Owner, r: Reservation) -> None:
    key = node_key(r.pool, r.node)
    doc = plan.get(key)
    entry = None if doc is None else doc.get("blocks", {}).get(str(r.block))
    if doc is not None and entry is not None and entry["ips"].get(str(r.address)) == owner.encode():
        del entry["ips"][str(r.address)]
        plan.put(key, doc)
    if r.claimed:
        ckey = claim_key(r.address)
        claim = plan.get(ckey)
        if claim is not None and claim.get("owner") == owner.encode():
            plan.put(ckey, None)


def attachments(store: Store, network: str, deadline: float) -> list[Owner]:
    """Every attachment of ``network`` that holds a reservation."""
    prefix = handle_prefix(network)
    out = []
    for key in store.scan(prefix, deadline=deadline):
        container_id, _, ifname = key[len(prefix) :].partition("/")
        out.append(Owner(network, container_id, ifname))
    return out


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
    for owner in attachments(store, network, deadline):
        if (owner.container_id, owner.ifname) in keep:
            continue
        held = release(store, owner, deadline)
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
    names = {
        key[len("handles/") :].partition("/")[0]
        for key in store.scan("handles/", deadline=deadline)
    }
    return sorted(names)


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
        node_doc = decode(key, item) or {"blocks": {}}
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
            node_doc = plan.get(nkey) or {"blocks": {}}
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
        if not plan.commit():
            raise Conflict
        return freed

    return retry_cas(attempt, deadline, what="releasing empty blocks")
