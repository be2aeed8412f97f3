"""What a lab is made of, computed from the address plan before anything is created.

Pure: names and addresses only. A lab is one cluster of a fabric file
(``multinic plan``): its node subnet gives the nodes' management addresses,
its pod CIDR is the pod block the nodes' /24s come from, its service CIDR is
kept out of egress SNAT, and its secondary networks (their Multus ranges)
become NetworkAttachmentDefinitions. Every name starts with the lab's name,
so labs never collide and ``lab down`` knows what is its own.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from multinic.plan.model import IpamScope
from multinic.plan.result import ClusterPlan, NetworkPlan

#: The seed: one management vNIC, up to nine for the data plane.
MAX_DATA_PLANE = 9
#: A routed underlay gives each node its own /28 of the node subnet.
ROUTED_SLICE = 28
#: Where the lab's state and files live (tmpfs: a reboot forgets a lab with its namespaces).
STATE_ROOT = Path("/run/multinic-lab")
POD_NAMESPACE = "cnf"
#: How the lab attaches secondaries: macvlan (bridge) on any kernel, or the link type
#: and mode the plan gives each network (the seed's ipvlan l2/l3: needs a kernel with ipvlan).
SECONDARY_TYPES = ("macvlan", "planned")


class LabSpecError(ValueError):
    """The requested lab does not fit the plan or the machine."""


@dataclass(frozen=True)
class NodeLayout:
    index: int
    name: str  # the Kubernetes node name
    netns: str
    address: ipaddress.IPv4Interface
    #: Routed underlay: the underlay's address on this node's segment (the node's gateway).
    gateway: ipaddress.IPv4Interface | None
    pods: tuple[str, ...]  # pod names, also their namespaces' suffixes
    #: Dual-stack plan on an L2 underlay: the node's IPv6 management address too.
    address6: ipaddress.IPv6Interface | None = None


@dataclass(frozen=True)
class SecondaryLayout:
    name: str
    master: str  # the node's data-plane interface (the plan's)
    planned_type: str  # what the plan asks for (ipvlan on the seed's nodes)
    mode: str
    ipam: str  # "cluster-wide" or "per-node"
    ranges: tuple[str, ...]


@dataclass(frozen=True)
class LabLayout:
    name: str
    fabric: str
    cluster: str
    underlay: str  # "l2" (one management segment: host-gw) or "routed" (VXLAN)
    mode: str  # podnet mode: auto, host-gw or vxlan
    node_subnet: ipaddress.IPv4Network
    pod_block: tuple[str, ...]
    service_block: tuple[str, ...]
    management: str
    data_plane: tuple[str, ...]
    secondaries: tuple[SecondaryLayout, ...]
    nodes: tuple[NodeLayout, ...] = field(default_factory=tuple)
    secondary_type: str = "macvlan"  # one of SECONDARY_TYPES
    #: The pods' Kubernetes namespace (against an API server: the lab's own, named as the lab).
    namespace: str = POD_NAMESPACE

    @property
    def underlay_netns(self) -> str:
        return f"{self.name}-ul"

    @property
    def root(self) -> Path:
        return STATE_ROOT / self.name

    def pod_netns(self, pod: str) -> str:
        return f"{self.name}-{pod}"

    def all_pods(self) -> list[tuple[NodeLayout, str]]:
        return [(node, pod) for node in self.nodes for pod in node.pods]

    def link(self, secondary: SecondaryLayout) -> tuple[str, str]:
        """(link type, mode) the lab attaches ``secondary`` with."""
        if self.secondary_type == "planned":
            return secondary.planned_type, secondary.mode
        return "macvlan", "bridge"


def _v4(prefixes: dict[int, ipaddress.IPv4Network | ipaddress.IPv6Network]) -> tuple[str, ...]:
    return tuple(str(prefixes[v]) for v in sorted(prefixes))


def _secondary(np: NetworkPlan) -> SecondaryLayout:
    net = np.network
    return SecondaryLayout(
        name=net.name,
        master=net.master,
        planned_type=net.kind.value,
        mode=net.mode,
        ipam="per-node" if net.ipam is IpamScope.PER_NODE else "cluster-wide",
        ranges=_v4(np.ranges),
    )


def _address6(cp: ClusterPlan, underlay: str, index: int) -> ipaddress.IPv6Interface | None:
    """Node ``index``'s IPv6 address when the plan's node subnet has one and the nodes share
    one segment (IPv6 pod CIDRs then route host-gw); a routed underlay stays IPv4, so they
    cross it through VXLAN."""
    subnet = cp.node.get(6)
    if subnet is None or underlay == "routed":
        return None
    return ipaddress.IPv6Interface(f"{subnet.network_address + 10 + index}/{subnet.prefixlen}")


def lab_layout(
    name: str,
    cp: ClusterPlan,
    fabric: str,
    *,
    nodes: int,
    pods: int,
    secondaries: int,
    underlay: str,
    mode: str,
    secondary_type: str = "macvlan",
) -> LabLayout:
    """The layout of ``nodes`` x ``pods`` on cluster ``cp`` of the plan."""
    if not name or len(name) > 12 or not name.replace("-", "").isalnum() or not name[0].isalpha():
        raise LabSpecError(f"lab name {name!r}: 1-12 letters, digits and '-', a letter first")
    if 4 not in cp.node or 4 not in cp.pod:
        raise LabSpecError(f"cluster {cp.name} has no IPv4 node subnet or pod CIDR in the plan")
    if not 1 <= nodes <= min(cp.cluster.max_nodes, 14):
        raise LabSpecError(
            f"{nodes} nodes: the lab runs 1 to {min(cp.cluster.max_nodes, 14)} "
            f"(cluster {cp.name} plans {cp.cluster.max_nodes})"
        )
    if not 0 <= pods <= min(cp.cluster.pods_per_node, 50):
        raise LabSpecError(f"{pods} pods per node: the lab runs 0 to 50")
    if not 0 <= secondaries <= len(cp.networks):
        raise LabSpecError(
            f"{secondaries} secondary networks: cluster {cp.name} plans {len(cp.networks)}"
        )
    if secondary_type not in SECONDARY_TYPES:
        raise LabSpecError(
            f"secondary type {secondary_type!r}: one of {', '.join(SECONDARY_TYPES)}"
        )
    chosen = tuple(_secondary(np) for np in cp.networks[:secondaries])
    subnet = ipaddress.IPv4Network(cp.node[4])
    if underlay == "routed" and subnet.prefixlen > ROUTED_SLICE - 4:
        raise LabSpecError(f"node subnet {subnet} is too small to give every node a /28")
    node_list = []
    for i in range(1, nodes + 1):
        if underlay == "routed":
            piece = list(subnet.subnets(new_prefix=ROUTED_SLICE))[i]
            gateway = ipaddress.IPv4Interface(f"{piece.network_address + 1}/{ROUTED_SLICE}")
            address = ipaddress.IPv4Interface(f"{piece.network_address + 2}/{ROUTED_SLICE}")
        else:
            gateway = None
            host = subnet.network_address + 10 + i
            address = ipaddress.IPv4Interface(f"{host}/{subnet.prefixlen}")
        node_list.append(
            NodeLayout(
                index=i,
                name=f"node-{i}",
                netns=f"{name}-n{i}",
                address=address,
                gateway=gateway,
                pods=tuple(f"pod-{i}-{j}" for j in range(1, pods + 1)),
                address6=_address6(cp, underlay, i),
            )
        )
    return LabLayout(
        name=name,
        fabric=fabric,
        cluster=cp.name,
        underlay=underlay,
        mode=mode,
        node_subnet=subnet,
        pod_block=_v4(cp.pod),
        service_block=_v4(cp.service),
        management=cp.cluster.interfaces.management,
        data_plane=tuple(dict.fromkeys(s.master for s in chosen)),
        secondaries=chosen,
        nodes=tuple(node_list),
        secondary_type=secondary_type,
    )
