"""Allocation: every cluster's prefixes from the fabric's blocks, deterministically.

Requests are served in input order (clusters as listed, then node, pod, service,
Multus networks), each by best fit at the lowest address, so a cluster's
prefixes depend only on the clusters before it: appending a cluster moves
nobody. ``previous`` (a former plan's allocations) is claimed before anything
new, so reordering, resizing or removing clusters does not move the others either.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import NamedTuple

from multinic.plan import sizing
from multinic.plan.errors import FabricError
from multinic.plan.model import MAX_SERVICE_PREFIX, BlockKind, Cluster, Fabric, IPNetwork
from multinic.plan.pool import PrefixPool
from multinic.plan.result import (
    Allocation,
    ClusterPlan,
    Finding,
    NetworkPlan,
    Plan,
    Severity,
    Shortfall,
)

#: A former plan's allocations by (block kind, owner, IP version).
Previous = Mapping[tuple[BlockKind, str, int], IPNetwork]


class Request(NamedTuple):
    """One prefix to allocate and where the result goes."""

    kind: BlockKind
    owner: str
    version: int
    length: int
    target: dict[int, IPNetwork]


def plan_fabric(fabric: Fabric, previous: Previous | None = None) -> Plan:
    """Allocate every cluster's prefixes; findings are left to ``validate``."""
    pools: dict[tuple[BlockKind, int], PrefixPool] = {
        (b.kind, p.version): PrefixPool(p) for b in fabric.blocks for p in b.prefixes
    }
    for pool in pools.values():
        for used in _inside(pool.block, fabric.in_use):
            pool.reserve(used)
    plan = Plan(fabric, [_empty_plan(cluster) for cluster in fabric.clusters])
    plan.previous = [Allocation(kind, owner, p) for (kind, owner, _), p in (previous or {}).items()]
    requests = list(_requests(plan))
    pending = [r for r in requests if not _keep_previous(r, pools, previous or {}, plan)]
    for request in pending:
        pool = pools[request.kind, request.version]
        got = pool.take(request.length)
        if got is None:
            plan.shortfalls.append(_shortfall(request, pool))
        else:
            request.target[request.version] = got
    plan.free = {key: list(pool.free_prefixes()) for key, pool in pools.items()}
    plan.notes.extend(_service_clamps(fabric))
    return plan


def _inside(block: IPNetwork, prefixes: tuple[IPNetwork, ...]) -> Iterator[IPNetwork]:
    # Integer bounds first: a long in_use list mostly misses a given block.
    low, high = int(block.network_address), int(block.broadcast_address)
    for prefix in prefixes:
        if (
            prefix.version == block.version
            and int(prefix.network_address) <= high
            and low <= int(prefix.broadcast_address)
        ):
            yield prefix


def _empty_plan(cluster: Cluster) -> ClusterPlan:
    return ClusterPlan(cluster, networks=[NetworkPlan(net) for net in cluster.networks])


def _requests(plan: Plan) -> Iterator[Request]:
    fabric = plan.fabric
    for cp in plan.clusters:
        cluster = cp.cluster
        for version in fabric.node.versions:
            yield Request(
                BlockKind.NODE, cp.name, version, sizing.node_prefix(cluster, version), cp.node
            )
        for version in fabric.pod.versions:
            length = sizing.pod_prefix(fabric, cluster, version)
            yield Request(BlockKind.POD, cp.name, version, length, cp.pod)
        for version in fabric.service.versions:
            length = sizing.service_prefix(fabric, cluster, version)
            yield Request(BlockKind.SERVICE, cp.name, version, length, cp.service)
        for np in cp.networks:
            owner = f"{cp.name}/{np.network.name}"
            for version in fabric.multus.versions:
                length = sizing.multus_prefix(np.network, cluster, version)
                _fits_the_family(length, version, owner)
                yield Request(BlockKind.MULTUS, owner, version, length, np.ranges)


def _fits_the_family(length: int, version: int, owner: str) -> None:
    # Each node's share times max nodes can exceed a whole family even within the
    # parser's limits; say so instead of planning a "/-17".
    if length < 0:
        raise FabricError(
            f"secondary network {owner}: its addresses (expected_addresses, or each node's "
            f"share times nodes.max for per-node IPAM) exceed the whole IPv{version} space"
        )


def _keep_previous(
    request: Request,
    pools: Mapping[tuple[BlockKind, int], PrefixPool],
    previous: Previous,
    plan: Plan,
) -> bool:
    prior = previous.get((request.kind, request.owner, request.version))
    if prior is None:
        return False
    if pools[request.kind, request.version].claim(prior):
        request.target[request.version] = prior
        return True
    plan.notes.append(
        Finding(
            Severity.WARNING,
            "previous-moved",
            f"{request.kind} {prior} of {request.owner} from the previous plan is no longer free "
            f"in the {request.kind} block (outside it, in use or taken): allocated anew",
        )
    )
    return False


def _shortfall(request: Request, pool: PrefixPool) -> Shortfall:
    return Shortfall(
        request.kind,
        request.owner,
        request.version,
        request.length,
        pool.block,
        pool.largest_free(),
        pool.free_addresses(),
    )


def _service_clamps(fabric: Fabric) -> Iterator[Finding]:
    # Kubernetes refuses a larger service range: plan the largest it accepts and say so.
    for cluster in fabric.clusters:
        for version in fabric.service.versions:
            asked = sizing.asked_service_prefix(fabric, cluster, version)
            if asked < MAX_SERVICE_PREFIX[version]:
                limit = MAX_SERVICE_PREFIX[version]
                yield Finding(
                    Severity.WARNING,
                    "service-size",
                    f"cluster {cluster.name} asks for an IPv{version} service CIDR of /{asked}, "
                    f"larger than Kubernetes accepts (kube-apiserver: at most /{limit}): "
                    f"planned a /{limit}",
                )
