"""Routes (IPv4 and IPv6) with CNI 1.1's fields: table, priority, scope, src, mtu, advmss."""

from __future__ import annotations

import errno
import ipaddress
import struct

from multinic.dataplane import netlink as nl
from multinic.dataplane.errors import (
    LinkNotFoundError,
    RouteExistsError,
    RouteNotFoundError,
    kernel_error,
)
from multinic.dataplane.links import Link, get_link
from multinic.dataplane.netlink import AF_INET, AF_INET6
from multinic.dataplane.netns import Netns
from multinic.records import NamedTuple

RTM_NEWROUTE = 24
RTM_DELROUTE = 25
RTM_GETROUTE = 26

RTA_DST = 1
RTA_OIF = 4
RTA_GATEWAY = 5
RTA_PRIORITY = 6
RTA_PREFSRC = 7
RTA_METRICS = 8
RTA_TABLE = 15
RTAX_MTU = 2
RTAX_ADVMSS = 8

RTN_UNICAST = 1
#: rtm_flags: the gateway is on the link even without an address in its subnet.
RTNH_F_ONLINK = 4
RTPROT_BOOT = 3
RT_TABLE_MAIN = 254
RT_SCOPE_UNIVERSE = 0
RT_SCOPE_LINK = 253
RT_SCOPE_HOST = 254
RT_SCOPE_NOWHERE = 255

_RTMSG = struct.Struct("=BBBBBBBBI")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Route(NamedTuple):
    """A route as the kernel reports it."""

    dst: IPNetwork
    gateway: IPAddress | None
    oif: int | None
    table: int
    priority: int | None
    scope: int
    src: IPAddress | None
    mtu: int | None
    advmss: int | None
    protocol: int
    type: int


def _oif(ns: Netns, oif: str | int | Link | None) -> int | None:
    if oif is None or isinstance(oif, int):
        return oif
    return oif.ifindex if isinstance(oif, Link) else get_link(ns, oif).ifindex


def _encode(
    ns: Netns,
    dst: IPNetwork,
    *,
    gateway: IPAddress | None,
    oif: str | int | Link | None,
    table: int | None,
    priority: int | None,
    scope: int | None,
    src: IPAddress | None,
    mtu: int | None,
    advmss: int | None,
    deleting: bool = False,
    protocol: int | None = None,
    onlink: bool = False,
) -> bytes:
    table = RT_TABLE_MAIN if table is None else table
    if scope is None:
        # As `ip route add`: an IPv4 route without a gateway is on-link.
        on_link = gateway is None and dst.version == 4
        scope = RT_SCOPE_NOWHERE if deleting else RT_SCOPE_LINK if on_link else RT_SCOPE_UNIVERSE
    family = AF_INET if dst.version == 4 else AF_INET6
    header = _RTMSG.pack(
        family,
        dst.prefixlen,
        0,
        0,
        table if table < 256 else 0,
        0 if deleting else RTPROT_BOOT if protocol is None else protocol,
        scope,
        RTN_UNICAST,
        RTNH_F_ONLINK if onlink else 0,
    )
    attrs = [nl.attr_u32(RTA_TABLE, table)]
    if dst.prefixlen:
        attrs.append(nl.attr(RTA_DST, dst.network_address.packed))
    if gateway is not None:
        attrs.append(nl.attr(RTA_GATEWAY, gateway.packed))
    index = _oif(ns, oif)
    if index is not None:
        attrs.append(nl.attr_u32(RTA_OIF, index))
    if priority is not None:
        attrs.append(nl.attr_u32(RTA_PRIORITY, priority))
    if src is not None:
        attrs.append(nl.attr(RTA_PREFSRC, src.packed))
    metrics = []
    if mtu is not None:
        metrics.append(nl.attr_u32(RTAX_MTU, mtu))
    if advmss is not None:
        metrics.append(nl.attr_u32(RTAX_ADVMSS, advmss))
    if metrics:
        attrs.append(nl.nested(RTA_METRICS, *metrics))
    return header + b"".join(attrs)


def _send(ns: Netns, type_: int, flags: int, payload: bytes, what: str, oif: object) -> None:
    try:
        ns.rtnl.request(type_, payload, flags)
    except nl.KernelError as exc:
        raise kernel_error(
            what,
            exc.errno,
            exc.message,
            interface=None if oif is None else str(getattr(oif, "name", oif)),
            netns=ns.name,
            by_errno={
                errno.EEXIST: RouteExistsError,
                errno.ESRCH: RouteNotFoundError,
                errno.ENODEV: LinkNotFoundError,
            },
        ) from exc


def add_route(
    ns: Netns,
    dst: IPNetwork,
    *,
    gateway: IPAddress | None = None,
    oif: str | int | Link | None = None,
    table: int | None = None,
    priority: int | None = None,
    scope: int | None = None,
    src: IPAddress | None = None,
    mtu: int | None = None,
    advmss: int | None = None,
    protocol: int | None = None,
    onlink: bool = False,
) -> None:
    """Add a route (table main unless ``table``); an equal one -> RouteExistsError.

    ``protocol`` marks who owns it (``proto`` in ``ip route``; default boot),
    ``onlink`` makes the gateway reachable on ``oif`` without a connected subnet."""
    payload = _encode(
        ns, dst, gateway=gateway, oif=oif, table=table, priority=priority,
        scope=scope, src=src, mtu=mtu, advmss=advmss, protocol=protocol, onlink=onlink,
    )  # fmt: skip
    flags = nl.NLM_F_CREATE | nl.NLM_F_EXCL
    _send(ns, RTM_NEWROUTE, flags, payload, f"cannot add route to {dst}", oif)


def replace_route(
    ns: Netns,
    dst: IPNetwork,
    *,
    gateway: IPAddress | None = None,
    oif: str | int | Link | None = None,
    table: int | None = None,
    priority: int | None = None,
    scope: int | None = None,
    src: IPAddress | None = None,
    mtu: int | None = None,
    advmss: int | None = None,
    protocol: int | None = None,
    onlink: bool = False,
) -> None:
    """Add the route, or replace the one with the same dst/table/priority."""
    payload = _encode(
        ns, dst, gateway=gateway, oif=oif, table=table, priority=priority,
        scope=scope, src=src, mtu=mtu, advmss=advmss, protocol=protocol, onlink=onlink,
    )  # fmt: skip
    flags = nl.NLM_F_CREATE | nl.NLM_F_REPLACE
    _send(ns, RTM_NEWROUTE, flags, payload, f"cannot replace route to {dst}", oif)


def delete_route(
    ns: Netns,
    dst: IPNetwork,
    *,
    gateway: IPAddress | None = None,
    oif: str | int | Link | None = None,
    table: int | None = None,
    priority: int | None = None,
    missing_ok: bool = False,
) -> bool:
    """Delete the route matching the fields given; True if one was deleted."""
    payload = _encode(
        ns, dst, gateway=gateway, oif=oif, table=table, priority=priority,
        scope=None, src=None, mtu=None, advmss=None, deleting=True,
    )  # fmt: skip
    try:
        _send(ns, RTM_DELROUTE, 0, payload, f"cannot delete route to {dst}", oif)
    except RouteNotFoundError:
        if missing_ok:
            return False
        raise
    return True


def decode_route(payload: bytes) -> Route:
    """A Route from an RTM_NEWROUTE message's payload."""
    family, dst_len, _src_len, _tos, table8, protocol, scope, type_, _flags = _RTMSG.unpack_from(
        payload
    )
    attrs = nl.parse_attrs(payload, _RTMSG.size)
    zero = b"\0" * (4 if family == AF_INET else 16)
    dst = ipaddress.ip_network((attrs.get(RTA_DST, zero), dst_len))
    metrics = nl.get_nested(attrs, RTA_METRICS)
    gateway = attrs.get(RTA_GATEWAY)
    src = attrs.get(RTA_PREFSRC)
    return Route(
        dst=dst,
        gateway=None if gateway is None else ipaddress.ip_address(gateway),
        oif=nl.get_u32(attrs, RTA_OIF),
        table=nl.get_u32(attrs, RTA_TABLE) or table8,
        priority=nl.get_u32(attrs, RTA_PRIORITY),
        scope=scope,
        src=None if src is None else ipaddress.ip_address(src),
        mtu=nl.get_u32(metrics, RTAX_MTU),
        advmss=nl.get_u32(metrics, RTAX_ADVMSS),
        protocol=protocol,
        type=type_,
    )


def list_routes(
    ns: Netns,
    *,
    version: int | None = None,
    table: int | None = RT_TABLE_MAIN,
    oif: str | int | Link | None = None,
) -> list[Route]:
    """Routes of one table (main by default; None: every table), optionally per link."""
    families = (AF_INET, AF_INET6) if version is None else (
        (AF_INET,) if version == 4 else (AF_INET6,)
    )  # fmt: skip
    index = _oif(ns, oif)
    routes = []
    for family in families:
        header = _RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)
        for message in ns.rtnl.dump(RTM_GETROUTE, header):
            route = decode_route(message.payload)
            if table is not None and route.table != table:
                continue
            if index is not None and route.oif != index:
                continue
            routes.append(route)
    return routes
