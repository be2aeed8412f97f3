"""How large each allocation is: the seed's sizes and the arithmetic of usable addresses."""

from __future__ import annotations

from multinic.plan.model import (
    MAX_SERVICE_PREFIX,
    Cluster,
    Fabric,
    IpamScope,
    IPNetwork,
    SecondaryNetwork,
)

BITS = {4: 32, 6: 128}

#: Addresses of a subnet that no host gets: IPv4 network, gateway and broadcast;
#: IPv6 subnet-router anycast and gateway.
RESERVED = {4: 3, 6: 2}

#: The seed: a /24 per cluster from the Node block; IPv6 subnets are /64.
DEFAULT_NODE_PREFIX = {4: 24, 6: 64}


def ceil_log2(count: int) -> int:
    """Bits needed to number ``count`` things (0 for one or none)."""
    return max(count - 1, 0).bit_length()


def usable(length: int, version: int) -> int:
    """Host addresses of a subnet of ``length`` once its reserved ones are taken out."""
    return max((1 << (BITS[version] - length)) - RESERVED[version], 0)


def usable_in(prefix: IPNetwork) -> int:
    return usable(prefix.prefixlen, prefix.version)


def prefix_for_hosts(count: int, version: int) -> int:
    """The longest prefix whose subnet still holds ``count`` hosts."""
    return BITS[version] - ceil_log2(count + RESERVED[version])


def node_prefix(cluster: Cluster, version: int) -> int:
    """A cluster's node subnet: a /24 (IPv6 /64), sized to the nodes when fixed or larger."""
    if version in cluster.node_prefix:
        return cluster.node_prefix[version]
    needed = prefix_for_hosts(cluster.max_nodes, version)
    if cluster.fixed_size and version == 4:  # IPv6 subnets stay /64 (SLAAC, conventions)
        return needed
    return min(needed, DEFAULT_NODE_PREFIX[version])


def pod_prefix(fabric: Fabric, cluster: Cluster, version: int) -> int:
    """A cluster's pod CIDR: room for one per-node prefix for each of its nodes at most."""
    return fabric.node_pod_prefix[version] - ceil_log2(cluster.max_nodes)


def asked_service_prefix(fabric: Fabric, cluster: Cluster, version: int) -> int:
    return cluster.service_prefix.get(version, fabric.service_prefix[version])


def service_prefix(fabric: Fabric, cluster: Cluster, version: int) -> int:
    """The service CIDR size asked for, but never larger than Kubernetes accepts."""
    return max(asked_service_prefix(fabric, cluster, version), MAX_SERVICE_PREFIX[version])


def per_node_share(network: SecondaryNetwork, cluster: Cluster) -> int:
    """Addresses each node needs of a per-node network: its share of the expected ones."""
    return -(-network.expected_addresses // max(cluster.expected_nodes, 1))


def multus_prefix(network: SecondaryNetwork, cluster: Cluster, version: int) -> int:
    """A secondary network's range: the expected addresses, or (per node) a share per node."""
    if version in network.prefix:
        return network.prefix[version]
    count = network.expected_addresses
    if network.ipam is IpamScope.PER_NODE:
        count = per_node_share(network, cluster) * cluster.max_nodes
    return prefix_for_hosts(count, version)


def node_slices(prefix: IPNetwork, max_nodes: int) -> list[tuple[int, int]]:
    """Per-node address slices (first, last as integers) of a per-node network's range."""
    first = int(prefix.network_address) + 2  # after the network (anycast) and gateway addresses
    share = usable_in(prefix) // max(max_nodes, 1)
    return [
        (first + i * share, first + (i + 1) * share - 1) for i in range(max_nodes if share else 0)
    ]
