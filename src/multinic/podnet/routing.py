"""Routes to the other nodes' pod CIDRs: host-gw when on the same L2 segment, VXLAN otherwise.

A peer is *adjacent* when its underlay address lies in a subnet the uplink
holds: the kernel can ARP for it, so its pod CIDR is routed straight via its
address (host-gw, no encapsulation). Any other peer is reached through one
kernel vxlan device (unicast, no multicast group, no learning; IPv4 and IPv6
pod CIDRs alike over the node's first underlay address): each remote
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

from collections.abc import Mapping, Sequence
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


def direct_gateway(
    peer: NodeEntry, cidr: IPNetwork, subnets: Sequence[IPNetwork], mode: str
) -> IPAddress | None:
    """The peer's underlay address to route ``cidr`` via (host-gw), or None: VXLAN.

    Per family: a dual-stack node on one L2 segment routes both of its CIDRs
    host-gw; one with an IPv4 underlay only carries its IPv6 CIDR over VXLAN
    (the inner family does not matter to the tunnel).
    """
    if mode == "vxlan":
        return None
    gateway = peer.underlay(cidr.version)
    if gateway is None or (mode == "auto" and not adjacent(gateway, subnets)):
        return None
    return gateway


def wanted(
    me: NodeEntry,
    peers: Sequence[NodeEntry],
    subnets: Sequence[IPNetwork],
    *,
    mode: str,
    uplink: str,
    vxlan: str,
) -> Wanted:
    """What the kernel should hold for ``peers`` (``me`` excluded) in ``mode``.

    In mode ``host-gw`` a CIDR of a family the peer has no underlay address of
    gets no route: there is no device to carry it.
    """
    routes: list[RouteTo] = []
    vteps: list[VtepPeer] = []
    for peer in peers:
        if peer.name == me.name:
            continue
        for cidr in peer.pod_cidrs:
            gateway = direct_gateway(peer, cidr, subnets, mode)
            if gateway is not None:
                routes.append(RouteTo(cidr, gateway, uplink, onlink=False))
            elif mode != "host-gw":
                # One VTEP MAC per node: its FDB entry serves both families' neighbours.
                routes.append(RouteTo(cidr, vtep_ip(cidr), vxlan, onlink=True))
                vteps.append(VtepPeer(vtep_ip(cidr), vtep_mac(peer.address), peer.address))
    return Wanted(tuple(routes), tuple(vteps))


def our_routes(ns: dp.Netns) -> list[dp.Route]:
    return [r for r in dp.list_routes(ns) if r.protocol == RTPROT_PODNET]


RouteKey = tuple[IPNetwork, IPAddress | None, int | None]


def route_changes(
    held: Sequence[dp.Route], want: Sequence[RouteTo], index: Mapping[str, int]
) -> tuple[list[dp.Route], list[RouteTo]]:
    """(our routes to remove, wanted routes to add); ``index``: link name -> ifindex.

    A route is ours by its protocol (the caller passes only those); one whose
    destination, gateway or device the node list no longer asks for goes.
    """
    have: dict[RouteKey, dp.Route] = {(r.dst, r.gateway, r.oif): r for r in held}
    desired: dict[RouteKey, RouteTo] = {(r.dst, r.gateway, index.get(r.device)): r for r in want}
    return (
        [r for key, r in have.items() if key not in desired],
        [r for key, r in desired.items() if key not in have],
    )


class VtepChanges(NamedTuple):
    fdb_gone: set[tuple[str, IPAddress]]
    neighbours_gone: set[tuple[IPAddress, str]]
    fdb_new: set[tuple[str, IPAddress]]
    neighbours_new: set[tuple[IPAddress, str]]


def vtep_changes(
    fdb: set[tuple[str, IPAddress]],
    neighbours: set[tuple[IPAddress, str]],
    vteps: Sequence[VtepPeer],
) -> VtepChanges:
    """What to remove and add so the vxlan holds exactly ``vteps``: FDB entries per MAC
    (a dual-stack peer's two VTEP addresses share one), neighbours per address."""
    want_fdb = {(v.mac, v.underlay) for v in vteps}
    want_neigh = {(v.ip, v.mac) for v in vteps}
    return VtepChanges(
        fdb - want_fdb, neighbours - want_neigh, want_fdb - fdb, want_neigh - neighbours
    )


def apply(ns: dp.Netns, want: Wanted, vxlan: str | None) -> list[str]:
    """Make the kernel hold ``want``; returns what changed, for the log."""
    changed: list[str] = []
    index = {link.name: link.ifindex for link in dp.list_links(ns)}
    gone, new = route_changes(our_routes(ns), want.routes, index)
    for route in gone:
        dp.delete_route(ns, route.dst, gateway=route.gateway, missing_ok=True)
        changed.append(f"route {route.dst} via {route.gateway} removed")
    for r in new:
        # One peer the kernel will not route to (a gateway off every segment, say)
        # must not cost the routes to all the others: say so, retry next round.
        try:
            dp.replace_route(
                ns, r.dst, gateway=r.gateway, oif=r.device, protocol=RTPROT_PODNET, onlink=r.onlink
            )
        except dp.DataplaneError as exc:
            changed.append(f"route {r.dst} via {r.gateway} dev {r.device} failed: {exc}")
            continue
        changed.append(f"route {r.dst} via {r.gateway} dev {r.device}")
    if vxlan is not None and vxlan in index:
        changed.extend(_apply_vteps(ns, want.vteps, vxlan))
    return changed


def _apply_vteps(ns: dp.Netns, vteps: Sequence[VtepPeer], vxlan: str) -> list[str]:
    changed = []
    fdb = {(e.mac, e.dst) for e in dp.list_fdb(ns, vxlan) if e.dst is not None and e.mac}
    neighbours = {
        (e.dst, e.mac)
        for e in dp.list_neighbours(ns, vxlan)
        if e.dst is not None and e.mac and e.state & NUD_PERMANENT
    }
    todo = vtep_changes(fdb, neighbours, vteps)
    for mac, dst in todo.fdb_gone:
        dp.delete_fdb(ns, vxlan, mac, dst, missing_ok=True)
        changed.append(f"fdb {mac} dst {dst} removed")
    for ip, _mac in todo.neighbours_gone:
        dp.delete_neighbour(ns, vxlan, ip, missing_ok=True)
        changed.append(f"neighbour {ip} removed")
    for mac, dst in todo.fdb_new:
        dp.replace_fdb(ns, vxlan, mac, dst)
        changed.append(f"fdb {mac} dst {dst}")
    for ip, mac in todo.neighbours_new:
        dp.replace_neighbour(ns, vxlan, ip, mac)
        changed.append(f"neighbour {ip} lladdr {mac}")
    return changed


def uplink_subnets(ns: dp.Netns, uplink: str) -> list[IPNetwork]:
    return [a.network for a in dp.list_addresses(ns, uplink) if not a.ip.is_link_local]


def uplink_addresses(ns: dp.Netns, uplink: str) -> tuple[IPAddress, ...]:
    """The node's underlay addresses: the uplink's first global one of each family, IPv4
    first (the first is the one VXLAN runs over)."""
    found: dict[int, IPAddress] = {}
    for a in sorted(dp.list_addresses(ns, uplink), key=lambda a: a.version):
        if not a.ip.is_link_local:
            found.setdefault(a.version, a.ip)
    if not found:
        raise dp.DataplaneError(f"podnet: uplink {uplink} has no address", interface=uplink)
    return tuple(found.values())
