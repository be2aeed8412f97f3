"""A plan: what each cluster got from each block, what could not be allocated, the findings."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum

from multinic.plan.model import BlockKind, Cluster, Fabric, IPNetwork, SecondaryNetwork


class Severity(StrEnum):
    """Errors fail the run (exit 1); warnings are printed and the run succeeds."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    """One validation result: the rule it comes from and a message naming both sides."""

    severity: Severity
    rule: str
    message: str


@dataclass(frozen=True)
class Allocation:
    """One prefix given to one owner (a cluster, or ``cluster/network`` for Multus)."""

    kind: BlockKind
    owner: str
    prefix: IPNetwork


@dataclass(frozen=True)
class Shortfall:
    """A request the block could not satisfy, with what the block had left."""

    kind: BlockKind
    owner: str
    version: int
    length: int
    block: IPNetwork
    largest_free: int | None
    free_addresses: int


@dataclass
class NetworkPlan:
    """A secondary network's ranges, one per family of the Multus block."""

    network: SecondaryNetwork
    ranges: dict[int, IPNetwork] = field(default_factory=dict)


@dataclass
class ClusterPlan:
    """What one cluster got: node subnet, pod CIDR, service CIDR, Multus ranges, by family."""

    cluster: Cluster
    node: dict[int, IPNetwork] = field(default_factory=dict)
    pod: dict[int, IPNetwork] = field(default_factory=dict)
    service: dict[int, IPNetwork] = field(default_factory=dict)
    networks: list[NetworkPlan] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.cluster.name

    def allocations(self) -> Iterator[Allocation]:
        for kind, got in (
            (BlockKind.NODE, self.node),
            (BlockKind.POD, self.pod),
            (BlockKind.SERVICE, self.service),
        ):
            for version in sorted(got):
                yield Allocation(kind, self.name, got[version])
        for net in self.networks:
            for version in sorted(net.ranges):
                yield Allocation(
                    BlockKind.MULTUS, f"{self.name}/{net.network.name}", net.ranges[version]
                )


@dataclass
class Plan:
    """The planner's output for one fabric."""

    fabric: Fabric
    clusters: list[ClusterPlan]
    shortfalls: list[Shortfall] = field(default_factory=list)
    #: Free prefixes left in each block prefix, keyed by (block kind, IP version).
    free: dict[tuple[BlockKind, int], list[IPNetwork]] = field(default_factory=dict)
    #: The previous plan's allocations as read (``--previous``), kept or not.
    previous: list[Allocation] = field(default_factory=list)
    #: What the planner itself had to say (sizes clamped, previous allocations moved).
    notes: list[Finding] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def allocations(self) -> Iterator[Allocation]:
        for cluster in self.clusters:
            yield from cluster.allocations()

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.ERROR]
