"""The fabric a planner reads: blocks, clusters, nodes' interfaces, secondary networks.

Every address is an ``ipaddress`` value. A block holds at most one prefix per
IP family, so a dual-stack block is a pair (IPv4, IPv6).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from ipaddress import IPv4Network, IPv6Network

IPNetwork = IPv4Network | IPv6Network

#: The seed: one management interface and nine vNICs for the data plane (a VM has ten).
DEFAULT_VNICS = 10

#: Kubernetes (kube-apiserver --service-cluster-ip-range) takes at most 20 host bits.
MAX_SERVICE_PREFIX = {4: 12, 6: 108}

#: Antrea NodeIPAM accepts per-node masks in these ranges (nodeCIDRMaskSizeIPv4/IPv6).
NODE_POD_PREFIX_RANGE = {4: (16, 30), 6: (64, 126)}


class BlockKind(StrEnum):
    """The four fabric blocks of the seed."""

    NODE = "node"
    POD = "pod"
    SERVICE = "service"
    MULTUS = "multus"


class IpamScope(StrEnum):
    """Where a secondary network's addresses are managed (the seed: per node by default)."""

    PER_NODE = "per-node"
    CLUSTER_WIDE = "cluster-wide"


class LinkKind(StrEnum):
    """The secondary interface's kind; the CNI plugin is ``multinic-<kind>``."""

    IPVLAN = "ipvlan"
    MACVLAN = "macvlan"


#: Modes of the reference ipvlan and macvlan plugins ("mode" in their configs).
LINK_MODES = {
    LinkKind.IPVLAN: ("l2", "l3", "l3s"),
    LinkKind.MACVLAN: ("bridge", "private", "vepa", "passthru"),
}


@dataclass(frozen=True)
class Block:
    """One fabric block: at most one prefix per family."""

    kind: BlockKind
    prefixes: tuple[IPNetwork, ...]

    def family(self, version: int) -> IPNetwork | None:
        return next((p for p in self.prefixes if p.version == version), None)

    @property
    def versions(self) -> tuple[int, ...]:
        return tuple(p.version for p in self.prefixes)


@dataclass(frozen=True)
class Interfaces:
    """A node's interfaces: the management one and those left for the data plane."""

    management: str
    data_plane: tuple[str, ...]
    vnics: int = DEFAULT_VNICS


@dataclass(frozen=True)
class SecondaryNetwork:
    """A Multus network of a cluster: its parent interface, link kind and addressing."""

    name: str
    master: str
    kind: LinkKind
    mode: str
    expected_addresses: int
    ipam: IpamScope
    #: Explicit range sizes by family (4 or 6); otherwise sized from the expected addresses.
    prefix: dict[int, int]


@dataclass(frozen=True)
class Cluster:
    """One Kubernetes cluster of the fabric."""

    name: str
    expected_nodes: int
    max_nodes: int
    fixed_size: bool
    pods_per_node: int
    interfaces: Interfaces
    networks: tuple[SecondaryNetwork, ...]
    #: Explicit node subnet and service CIDR sizes by family.
    node_prefix: dict[int, int]
    service_prefix: dict[int, int]


@dataclass(frozen=True)
class Fabric:
    """An NSX-T fabric (or any routed domain): its blocks and the clusters planned in them."""

    name: str
    node: Block
    pod: Block
    service: Block
    multus: Block
    routable: tuple[IPNetwork, ...]
    in_use: tuple[IPNetwork, ...]
    #: Per-node pod CIDR size by family (the seed: a /24 per node; IPv6 /64).
    node_pod_prefix: dict[int, int]
    #: Default service CIDR size per cluster by family.
    service_prefix: dict[int, int]
    clusters: tuple[Cluster, ...]

    def block(self, kind: BlockKind) -> Block:
        return {
            BlockKind.NODE: self.node,
            BlockKind.POD: self.pod,
            BlockKind.SERVICE: self.service,
            BlockKind.MULTUS: self.multus,
        }[kind]

    @property
    def blocks(self) -> tuple[Block, ...]:
        return (self.node, self.pod, self.service, self.multus)
