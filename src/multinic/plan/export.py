"""The files that make a plan real, per cluster.

``<dir>/<cluster>/`` gets:

- ``kubeadm-config.yaml``: kubeadm ``ClusterConfiguration`` (v1beta3) networking;
- ``antrea-controller.conf``: the ``nodeIPAM`` section of Antrea's controller config;
- ``network-attachment-definitions.yaml``: a NetworkAttachmentDefinition per secondary network;
- ``multus-net.d/node-<i>/<network>.conf``: per-node networks' configs, one per node slot;
- ``multinic-node.yaml``: multinic's node config (see docs/plan.md).

Per-node (host-local) networks cannot put their range in the NAD: a NAD is one
object for every node, so every node would hand out the same addresses. Their
NAD carries no ``spec.config``, which tells Multus to read the network's config
from the node's own ``/etc/cni/multus/net.d`` (the file whose ``name`` is the
NAD's), and each node slot gets a config narrowed to its own slice of the range.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Any

from multinic.plan import sizing
from multinic.plan.model import IpamScope, IPNetwork
from multinic.plan.pool import network
from multinic.plan.result import ClusterPlan, NetworkPlan, Plan

#: The CNI version of exported network configs (Multus and the runtimes speak it).
CNI_VERSION = "1.0.0"
#: Where each node slot's configs go: Multus reads a NAD without spec.config from
#: its node's /etc/cni/multus/net.d.
NODE_CONF_DIR = "multus-net.d"
NODE_CONFIG_FORMAT = "multinic.node/v1"


def export_cluster(plan: Plan, cp: ClusterPlan) -> dict[str, str]:
    """File name (relative to the cluster's directory) -> text for one cluster."""
    return {
        "kubeadm-config.yaml": _yaml(kubeadm_config(cp), "kubeadm ClusterConfiguration"),
        "antrea-controller.conf": _yaml(
            antrea_node_ipam(plan, cp),
            "merge into antrea-controller.conf (antrea-config ConfigMap)",
        ),
        "network-attachment-definitions.yaml": _yaml_all(
            [network_attachment(np) for np in cp.networks], "kubectl apply -f this file"
        ),
        "multinic-node.yaml": _yaml(node_config(plan, cp), "multinic node config"),
        **node_network_configs(cp),
    }


def write_exports(plan: Plan, directory: Path) -> list[Path]:
    """Write every cluster's files under ``directory/<cluster>/``; the paths written."""
    written = []
    for cp in plan.clusters:
        target = directory / cp.name
        for name, text in export_cluster(plan, cp).items():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            (target / name).write_text(text)
            written.append(target / name)
    return written


def kubeadm_config(cp: ClusterPlan) -> dict[str, Any]:
    """kubeadm's ClusterConfiguration: pod and service subnets (comma-joined when dual-stack)."""
    return {
        "apiVersion": "kubeadm.k8s.io/v1beta3",
        "kind": "ClusterConfiguration",
        "clusterName": cp.name,
        "networking": {"podSubnet": _joined(cp.pod), "serviceSubnet": _joined(cp.service)},
        # Antrea's NodeIPAM hands out node pod CIDRs; two allocators would conflict.
        "controllerManager": {"extraArgs": {"allocate-node-cidrs": "false"}},
    }


def antrea_node_ipam(plan: Plan, cp: ClusterPlan) -> dict[str, Any]:
    """Antrea controller's nodeIPAM: the cluster's pod CIDRs sliced per node."""
    section: dict[str, Any] = {
        "enableNodeIPAM": True,
        "clusterCIDRs": [str(cp.pod[v]) for v in sorted(cp.pod)],
    }
    for version, key in ((4, "serviceCIDR"), (6, "serviceCIDRv6")):
        if version in cp.service:
            section[key] = str(cp.service[version])
    for version, key in ((4, "nodeCIDRMaskSizeIPv4"), (6, "nodeCIDRMaskSizeIPv6")):
        if version in cp.pod:
            section[key] = plan.fabric.node_pod_prefix[version]
    return {"nodeIPAM": section}


def network_attachment(np: NetworkPlan) -> dict[str, Any]:
    """A NetworkAttachmentDefinition: spec.config is a single-plugin CNI config.

    A per-node network's NAD has none: Multus then reads the node's own config
    (``node_network_configs``), so each node hands out only its slice.
    """
    nad: dict[str, Any] = {
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": np.network.name},
    }
    if np.network.ipam is IpamScope.PER_NODE:
        return nad
    return {**nad, "spec": {"config": json.dumps(cni_config(np))}}


def node_network_configs(cp: ClusterPlan) -> dict[str, str]:
    """``multus-net.d/node-<i>/<network>.conf`` for each node slot and per-node network."""
    files = {}
    for np in cp.networks:
        if np.network.ipam is not IpamScope.PER_NODE:
            continue
        for index, ipam in enumerate(_slot_ipams(np, cp.cluster.max_nodes)):
            path = f"{NODE_CONF_DIR}/node-{index}/{np.network.name}.conf"
            files[path] = json.dumps({**cni_config(np), "ipam": ipam}, indent=2) + "\n"
    return files


def _slot_ipams(np: NetworkPlan, max_nodes: int) -> list[dict[str, Any]]:
    # Slot i's host-local ranges: the whole subnet and gateway, its own first..last.
    families = [
        (np.ranges[v], sizing.node_slices(np.ranges[v], max_nodes)) for v in sorted(np.ranges)
    ]
    slots = min(len(slices) for _, slices in families) if families else 0
    ipams = []
    for index in range(slots):
        ranges = []
        for prefix, slices in families:
            first, last = slices[index]
            address = type(prefix.network_address)
            ranges.append(
                [
                    {
                        **_host_local_range(prefix),
                        "rangeStart": str(address(first)),
                        "rangeEnd": str(address(last)),
                    }
                ]
            )
        ipams.append({"type": "multinic-host-local", "ranges": ranges})
    return ipams


def cni_config(np: NetworkPlan) -> dict[str, Any]:
    """``multinic-ipvlan``/``multinic-macvlan`` (the reference's master and mode) with IPAM."""
    net = np.network
    return {
        "cniVersion": CNI_VERSION,
        "name": net.name,
        "type": f"multinic-{net.kind.value}",
        "master": net.master,
        "mode": net.mode,
        "ipam": _ipam(np),
    }


def _ipam(np: NetworkPlan) -> dict[str, Any]:
    ranges = [np.ranges[v] for v in sorted(np.ranges)]
    if np.network.ipam is IpamScope.PER_NODE:
        return {"type": "multinic-host-local", "ranges": [[_host_local_range(r)] for r in ranges]}
    ipam: dict[str, Any] = {"type": "multinic-ipam"}
    if len(ranges) == 1:
        ipam.update(_cluster_range(ranges[0]), gateway=str(_gateway(ranges[0])))
    else:  # dual-stack: Whereabouts' ipRanges
        ipam["ipRanges"] = [_cluster_range(r) for r in ranges]
    return ipam


def _cluster_range(prefix: IPNetwork) -> dict[str, str]:
    first, last = _usable(prefix)
    return {"range": str(prefix), "range_start": first, "range_end": last}


def _host_local_range(prefix: IPNetwork) -> dict[str, str]:
    first, last = _usable(prefix)
    return {
        "subnet": str(prefix),
        "rangeStart": first,
        "rangeEnd": last,
        "gateway": str(_gateway(prefix)),
    }


def _gateway(prefix: IPNetwork) -> IPv4Address | IPv6Address:
    # The first host of every planned subnet is its gateway (sizing.RESERVED counts it).
    return prefix.network_address + 1


def _usable(prefix: IPNetwork) -> tuple[str, str]:
    first = prefix.network_address + 2
    last = prefix.broadcast_address - (1 if prefix.version == 4 else 0)
    return str(first), str(last)


def node_config(plan: Plan, cp: ClusterPlan) -> dict[str, Any]:
    """multinic's node config: the cluster's interfaces, blocks, and each node slot's share."""
    cluster = cp.cluster
    return {
        "format": NODE_CONFIG_FORMAT,
        "fabric": plan.fabric.name,
        "cluster": cp.name,
        "interfaces": {
            "management": cluster.interfaces.management,
            "data_plane": list(cluster.interfaces.data_plane),
        },
        "node_subnets": _list(cp.node),
        "pod_cidrs": _list(cp.pod),
        "service_cidrs": _list(cp.service),
        "networks": [
            {
                "name": np.network.name,
                "type": f"multinic-{np.network.kind.value}",
                "master": np.network.master,
                "mode": np.network.mode,
                "ipam": np.network.ipam.value,
                "ranges": _list(np.ranges),
            }
            for np in cp.networks
        ],
        "nodes": _node_slots(plan, cp),
    }


def _node_slots(plan: Plan, cp: ClusterPlan) -> list[dict[str, Any]]:
    # Slot i gets the i-th per-node pod CIDR and the i-th slice of each per-node range.
    max_nodes = cp.cluster.max_nodes
    slices = {
        np.network.name: [_slices(np.ranges[v], max_nodes) for v in sorted(np.ranges)]
        for np in cp.networks
        if np.network.ipam is IpamScope.PER_NODE
    }
    slots = []
    for index in range(max_nodes):
        slot: dict[str, Any] = {"index": index, "pod_cidrs": _node_pod_cidrs(plan, cp, index)}
        if slices:
            slot["ranges"] = {
                name: [fam[index] for fam in families if index < len(fam)]
                for name, families in slices.items()
            }
        slots.append(slot)
    return slots


def _node_pod_cidrs(plan: Plan, cp: ClusterPlan, index: int) -> list[str]:
    cidrs = []
    for version in sorted(cp.pod):
        cidr = cp.pod[version]
        length = plan.fabric.node_pod_prefix[version]
        start = int(cidr.network_address) + (index << (cidr.max_prefixlen - length))
        cidrs.append(str(network(start, length, version)))
    return cidrs


def _slices(prefix: IPNetwork, max_nodes: int) -> list[dict[str, str]]:
    address = type(prefix.network_address)
    return [
        {"rangeStart": str(address(first)), "rangeEnd": str(address(last))}
        for first, last in sizing.node_slices(prefix, max_nodes)
    ]


def _list(by_version: Mapping[int, IPNetwork]) -> list[str]:
    return [str(by_version[v]) for v in sorted(by_version)]


def _joined(by_version: Mapping[int, IPNetwork]) -> str:
    return ",".join(_list(by_version))


def _yaml(document: Mapping[str, Any], comment: str) -> str:
    import yaml

    return f"# {comment}; written by `multinic plan --export`\n" + yaml.safe_dump(
        dict(document), sort_keys=False
    )


def _yaml_all(documents: list[dict[str, Any]], comment: str) -> str:
    import yaml

    # Wide lines: each NAD's spec.config stays one line of JSON, as people write it.
    body = yaml.safe_dump_all(documents, sort_keys=False, width=1 << 16) if documents else ""
    return f"# {comment}; written by `multinic plan --export`\n" + body
