"""Gratuitous ARP and unsolicited IPv6 neighbour advertisements after addressing.

Neighbours (the gateway, other pods) may still cache a previous owner's MAC for a
reused address; announcing it updates them at once. Both are sent from AF_PACKET
sockets created inside the pod's namespace, so they need no address state (an
IPv6 address still in DAD can be announced too). Best effort: ``announce``
returns the failures instead of raising them.
"""

from __future__ import annotations

import _socket  # not socket: see netlink.py
import ipaddress
import struct

from multinic.dataplane.errors import AnnounceError, DataplaneError
from multinic.dataplane.links import Link, get_link, mac_bytes
from multinic.dataplane.netns import Netns, run_in_netns

ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
ARP_REQUEST = 1
IPPROTO_ICMPV6 = 58
ND_NEIGHBOR_ADVERT = 136
NA_FLAG_OVERRIDE = 0x20000000
ND_OPT_TARGET_LINKADDR = 2

BROADCAST_MAC = b"\xff" * 6
ALL_NODES = ipaddress.IPv6Address("ff02::1")
ALL_NODES_MAC = b"\x33\x33\x00\x00\x00\x01"


def arp_announcement(mac: bytes, address: ipaddress.IPv4Address) -> bytes:
    """A gratuitous ARP request: sender and target are both ``address`` (RFC 5227)."""
    ip = address.packed
    return struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, ARP_REQUEST, mac, ip, b"\0" * 6, ip)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def neighbour_advertisement(mac: bytes, address: ipaddress.IPv6Address) -> bytes:
    """An IPv6 packet to all nodes: unsolicited NA with Override and our link-layer address."""
    option = struct.pack("!BB6s", ND_OPT_TARGET_LINKADDR, 1, mac)
    body = struct.pack("!I16s", NA_FLAG_OVERRIDE, address.packed) + option
    pseudo = address.packed + ALL_NODES.packed + struct.pack("!I3xB", 4 + len(body), 58)
    checksum = _checksum(pseudo + struct.pack("!BBH", ND_NEIGHBOR_ADVERT, 0, 0) + body)
    icmp = struct.pack("!BBH", ND_NEIGHBOR_ADVERT, 0, checksum) + body
    # Hop limit 255: receivers drop neighbour discovery that crossed a router.
    header = struct.pack(
        "!IHBB16s16s", 0x60000000, len(icmp), IPPROTO_ICMPV6, 255, address.packed, ALL_NODES.packed
    )
    return header + icmp


def _send(ns: Netns, link: Link, proto: int, frame: bytes, dst_mac: bytes, count: int) -> None:
    def open_packet_socket() -> _socket.socket:
        return _socket.socket(_socket.AF_PACKET, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC, 0)

    sock = run_in_netns(ns, open_packet_socket)
    try:
        # The interface name is resolved in the socket's namespace: the pod's.
        for _ in range(count):
            sock.sendto(frame, (link.name, proto, 0, 0, dst_mac))
    finally:
        sock.close()


def _link_mac(ns: Netns, link: str | int | Link) -> tuple[Link, bytes]:
    found = link if isinstance(link, Link) else get_link(ns, link)
    if found.mac is None:
        raise AnnounceError("link has no MAC address", interface=found.name, netns=ns.name)
    return found, mac_bytes(found.mac)


def send_gratuitous_arp(
    ns: Netns, link: str | int | Link, address: ipaddress.IPv4Address, *, count: int = 1
) -> None:
    """Broadcast ``count`` gratuitous ARPs for ``address`` out of ``link``."""
    found, mac = _link_mac(ns, link)
    try:
        _send(ns, found, ETH_P_ARP, arp_announcement(mac, address), BROADCAST_MAC, count)
    except OSError as exc:
        raise AnnounceError(
            f"cannot send gratuitous ARP for {address}",
            interface=found.name,
            netns=ns.name,
            errno=exc.errno,
        ) from exc


def send_unsolicited_na(
    ns: Netns, link: str | int | Link, address: ipaddress.IPv6Address, *, count: int = 1
) -> None:
    """Send ``count`` unsolicited neighbour advertisements for ``address`` to all nodes."""
    found, mac = _link_mac(ns, link)
    try:
        frame = neighbour_advertisement(mac, address)
        _send(ns, found, ETH_P_IPV6, frame, ALL_NODES_MAC, count)
    except OSError as exc:
        raise AnnounceError(
            f"cannot send neighbour advertisement for {address}",
            interface=found.name,
            netns=ns.name,
            errno=exc.errno,
        ) from exc


def announce(
    ns: Netns,
    link: str | int | Link,
    addresses: list[ipaddress.IPv4Interface | ipaddress.IPv6Interface],
) -> list[DataplaneError]:
    """Announce every address (GARP for IPv4, NA for IPv6); the failures, never raised.

    Link-local IPv6 addresses are skipped: the kernel announces those itself.
    All go out of one packet socket: closing one waits for an RCU grace period
    (synchronize_net, 10-20 ms here), a cost paid once per call, not per address.
    """
    wanted = [a for a in addresses if a.version == 4 or not a.ip.is_link_local]
    if not wanted:
        return []
    try:
        found, mac = _link_mac(ns, link)
        sock = run_in_netns(ns, _open_packet_socket)
    except (DataplaneError, OSError) as exc:
        return [_announce_error(exc, ns, link, a) for a in wanted]
    failures: list[DataplaneError] = []
    try:
        for address in wanted:
            if isinstance(address, ipaddress.IPv4Interface):
                frame, proto, dst = arp_announcement(mac, address.ip), ETH_P_ARP, BROADCAST_MAC
            else:
                frame = neighbour_advertisement(mac, address.ip)
                proto, dst = ETH_P_IPV6, ALL_NODES_MAC
            try:
                sock.sendto(frame, (found.name, proto, 0, 0, dst))
            except OSError as exc:
                failures.append(_announce_error(exc, ns, found, address))
    finally:
        sock.close()
    return failures


def _open_packet_socket() -> _socket.socket:
    return _socket.socket(_socket.AF_PACKET, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC, 0)


def _announce_error(
    exc: Exception,
    ns: Netns,
    link: str | int | Link,
    address: ipaddress.IPv4Interface | ipaddress.IPv6Interface,
) -> DataplaneError:
    if isinstance(exc, DataplaneError):
        return exc
    what = "gratuitous ARP" if address.version == 4 else "neighbour advertisement"
    return AnnounceError(
        f"cannot send {what} for {address.ip}",
        interface=link.name if isinstance(link, Link) else str(link),
        netns=ns.name,
        errno=getattr(exc, "errno", None),
    )
