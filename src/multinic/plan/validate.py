"""The rules: one function each, returning findings that name both sides.

Fabric rules need only the input (``check_fabric``); plan rules look at what
was allocated (``validate``). Rules come from the seed's design decisions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from ipaddress import ip_network
from itertools import combinations

from multinic.plan import sizing
from multinic.plan.model import (
    BlockKind,
    Cluster,
    Fabric,
    IpamScope,
    IPNetwork,
    SecondaryNetwork,
)
from multinic.plan.result import Allocation, Finding, Plan, Severity, Shortfall
from multinic.plan.spans import overlapping_pairs

ERROR, WARNING = Severity.ERROR, Severity.WARNING

#: Blocks the seed says must not be routable outside the clusters.
PRIVATE_BLOCKS = (BlockKind.POD, BlockKind.SERVICE)

#: Space that is not routed on the Internet: RFC 1918, RFC 6598 (CGN, the seed's
#: service space) and IPv6 unique local addresses (RFC 4193).
PRIVATE_SPACE = {
    4: tuple(
        ip_network(p) for p in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")
    ),
    6: (ip_network("fc00::/7"),),
}

#: Prefixes named in one finding about a list, and findings of one rule before the rest
#: are counted in one line.
SHOWN = 3
GROUP_AFTER = 20

ALLOCATED_AS = {
    BlockKind.NODE: "node subnet",
    BlockKind.POD: "pod CIDR",
    BlockKind.SERVICE: "service CIDR",
    BlockKind.MULTUS: "Multus range",
}


def block_overlaps(fabric: Fabric) -> Iterator[Finding]:
    """The seed: Node, Pod, Service and Multus blocks must not overlap one another."""
    for a, b in combinations(fabric.blocks, 2):
        for pa in a.prefixes:
            for pb in b.prefixes:
                if pa.overlaps(pb):
                    yield Finding(
                        ERROR, "block-overlap", f"{a.kind} block {pa} overlaps {b.kind} block {pb}"
                    )


def private_blocks_routable(fabric: Fabric) -> Iterator[Finding]:
    """The seed: pod and service space must not be routable outside the clusters."""
    for kind in PRIVATE_BLOCKS:
        for prefix in fabric.block(kind).prefixes:
            routed = _overlapping(prefix, fabric.routable)
            if routed:
                yield Finding(
                    ERROR,
                    "routable",
                    f"{kind} block {prefix} overlaps {_some('routable prefix', routed)}: "
                    f"{kind} space must not be routable outside the clusters",
                )


def private_blocks_public(fabric: Fabric) -> Iterator[Finding]:
    """The seed: pod and service space not routable outside, services from RFC 6598.

    A pod or service block in public space shadows those Internet addresses
    for every pod, and is one route leak away from being routed outside. One
    inside a declared routable prefix is the ``routable`` rule's error already.
    """
    for kind in PRIVATE_BLOCKS:
        for prefix in fabric.block(kind).prefixes:
            if _is_private(prefix) or _overlapping(prefix, fabric.routable):
                continue
            private = ", ".join(map(str, PRIVATE_SPACE[prefix.version]))
            yield Finding(
                WARNING,
                "public-space",
                f"{kind} block {prefix} is outside private address space "
                f"({private}): pods could not reach those public "
                f"addresses, and {kind} space must not be routable outside the clusters",
            )


def private_blocks_in_use(fabric: Fabric) -> Iterator[Finding]:
    """Pods could not reach in-use addresses that their pod or service space shadows."""
    for kind in PRIVATE_BLOCKS:
        for prefix in fabric.block(kind).prefixes:
            used = _overlapping(prefix, fabric.in_use)
            if used:
                yield Finding(
                    ERROR,
                    "in-use",
                    f"{kind} block {prefix} overlaps {_some('in-use prefix', used)}: "
                    "pods would not reach those addresses",
                )


def node_block_not_routable(fabric: Fabric) -> Iterator[Finding]:
    """The seed: management addresses must be routable (Kubernetes health checks)."""
    if not fabric.routable:
        return
    for prefix in fabric.node.prefixes:
        if not any(prefix.subnet_of(r) for r in fabric.routable if r.version == prefix.version):  # type: ignore[arg-type]
            yield Finding(
                WARNING,
                "node-routable",
                f"node block {prefix} is not inside any routable prefix "
                f"({', '.join(map(str, fabric.routable))}): health checks need it routable",
            )


def data_plane_interfaces(fabric: Fabric) -> Iterator[Finding]:
    """The seed: one management interface per node, the other vNICs (nine of ten) for data."""
    for cluster in fabric.clusters:
        ifs = cluster.interfaces
        left = ifs.vnics - 1
        if len(ifs.data_plane) > left:
            yield Finding(
                ERROR,
                "interfaces",
                f"cluster {cluster.name} asks for {len(ifs.data_plane)} data-plane interfaces, "
                f"but its nodes have {ifs.vnics} vNICs of which management {ifs.management} "
                f"takes one: {left} left",
            )
        if ifs.management in ifs.data_plane:
            yield Finding(
                ERROR,
                "interfaces",
                f"cluster {cluster.name}: {ifs.management} is both the management interface "
                "and a data-plane interface",
            )


def secondary_on_management(fabric: Fabric) -> Iterator[Finding]:
    """The seed: the management interface is for Kubernetes, not for CNF data-plane traffic."""
    for cluster in fabric.clusters:
        for net in cluster.networks:
            if net.master == cluster.interfaces.management:
                yield Finding(
                    ERROR,
                    "management",
                    f"secondary network {cluster.name}/{net.name} has parent {net.master}, "
                    f"the management interface of cluster {cluster.name}",
                )


def unknown_parent(fabric: Fabric) -> Iterator[Finding]:
    """A secondary network's parent must be one of the nodes' data-plane interfaces."""
    for cluster in fabric.clusters:
        ifs = cluster.interfaces
        for net in cluster.networks:
            if net.master != ifs.management and net.master not in ifs.data_plane:
                have = ", ".join(ifs.data_plane) or "none"
                yield Finding(
                    ERROR,
                    "parent",
                    f"secondary network {cluster.name}/{net.name} has parent {net.master}, "
                    f"which is not a data-plane interface of cluster {cluster.name} ({have})",
                )


def pods_per_node(fabric: Fabric) -> Iterator[Finding]:
    """Each node's pods must fit its per-node pod CIDR (the seed: a /24)."""
    for cluster in fabric.clusters:
        for version in fabric.pod.versions:
            length = fabric.node_pod_prefix[version]
            room = sizing.usable(length, version)
            if cluster.pods_per_node > room:
                yield Finding(
                    ERROR,
                    "pods-per-node",
                    f"cluster {cluster.name} runs {cluster.pods_per_node} pods per node, "
                    f"but a per-node IPv{version} pod CIDR /{length} holds {room}",
                )


def dual_stack(fabric: Fabric) -> Iterator[Finding]:
    """Kubernetes: pod and service CIDRs of a cluster come in the same IP families."""
    pods, services = set(fabric.pod.versions), set(fabric.service.versions)
    if pods != services:
        yield Finding(
            ERROR,
            "dual-stack",
            f"pod block families ({_families(pods)}) differ from service block families "
            f"({_families(services)}): Kubernetes needs the same in both",
        )


def allocation_overlaps(plan: Plan) -> Iterator[Finding]:
    """No two allocations, and no allocation and an in-use prefix, share an address."""
    # In-use prefixes may overlap one another (that is the admin's list), never an
    # allocation. Labels are formatted only for findings.
    labels: list[Allocation | IPNetwork] = [*plan.allocations(), *plan.fabric.in_use]
    prefixes = [x.prefix if isinstance(x, Allocation) else x for x in labels]
    for n, other in overlapping_pairs(prefixes):
        if isinstance(labels[n], Allocation) or isinstance(labels[other], Allocation):
            yield Finding(
                ERROR, "overlap", f"{_describe(labels[n])} overlaps {_describe(labels[other])}"
            )


def previous_overlaps(plan: Plan) -> Iterator[Finding]:
    """docs/plan.md: a previous plan whose allocations overlap is an error, not a quiet move.

    Two owners of one live prefix cannot both keep it; the planner keeps the
    first and moves the other (``previous-moved``), which is only right if the
    plan was edited by mistake, so nothing is exported until it is corrected.
    """
    previous = plan.previous
    for n, other in overlapping_pairs([a.prefix for a in previous]):
        yield Finding(
            ERROR,
            "overlap",
            f"the previous plan gives {_label(previous[n])}, which overlaps "
            f"{_label(previous[other])}: correct the previous plan (edited by hand?)",
        )


def allocation_outside_block(plan: Plan) -> Iterator[Finding]:
    """Every allocation lies inside its block (a hand-edited previous plan may not)."""
    bounds = {
        (b.kind, p.version): (int(p.network_address), int(p.network_address) + p.num_addresses)
        for b in plan.fabric.blocks
        for p in b.prefixes
    }
    for alloc in plan.allocations():
        low, high = bounds.get((alloc.kind, alloc.prefix.version), (0, 0))
        start = int(alloc.prefix.network_address)
        if not (low <= start and start + alloc.prefix.num_addresses <= high):
            block = plan.fabric.block(alloc.kind).family(alloc.prefix.version)
            yield Finding(
                ERROR,
                "outside",
                f"{_label(alloc)} is outside the {alloc.kind} block ({block or 'no such family'})",
            )


def blocks_exhausted(plan: Plan) -> Iterator[Finding]:
    """A block without enough free addresses left for a request."""
    for short in plan.shortfalls:
        if short.free_addresses < 1 << (short.block.max_prefixlen - short.length):
            yield Finding(
                ERROR,
                "exhausted",
                f"{short.kind} block {short.block} has no room for the /{short.length} "
                f"{ALLOCATED_AS[short.kind]} of {_owner(short.kind, short.owner)}: "
                f"{short.free_addresses} addresses left",
            )


def blocks_fragmented(plan: Plan) -> Iterator[Finding]:
    """Enough free addresses, but no free prefix large enough: fragmentation."""
    for short in plan.shortfalls:
        if short.free_addresses >= 1 << (short.block.max_prefixlen - short.length):
            yield Finding(ERROR, "fragmented", _fragment_message(short))


def node_block_fragmentation(plan: Plan) -> Iterator[Finding]:
    """The seed: fragmentation of the Node block can result in small clusters."""
    for version in plan.fabric.node.versions:
        default = sizing.DEFAULT_NODE_PREFIX[version]
        free = plan.free.get((BlockKind.NODE, version), [])
        total = sum(p.num_addresses for p in free)
        largest = min((p.prefixlen for p in free), default=None)
        if (
            largest is not None
            and largest > default
            and total >= 1 << (free[0].max_prefixlen - default)
        ):
            yield Finding(
                WARNING,
                "node-fragmentation",
                f"node block {plan.fabric.node.family(version)} has {total} free addresses "
                f"but no free /{default}: the largest free prefix /{largest} limits the next "
                f"cluster to {sizing.usable(largest, version)} nodes",
            )


def node_capacity(plan: Plan) -> Iterator[Finding]:
    """A cluster's node subnet holds its maximum node count."""
    for cp in plan.clusters:
        for subnet in cp.node.values():
            if sizing.usable_in(subnet) < cp.cluster.max_nodes:
                yield Finding(
                    ERROR,
                    "node-capacity",
                    f"cluster {cp.name} may grow to {cp.cluster.max_nodes} nodes, but its node "
                    f"subnet {subnet} holds {sizing.usable_in(subnet)}",
                )


def node_subnet_beyond_seed(plan: Plan) -> Iterator[Finding]:
    """The seed allocates a /24 per cluster; a larger cluster needs more, say so."""
    for cp in plan.clusters:
        subnet = cp.node.get(4)
        if subnet is not None and subnet.prefixlen < sizing.DEFAULT_NODE_PREFIX[4]:
            yield Finding(
                WARNING,
                "node-subnet-size",
                f"cluster {cp.name} may grow to {cp.cluster.max_nodes} nodes: its node subnet "
                f"{subnet} is larger than the seed's /24 per cluster",
            )


def pod_capacity(plan: Plan) -> Iterator[Finding]:
    """A cluster's pod CIDR holds a per-node pod CIDR for each of its nodes."""
    for cp in plan.clusters:
        for version, cidr in cp.pod.items():
            per_node = plan.fabric.node_pod_prefix[version]
            room = 1 << (per_node - cidr.prefixlen) if per_node >= cidr.prefixlen else 0
            if room < cp.cluster.max_nodes:
                yield Finding(
                    ERROR,
                    "pod-capacity",
                    f"cluster {cp.name} may grow to {cp.cluster.max_nodes} nodes, but its pod "
                    f"CIDR {cidr} holds {room} per-node /{per_node} CIDRs",
                )


def multus_capacity(plan: Plan) -> Iterator[Finding]:
    """A secondary network's range holds its expected addresses (per node: each node's share)."""
    for cp in plan.clusters:
        for np in cp.networks:
            for prefix in np.ranges.values():
                problem = _multus_shortage(np.network, prefix, cp.cluster)
                if problem:
                    yield Finding(
                        ERROR,
                        "multus-capacity",
                        f"Multus range {prefix} of {cp.name}/{np.network.name} {problem}",
                    )


def _multus_shortage(net: SecondaryNetwork, prefix: IPNetwork, cluster: Cluster) -> str:
    room = sizing.usable_in(prefix)
    expected = net.expected_addresses
    if net.ipam is IpamScope.CLUSTER_WIDE:
        return "" if room >= expected else f"holds {room} addresses, {expected} expected"
    share = room // cluster.max_nodes
    need = sizing.per_node_share(net, cluster)
    if share >= need:
        return ""
    return (
        f"gives each of {cluster.max_nodes} nodes {share} addresses, {need} expected per node "
        f"({expected} over {cluster.expected_nodes} nodes)"
    )


FABRIC_RULES: tuple[Callable[[Fabric], Iterable[Finding]], ...] = (
    block_overlaps,
    private_blocks_routable,
    private_blocks_public,
    private_blocks_in_use,
    node_block_not_routable,
    data_plane_interfaces,
    secondary_on_management,
    unknown_parent,
    pods_per_node,
    dual_stack,
)

PLAN_RULES: tuple[Callable[[Plan], Iterable[Finding]], ...] = (
    previous_overlaps,
    allocation_overlaps,
    allocation_outside_block,
    blocks_exhausted,
    blocks_fragmented,
    node_block_fragmentation,
    node_capacity,
    node_subnet_beyond_seed,
    pod_capacity,
    multus_capacity,
)


def check_fabric(fabric: Fabric) -> list[Finding]:
    """The findings of the input alone."""
    return [finding for rule in FABRIC_RULES for finding in rule(fabric)]


def validate(plan: Plan) -> Plan:
    """Fill ``plan.findings``: fabric rules, the planner's own notes, plan rules."""
    plan.findings = group_repeated(
        [
            *check_fabric(plan.fabric),
            *plan.notes,
            *(finding for rule in PLAN_RULES for finding in rule(plan)),
        ]
    )
    return plan


def _fragment_message(short: Shortfall) -> str:
    largest = short.largest_free
    biggest = f"/{largest}" if largest is not None else "nothing"
    text = (
        f"{short.kind} block {short.block} has {short.free_addresses} free addresses but no free "
        f"/{short.length} for the {ALLOCATED_AS[short.kind]} of {_owner(short.kind, short.owner)}: "
        f"the largest free prefix is {biggest}"
    )
    if short.kind is BlockKind.NODE and largest is not None:
        text += (
            f", which limits cluster {short.owner} to {sizing.usable(largest, short.version)} nodes"
        )
    return text


def _is_private(prefix: IPNetwork) -> bool:
    return any(prefix.subnet_of(p) for p in PRIVATE_SPACE[prefix.version])  # type: ignore[arg-type]


def _overlapping(prefix: IPNetwork, others: Iterable[IPNetwork]) -> list[IPNetwork]:
    # Integers, not ipaddress.overlaps: an in_use list may hold a hundred thousand prefixes.
    low, high = int(prefix.network_address), int(prefix.broadcast_address)
    return [
        o
        for o in others
        if o.version == prefix.version
        and int(o.network_address) <= high
        and low <= int(o.broadcast_address)
    ]


def _some(what: str, prefixes: list[IPNetwork]) -> str:
    """One finding for a list, not a line per entry: the first few and how many."""
    if len(prefixes) == 1:
        return f"{what} {prefixes[0]}"
    shown = ", ".join(map(str, prefixes[:SHOWN]))
    more = f" and {len(prefixes) - SHOWN} more" if len(prefixes) > SHOWN else ""
    return f"{len(prefixes)} {what}es ({shown}{more})"


def group_repeated(findings: list[Finding], keep: int = GROUP_AFTER) -> list[Finding]:
    """At most ``keep`` findings per rule and severity, then one that says how many more.

    A long input (an in_use list, a thousand clusters) must not print a line per
    entry; the first ones show the pattern, the count says how far it goes.
    """
    seen: dict[tuple[Severity, str], int] = {}
    out = []
    for finding in findings:
        key = (finding.severity, finding.rule)
        seen[key] = seen.get(key, 0) + 1
        if seen[key] <= keep:
            out.append(finding)
    for (severity, rule), count in seen.items():
        if count > keep:
            message = f"and {count - keep} more {rule} findings like the {keep} above"
            out.append(Finding(severity, rule, message))
    return out


def _describe(item: Allocation | IPNetwork) -> str:
    return _label(item) if isinstance(item, Allocation) else f"in-use prefix {item}"


def _owner(kind: BlockKind, owner: str) -> str:
    # Multus owners read "cluster/network" already.
    return owner if kind is BlockKind.MULTUS else f"cluster {owner}"


def _label(alloc: Allocation) -> str:
    return f"{ALLOCATED_AS[alloc.kind]} {alloc.prefix} of {_owner(alloc.kind, alloc.owner)}"


def _families(versions: set[int]) -> str:
    return ", ".join(f"IPv{v}" for v in sorted(versions)) or "none"
