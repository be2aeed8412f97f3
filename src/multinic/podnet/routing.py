"""Routes to the other nodes' pod CIDRs: host-gw when on the same L2 segment, VXLAN otherwise.

A peer is *adjacent* when its underlay address lies in a subnet the uplink
holds: the kernel can ARP for it, so its pod CIDR is routed straight via its
address (host-gw, no encapsulation). Any other peer is reached through one
kernel vxlan device (unicast, no multicast group, no learning): each remote
node's VTEP is programmed from the node list as flannel does it, with a
route ``CIDR via VTEP-IP dev vxlan onlink``, a permanent neighbour entry
``VTEP-IP -> VTEP-MAC`` and an FDB entry ``VTEP-MAC -> underlay address``.
A VTEP's IP is its pod CIDR's network address and its MAC is derived from
the node's underlay address, so nothing but the node list is exchanged.

Reconciling compares what the kernel holds (routes of our protocol number,
the vxlan's FDB and permanent neighbours) with what the node list asks for,
and changes only the difference: a node that leaves loses its entries on
every other node at the next resync.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from multinic import dataplane as dp
from multinic.dataplane.neighbours import NUD_PERMANENT
from multinic.podnet.config import IPNetwork
from multinic.podnet.registry import IPAddress, NodeEntry

#: ``proto`` of our routes (``ip route`` shows it as 77): how we tell ours from the rest.
RTPROT_PODNET = 77


def vtep_mac(address: IPAddress) -> str:
    """A locally administered unicast MAC from the node's underlay address (its last 4 bytes)."""
    tail = address.packed[-4:]
    return ":".join(f"{b:02x}" for b in (0x0E, 0x6D, *tail))


def vtep_ip(cidr: IPNetwork) -> IPAddress:
    return cidr.network_address


class RouteTo(NamedTuple):
    dst: IPNetwork
    gateway: IPAddress
    device: str
    onlink: bool


class VtepPeer(NamedTuple):
    """A remote VTEP: its inner address, MAC, and underlay address."""

    ip: IPAddress
    mac: str
    underlay: IPAddress


class Wanted(NamedTuple):
    routes: tuple[RouteTo, ...]
    vteps: tuple[VtepPeer, ...]


def adjacent(peer: IPAddress, subnets: Sequence[IPNetwork]) -> bool:
    return any(peer.version == s.version and peer in s for s in subnets)


def wanted(
    me: NodeEntry,
    peers: Sequence[NodeEntry],
    subnets: Sequence[IPNetwork],
    *,
    mode: str,
    uplink: str,
    vxlan: str,
) -> Wanted:
    """What the kernel should hold for ``peers`` (``me`` excluded) in ``mode``."""
    routes: list[RouteTo] = []
    vteps: list[VtepPeer] = []
    for peer in peers:
        if peer.name == me.name:
            continue
        direct = mode == "host-gw" or (mode == "auto" and adjacent(peer.address, subnets))
        for cidr in peer.pod_cidrs:
            if cidr.version != peer.address.version:
                continue  # an IPv6 CIDR over an IPv4 underlay needs a v6 address: not carried
            if direct:
                routes.append(RouteTo(cidr, peer.address, uplink, onlink=False))
            else:
                routes.append(RouteTo(cidr, vtep_ip(cidr), vxlan, onlink=True))
                vteps.append(VtepPeer(vtep_ip(cidr), vtep_mac(peer.address), peer.address))
    return Wanted(tuple(routes), tuple(vteps))


def our_routes(ns: dp.Netns) -> list[dp.Route]:
    return [r for r in dp.list_routes(ns) if r.protocol == RTPROT_PODNET]


def apply(ns: dp.Netns, want: Wanted, vxlan: str | None) -> list[str]:
    """Make the kernel hold ``want``; returns what changed, for the log."""
    changed: list[str] = []
    index = {link.name: link.ifindex for link in dp.list_links(ns)}
    held = {(r.dst, r.gateway, r.oif): r for r in our_routes(ns)}
    desired = {(r.dst, r.gateway, index.get(r.device)): r for r in want.routes}
    for key, route in held.items():
        if key not in desired:
            dp.delete_route(ns, route.dst, gateway=route.gateway, missing_ok=True)
            changed.append(f"route {route.dst} via {route.gateway} removed")
    for key, r in desired.items():
        if key not in held:
            dp.replace_route(
                ns, r.dst, gateway=r.gateway, oif=r.device, protocol=RTPROT_PODNET, onlink=r.onlink
            )
            changed.append(f"route {r.dst} via {r.gateway} dev {r.device}")
    if vxlan is not None and vxlan in index:
        changed.extend(_apply_vteps(ns, want.vteps, vxlan))
    return changed


def _apply_vteps(ns: dp.Netns, vteps: Sequence[VtepPeer], vxlan: str) -> list[str]:
    changed = []
    fdb: set[tuple[str, IPAddress]] = {
        (e.mac, e.dst) for e in dp.list_fdb(ns, vxlan) if e.dst is not None and e.mac
    }
    neigh: set[tuple[IPAddress, str]] = {
        (e.dst, e.mac)
        for e in dp.list_neighbours(ns, vxlan)
        if e.dst is not None and e.mac and e.state & NUD_PERMANENT
    }
    want_fdb = {(v.mac, v.underlay) for v in vteps}
    want_neigh = {(v.ip, v.mac) for v in vteps}
    for mac, dst in fdb - want_fdb:
        dp.delete_fdb(ns, vxlan, mac, dst, missing_ok=True)
        changed.append(f"fdb {mac} dst {dst} removed")
    for ip, _mac in neigh - want_neigh:
        dp.delete_neighbour(ns, vxlan, ip, missing_ok=True)
        changed.append(f"neighbour {ip} removed")
    for mac, dst in want_fdb - fdb:
        dp.replace_fdb(ns, vxlan, mac, dst)
        changed.append(f"fdb {mac} dst {dst}")
    for ip, mac in want_neigh - neigh:
        dp.replace_neighbour(ns, vxlan, ip, mac)
        changed.append(f"neighbour {ip} lladdr {mac}")
    return changed


def uplink_subnets(ns: dp.Netns, uplink: str) -> list[IPNetwork]:
    return [a.network for a in dp.list_addresses(ns, uplink) if not a.ip.is_link_local]


def uplink_address(ns: dp.Netns, uplink: str) -> IPAddress:
    """The node's underlay address: the uplink's first global IPv4 (else IPv6) address."""
    found = sorted(
        (a for a in dp.list_addresses(ns, uplink) if not a.ip.is_link_local),
        key=lambda a: a.version,
    )
    if not found:
        raise dp.DataplaneError(f"podnet: uplink {uplink} has no address", interface=uplink)
    return found[0].ip
