"""One node's primary network: join, set up, write the cluster conflist, reconcile, leave.

:class:`PodNetwork` owns, in the node's namespace: the pod bridge (the
gateway of the node's pod CIDR), the vxlan device (modes ``auto`` and
``vxlan``), the routes of protocol 77 to other nodes, the vxlan's FDB and
neighbour entries, and the ``inet multinic_podnet`` nftables table. Pods
are attached by ``multinic-bridge`` + ``multinic-host-local`` from the
conflist it writes (the meta plugin's ``clusterNetwork``).

Why a bridge and not routed veths (ptp): measured side by side
(benchmarks/podnet_attach.py, docs/benchmarks.md), 50 pods on one node cost
the same to ADD and DEL either way, and a TCP stream between two pods of a
node runs at about half the rate when routed; the bridge also gives pods of
one node L2 adjacency (no per-pod host route to add and remove), keeps one
gateway address per node rather than one per pod, and is what the seed's
Antrea does (its OVS bridge, one gateway interface per node).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from multinic import dataplane as dp
from multinic.cni.errors import InvalidConfigError
from multinic.podnet import routing
from multinic.podnet.config import PodNetConfig, pod_mtu
from multinic.podnet.egress import ensure_egress, remove_egress
from multinic.podnet.registry import KubeNodeList, NodeEntry, NodeList, StoreRegistry


def _ensure_addresses(
    ns: dp.Netns, link: dp.Link, wanted: list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]
) -> None:
    """Add the missing ones; IPv6 without duplicate detection: the addresses are ours by
    construction (from the node's own CIDR) and a tentative gateway would not answer
    the pods' first neighbour solicitations."""
    present = set(dp.list_addresses(ns, link))
    for address in wanted:
        if address not in present:
            dp.add_address(ns, link, address, nodad=address.version == 6)


class PodNetwork:
    """The primary network of the node ``config.node_name``, in the namespace at ``netns``."""

    def __init__(
        self,
        config: PodNetConfig,
        nodes: NodeList,
        registry: StoreRegistry | None,
        netns: str | None = None,
    ) -> None:
        self.config = config
        self.nodes = nodes
        self.registry = registry
        self.netns = netns
        self.me: NodeEntry | None = None
        self.mtu = 1500

    @contextlib.contextmanager
    def _ns(self) -> Iterator[dp.Netns]:
        ns = dp.host_netns() if self.netns is None else dp.open_netns(self.netns)
        with ns:
            yield ns

    @property
    def uses_vxlan(self) -> bool:
        return self.config.mode != "host-gw"

    def _joined(self) -> NodeEntry:
        if self.me is None:
            raise InvalidConfigError("podnet: the node has not joined yet")
        return self.me

    def join(self) -> NodeEntry:
        """Register this node (standalone) or find its CIDRs (API); set up its devices."""
        with self._ns() as ns:
            addresses = routing.uplink_addresses(ns, self.config.uplink)
            uplink_mtu = dp.get_link(ns, self.config.uplink).mtu
        if self.registry is not None:
            me = self.registry.join(self.config.node_name, addresses[0], addresses)
        elif isinstance(self.nodes, KubeNodeList):
            me = self.nodes.find(self.config.node_name)
        else:
            raise InvalidConfigError("podnet: no registry and no API to find this node's CIDRs")
        self.mtu = pod_mtu(uplink_mtu, self.config.mode, me.address.version)
        self.me = me
        self._set_up(me)
        return me

    def _set_up(self, me: NodeEntry) -> None:
        with self._ns() as ns:
            for version in {c.version for c in me.pod_cidrs}:
                key = "net.ipv4.ip_forward" if version == 4 else "net.ipv6.conf.all.forwarding"
                dp.write_sysctl(ns, key, "1")
            bridge = dp.ensure_bridge(ns, self.config.bridge, mtu=self.mtu)
            gateways = [
                ipaddress.ip_interface(f"{cidr.network_address + 1}/{cidr.prefixlen}")
                for cidr in me.pod_cidrs
            ]
            _ensure_addresses(ns, bridge, gateways)
            if self.uses_vxlan:
                self._ensure_vxlan(ns, me)
            dp.run_in_netns(
                ns,
                lambda: ensure_egress(
                    me.pod_cidrs,
                    [*self.config.pod_block, *self.config.service_block] or list(me.pod_cidrs),
                    me.addresses or (me.address,),
                ),
            )

    def _ensure_vxlan(self, ns: dp.Netns, me: NodeEntry) -> None:
        name, mac = self.config.vxlan_name, routing.vtep_mac(me.address)
        link = dp.find_link(ns, name)
        if link is not None and (link.kind != "vxlan" or link.mac != mac):
            dp.delete_link(ns, link)  # a leftover of another address or config
            link = None
        if link is None:
            link = dp.create_vxlan(
                ns,
                name,
                self.config.vni,
                parent=self.config.uplink,
                local=me.address,
                port=self.config.vxlan_port,
                learning=False,
                mtu=self.mtu,
                mac=mac,
            )
        # A VTEP address per pod CIDR, IPv6 too: the tunnel carries either family.
        vteps = [
            ipaddress.ip_interface(f"{routing.vtep_ip(cidr)}/{cidr.max_prefixlen}")
            for cidr in me.pod_cidrs
        ]
        _ensure_addresses(ns, link, vteps)
        dp.set_up(ns, link)

    def conflist(self) -> dict[str, Any]:
        """The cluster network: multinic-bridge + multinic-host-local on the node's CIDRs."""
        me = self._joined()
        default = {4: "0.0.0.0/0", 6: "::/0"}
        return {
            "cniVersion": "1.1.0",
            "name": self.config.network_name,
            "plugins": [
                {
                    "type": "multinic-bridge",
                    "bridge": self.config.bridge,
                    "isGateway": True,
                    "isDefaultGateway": True,
                    "mtu": self.mtu,
                    "ipam": {
                        "type": "multinic-host-local",
                        "ranges": [[{"subnet": str(c)}] for c in me.pod_cidrs],
                        "dataDir": str(self.config.data_dir / "host-local"),
                    },
                }
            ],
            "podnet": {
                "node": me.name,
                "podCIDRs": [str(c) for c in me.pod_cidrs],
                "routes": [default[c.version] for c in me.pod_cidrs],
            },
        }

    def write_conflist(self, conf_dir: Path) -> Path:
        """Atomically, so the meta plugin never reads half of it."""
        path = conf_dir / f"10-{self.config.network_name}.conflist"
        conf_dir.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}")
        partial.write_text(json.dumps(self.conflist(), indent=2))
        partial.replace(path)
        return path

    def reconcile(self) -> list[str]:
        """Routes, FDB and neighbours to match the node list; what changed."""
        me = self._joined()
        peers = self.nodes.nodes()
        with self._ns() as ns:
            subnets = routing.uplink_subnets(ns, self.config.uplink)
            want = routing.wanted(
                me,
                peers,
                subnets,
                mode=self.config.mode,
                uplink=self.config.uplink,
                vxlan=self.config.vxlan_name,
            )
            return routing.apply(ns, want, self.config.vxlan_name if self.uses_vxlan else None)

    def leave(self, conf_dir: Path | None = None) -> None:
        """The node leaves: deregister, remove everything of ours from its namespace."""
        if self.registry is not None:
            self.registry.leave(self.config.node_name)
        self.tear_down(conf_dir)

    def tear_down(self, conf_dir: Path | None = None) -> None:
        with self._ns() as ns:
            for route in routing.our_routes(ns):
                dp.delete_route(ns, route.dst, gateway=route.gateway, missing_ok=True)
            dp.delete_link(ns, self.config.vxlan_name, missing_ok=True)
            dp.delete_link(ns, self.config.bridge, missing_ok=True)
            dp.run_in_netns(ns, remove_egress)
        if conf_dir is not None:
            (conf_dir / f"10-{self.config.network_name}.conflist").unlink(missing_ok=True)
