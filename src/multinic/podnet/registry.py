"""Who the nodes are and which pod CIDR each has: the cluster store, or the Kubernetes API.

Standalone (no API server), one document in the cluster store (the same
store multinic-ipam uses: embedded SQLite or etcd) lists every node with its
underlay address and pod CIDRs. A node joining takes the next free /24 of
the pod block with :class:`~multinic.ipam.allocator.PrefixAllocator` inside
one compare-and-swap: two nodes joining at once never get the same CIDR (one
commit loses and recomputes). Node churn is rare, so one document for the
whole cluster is no contention worth sharding.

With a cluster, the nodes and their ``spec.podCIDRs`` come from the API (the
controller-manager's node IPAM allocates them, as Antrea's default does).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

from multinic.cni.errors import InvalidConfigError, TryAgainLaterError
from multinic.ipam.allocator import PrefixAllocator
from multinic.ipam.store import Conflict, Store, deadline_after, retry_cas
from multinic.podnet.config import IPNetwork

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: How long one registry operation may retry its compare-and-swap.
DEADLINE = 15.0


class NodeEntry(NamedTuple):
    """A node of the primary network."""

    name: str
    #: The underlay address VXLAN runs over (IPv4 when the node has one).
    address: IPAddress
    pod_cidrs: tuple[IPNetwork, ...]
    #: Every underlay address (one per family, ``address`` included): host-gw routes a
    #: pod CIDR via the node's address of the CIDR's family.
    addresses: tuple[IPAddress, ...] = ()

    def underlay(self, version: int) -> IPAddress | None:
        """The node's underlay address of IP ``version``, if it has one."""
        found = [a for a in (self.address, *self.addresses) if a.version == version]
        return found[0] if found else None


class NodeList(Protocol):
    """Where a node reads the others from."""

    def nodes(self) -> list[NodeEntry]:
        """Every node that has an address and pod CIDRs, this one included."""
        ...


def nodes_key(cluster: str) -> str:
    return f"podnet/{cluster}/nodes"


def _decode(raw: bytes | None) -> dict[str, dict[str, Any]]:
    if raw is None:
        return {}
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise InvalidConfigError("corrupt podnet node list in the store", str(exc)) from exc
    if not isinstance(doc, dict):
        raise InvalidConfigError("corrupt podnet node list in the store", "not an object")
    return doc


def _entry(name: str, doc: Mapping[str, Any]) -> NodeEntry:
    return NodeEntry(
        name,
        ipaddress.ip_address(doc["address"]),
        tuple(ipaddress.ip_network(c) for c in doc["podCIDRs"]),
        # Entries written before dual-stack have only "address".
        tuple(ipaddress.ip_address(a) for a in doc.get("addresses", [doc["address"]])),
    )


class StoreRegistry:
    """The node list in the cluster store; joining allocates the node's pod CIDRs."""

    def __init__(
        self,
        open_store: Callable[[], Store],
        cluster: str,
        pod_block: Sequence[IPNetwork],
        node_prefix: int,
    ) -> None:
        # A connection per operation, not one for the daemon's life: a long-lived SQLite
        # connection in the lab's daemons was seen to keep reading an old node list after
        # another process's DEL traffic (cause not found yet; see docs/podnet.md).
        self.open_store = open_store
        self.key = nodes_key(cluster)
        self.pod_block = tuple(pod_block)
        self.node_prefix = node_prefix

    def _prefixlen(self, block: IPNetwork) -> int:
        # IPv6: a /64 per node whatever the IPv4 size (SLAAC and the seed's plan both use /64).
        return self.node_prefix if block.version == 4 else max(block.prefixlen, 64)

    @contextlib.contextmanager
    def _store(self) -> Iterator[Store]:
        store = self.open_store()
        try:
            yield store
        finally:
            store.close()

    def nodes(self) -> list[NodeEntry]:
        with self._store() as store:
            item = store.snapshot([self.key], deadline=deadline_after(DEADLINE))[self.key]
        return [_entry(name, doc) for name, doc in sorted(_decode(item.value).items())]

    def join(self, name: str, address: IPAddress, addresses: Sequence[IPAddress] = ()) -> NodeEntry:
        """Register ``name`` at ``address`` (and its other underlay ``addresses``); it keeps
        the CIDRs it had (a restart, a reboot)."""
        every = tuple(dict.fromkeys((address, *addresses)))

        def attempt() -> NodeEntry:
            with self._store() as store:
                return self._join(store, name, every)

        return retry_cas(attempt, deadline_after(DEADLINE), what=f"podnet: join node {name}")

    def _join(self, store: Store, name: str, addresses: tuple[IPAddress, ...]) -> NodeEntry:
        item = store.snapshot([self.key], deadline=deadline_after(DEADLINE))[self.key]
        doc = _decode(item.value)
        mine = doc.get(name)
        cidrs = (
            [str(c) for c in _entry(name, mine).pod_cidrs]
            if mine is not None
            else [str(self._allocate(block, name, doc)) for block in self.pod_block]
        )
        doc[name] = {
            "address": str(addresses[0]),
            "addresses": [str(a) for a in addresses],
            "podCIDRs": cidrs,
        }
        self._commit(store, item.revision, doc)
        return _entry(name, doc[name])

    def leave(self, name: str) -> bool:
        """Remove ``name`` (its CIDRs become free); False when it was not registered."""

        def attempt() -> bool:
            with self._store() as store:
                item = store.snapshot([self.key], deadline=deadline_after(DEADLINE))[self.key]
                doc = _decode(item.value)
                if doc.pop(name, None) is None:
                    return False
                self._commit(store, item.revision, doc)
                return True

        return retry_cas(attempt, deadline_after(DEADLINE), what=f"podnet: remove node {name}")

    def _allocate(self, block: IPNetwork, name: str, doc: Mapping[str, Any]) -> IPNetwork:
        length = self._prefixlen(block)
        held = [
            (cidr, other)
            for other, entry in doc.items()
            for cidr in _entry(other, entry).pod_cidrs
            if cidr.version == block.version and cidr.prefixlen == length
        ]
        allocator = PrefixAllocator.from_network(block, length, held=held)
        return allocator.allocate(name).prefix

    def _commit(self, store: Store, revision: int, doc: Mapping[str, Any]) -> None:
        data = json.dumps(doc, sort_keys=True).encode()
        written = store.commit(
            {self.key: revision}, {self.key: data}, deadline=deadline_after(DEADLINE)
        )
        if written is None:
            raise Conflict


def _ips(texts: Sequence[str]) -> tuple[IPAddress, ...]:
    """The IP addresses among a Node's addresses (it lists host names too)."""
    found = []
    for text in texts:
        with contextlib.suppress(ValueError):
            found.append(ipaddress.ip_address(text))
    return tuple(found)


class KubeNodeList:
    """Nodes and their ``spec.podCIDRs`` from the API server (a
    :class:`~multinic.kube.nodes.NodeWatch`: ``list_nodes``, ``wait_for_change``, ``close``)."""

    def __init__(self, source: Any) -> None:
        self.source = source

    def wait_for_change(self, timeout: float) -> bool:
        """Up to ``timeout`` seconds for a Node to change after the last :meth:`nodes`."""
        return bool(self.source.wait_for_change(timeout))

    def interrupt(self) -> None:
        """End a :meth:`wait_for_change` of another thread now."""
        self.source.interrupt()

    def close(self) -> None:
        self.source.close()

    def nodes(self) -> list[NodeEntry]:
        found = []
        for node in self.source.list_nodes():
            if not node.pod_cidrs or not node.addresses:
                continue  # not allocated yet: the next resync sees it
            every = _ips(node.addresses)
            if not every:
                continue
            found.append(
                NodeEntry(
                    node.name,
                    every[0],
                    tuple(ipaddress.ip_network(c) for c in node.pod_cidrs),
                    every,
                )
            )
        return found

    def find(self, name: str) -> NodeEntry:
        for node in self.nodes():
            if node.name == name:
                return node
        raise TryAgainLaterError(
            f"podnet: node {name} has no pod CIDR yet", "Node.spec.podCIDRs is empty or missing"
        )
