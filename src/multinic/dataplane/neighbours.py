"""Neighbour entries (ARP/NDP) and a VXLAN device's forwarding database (FDB).

What an overlay needs to run without multicast or learning: for every remote
node, a permanent neighbour entry (its VTEP address -> its VTEP MAC) and an FDB
entry on the vxlan device (that MAC -> the node's underlay address), as
``ip neigh replace ... nud permanent`` and ``bridge fdb replace ... self
permanent`` do.
"""

from __future__ import annotations

import errno
import ipaddress
import struct

from multinic.dataplane import netlink as nl
from multinic.dataplane.errors import LinkNotFoundError, NeighbourNotFoundError, kernel_error
from multinic.dataplane.links import Link, mac_bytes, resolve
from multinic.dataplane.netlink import AF_INET, AF_INET6
from multinic.dataplane.netns import Netns
from multinic.records import NamedTuple

RTM_NEWNEIGH = 28
RTM_DELNEIGH = 29
RTM_GETNEIGH = 30

NDA_DST = 1
NDA_LLADDR = 2
NUD_PERMANENT = 0x80
NTF_SELF = 0x02
AF_BRIDGE = 7

_NDMSG = struct.Struct("=BxxxiHBB")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Neighbour(NamedTuple):
    """A neighbour or FDB entry as the kernel reports it (``dst`` None: FDB without one)."""

    ifindex: int
    dst: IPAddress | None
    mac: str | None
    state: int
    flags: int


def _send(ns: Netns, type_: int, flags: int, payload: bytes, what: str, link: object) -> None:
    try:
        ns.rtnl.request(type_, payload, flags)
    except nl.KernelError as exc:
        raise kernel_error(
            what,
            exc.errno,
            exc.message,
            interface=str(link),
            netns=ns.name,
            by_errno={errno.ENOENT: NeighbourNotFoundError, errno.ENODEV: LinkNotFoundError},
        ) from exc


def _family(address: IPAddress) -> int:
    return AF_INET if address.version == 4 else AF_INET6


def replace_neighbour(ns: Netns, link: str | int | Link, dst: IPAddress, mac: str) -> None:
    """A permanent neighbour entry ``dst`` -> ``mac`` on ``link`` (added or replaced)."""
    index, name = resolve(ns, link)
    payload = _NDMSG.pack(_family(dst), index, NUD_PERMANENT, 0, 0) + b"".join(
        (nl.attr(NDA_DST, dst.packed), nl.attr(NDA_LLADDR, mac_bytes(mac)))
    )
    flags = nl.NLM_F_CREATE | nl.NLM_F_REPLACE
    _send(ns, RTM_NEWNEIGH, flags, payload, f"cannot set neighbour {dst}", name)


def delete_neighbour(
    ns: Netns, link: str | int | Link, dst: IPAddress, *, missing_ok: bool = False
) -> bool:
    """Remove the neighbour entry for ``dst``; True if it existed."""
    index, name = resolve(ns, link)
    payload = _NDMSG.pack(_family(dst), index, 0, 0, 0) + nl.attr(NDA_DST, dst.packed)
    try:
        _send(ns, RTM_DELNEIGH, 0, payload, f"cannot delete neighbour {dst}", name)
    except NeighbourNotFoundError:
        if missing_ok:
            return False
        raise
    return True


def replace_fdb(ns: Netns, link: str | int | Link, mac: str, dst: IPAddress) -> None:
    """A permanent FDB entry on a vxlan device: frames to ``mac`` go to the VTEP at ``dst``."""
    index, name = resolve(ns, link)
    payload = _NDMSG.pack(AF_BRIDGE, index, NUD_PERMANENT, NTF_SELF, 0) + b"".join(
        (nl.attr(NDA_LLADDR, mac_bytes(mac)), nl.attr(NDA_DST, dst.packed))
    )
    flags = nl.NLM_F_CREATE | nl.NLM_F_REPLACE
    _send(ns, RTM_NEWNEIGH, flags, payload, f"cannot set FDB entry {mac}", name)


def delete_fdb(
    ns: Netns, link: str | int | Link, mac: str, dst: IPAddress, *, missing_ok: bool = False
) -> bool:
    """Remove the FDB entry ``mac`` -> ``dst``; True if it existed."""
    index, name = resolve(ns, link)
    payload = _NDMSG.pack(AF_BRIDGE, index, NUD_PERMANENT, NTF_SELF, 0) + b"".join(
        (nl.attr(NDA_LLADDR, mac_bytes(mac)), nl.attr(NDA_DST, dst.packed))
    )
    try:
        _send(ns, RTM_DELNEIGH, 0, payload, f"cannot delete FDB entry {mac}", name)
    except NeighbourNotFoundError:
        if missing_ok:
            return False
        raise
    return True


def _decode(payload: bytes) -> Neighbour:
    _, ifindex, state, flags, _type = _NDMSG.unpack_from(payload)
    attrs = nl.parse_attrs(payload, _NDMSG.size)
    dst, mac = attrs.get(NDA_DST), attrs.get(NDA_LLADDR)
    return Neighbour(
        ifindex=ifindex,
        dst=None if dst is None else ipaddress.ip_address(dst),
        mac=None if mac is None else ":".join(f"{b:02x}" for b in mac),
        state=state,
        flags=flags,
    )


def list_neighbours(ns: Netns, link: str | int | Link | None = None) -> list[Neighbour]:
    """IPv4 and IPv6 neighbour entries (of one link, when given)."""
    index = None if link is None else resolve(ns, link)[0]
    found = []
    for family in (AF_INET, AF_INET6):
        for message in ns.rtnl.dump(RTM_GETNEIGH, _NDMSG.pack(family, 0, 0, 0, 0)):
            entry = _decode(message.payload)
            if index is None or entry.ifindex == index:
                found.append(entry)
    return found


def list_fdb(ns: Netns, link: str | int | Link) -> list[Neighbour]:
    """The FDB entries of one device (a vxlan's remote VTEPs, a bridge's ports' MACs)."""
    index = resolve(ns, link)[0]
    return [
        entry
        for message in ns.rtnl.dump(RTM_GETNEIGH, _NDMSG.pack(AF_BRIDGE, 0, 0, 0, 0))
        if (entry := _decode(message.payload)).ifindex == index
    ]
