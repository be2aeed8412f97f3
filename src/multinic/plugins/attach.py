"""What every interface plugin does with an IPAM result, and how CHECK compares.

The reference plugins share this as ``ipam.ConfigureIface`` and the
``ip.ValidateExpected*`` helpers: assign the addresses that belong to the pod's
interface, bring it up, add the routes, announce the addresses; on CHECK, find
every address and route of the cached result in the pod, or say exactly what
drifted.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface

from multinic.cni.errors import CNIError, InvalidConfigError
from multinic.cni.skel import Request
from multinic.cni.types import Interface, IPConfig, Result, Route
from multinic.dataplane import (
    RT_TABLE_MAIN,
    DataplaneError,
    Link,
    Netns,
    add_address,
    add_route,
    announce,
    get_link,
    list_addresses,
    list_routes,
    set_up,
    settle_addresses,
)
from multinic.dataplane import Route as KernelRoute

#: How long an ADD waits for IPv6 duplicate address detection when it is enabled.
DAD_TIMEOUT = 10.0


class InterfaceDriftError(CNIError):
    """CHECK found the pod's interface different from the cached result."""


def assign_to_interface(
    ipam: Result, interfaces: tuple[Interface, ...], pod_index: int, cni_version: str
) -> Result:
    """The plugin's result: its interfaces, and every IPAM address on the pod's one."""
    ips = tuple(ip._replace(interface=pod_index) for ip in ipam.ips)
    return Result(cni_version, interfaces, ips, ipam.routes, ipam.dns)


def configure_interface(
    ns: Netns, ifname: str, result: Result, *, dad: bool = False, send_announcements: bool = True
) -> list[DataplaneError]:
    """Address ``ifname`` from ``result``, bring it up, add routes, announce.

    Only addresses whose ``interface`` index names ``ifname`` are assigned. With
    ``dad`` off (the reference bridge's default) IPv6 addresses skip duplicate
    address detection, so they are usable when ADD returns; with it on, ADD
    waits for detection to finish. Returns announcement failures (not fatal).
    ``send_announcements=False`` leaves announcing to the caller (the bridge
    plugin has the kernel do it once its port forwards).
    """
    link = get_link(ns, ifname)
    addresses: list[IPv4Interface | IPv6Interface] = [ip.address for ip in _ips_of(result, ifname)]
    set_up(ns, link)
    for address in addresses:
        add_address(ns, link, address, nodad=not dad)
    if dad and any(a.version == 6 for a in addresses):
        settle_addresses(ns, link, timeout=DAD_TIMEOUT)
    for route in result.routes:
        add_result_route(ns, link, route, route.gw or _default_gateway(result, ifname, route))
    return announce(ns, link, addresses) if send_announcements else []


def add_result_route(
    ns: Netns, link: Link, route: Route, gateway: IPv4Address | IPv6Address | None
) -> None:
    """Install one of a result's routes via ``link``, with its CNI 1.1 attributes."""
    add_route(
        ns,
        route.dst,
        gateway=gateway,
        oif=link,
        table=route.table,
        priority=route.priority,
        scope=route.scope,
        mtu=route.mtu,
        advmss=route.advmss,
    )


def _ips_of(result: Result, ifname: str) -> list[IPConfig]:
    chosen = []
    for ip in result.ips:
        if ip.interface is None:
            continue
        if not 0 <= ip.interface < len(result.interfaces):
            raise InvalidConfigError(
                f"cannot assign {ip.address} to {ifname!r}: invalid interface index {ip.interface}"
            )
        if result.interfaces[ip.interface].name == ifname:
            chosen.append(ip)
    return chosen


def _default_gateway(result: Result, ifname: str, route: Route) -> IPv4Address | IPv6Address | None:
    """A route without ``gw`` goes via the gateway of the same family, as in the reference."""
    for ip in _ips_of(result, ifname):
        if ip.gateway is not None and ip.gateway.version == route.dst.version:
            return ip.gateway
    return None


def check_interface(ns: Netns, ifname: str, result: Result) -> Link:
    """Raise InterfaceDriftError unless ``ifname`` holds the result's addresses and routes."""
    link = get_link(ns, ifname)
    expected = next((i for i in result.interfaces if i.name == ifname and i.sandbox), None)
    if expected is not None and expected.mac and link.mac and expected.mac != link.mac:
        raise InterfaceDriftError(
            f"interface {ifname!r} has MAC {link.mac}, the result says {expected.mac}"
        )
    present = set(list_addresses(ns, link))
    for ip in _ips_of(result, ifname):
        if ip.address not in present:
            raise InterfaceDriftError(
                f"address {ip.address} is missing from {ifname!r}",
                f"found {sorted(map(str, present))}",
            )
    if result.routes:
        # One dump of the link's routes in every table, not one per expected route.
        installed = list_routes(ns, table=None, oif=link)
        for route in result.routes:
            _check_route(installed, result, ifname, route)
    return link


def _check_route(installed: list[KernelRoute], result: Result, ifname: str, route: Route) -> None:
    gateway = route.gw or _default_gateway(result, ifname, route)
    table = route.table or RT_TABLE_MAIN
    for found in installed:
        if (
            found.table == table
            and found.dst == route.dst
            and (gateway is None or found.gateway == gateway)
        ):
            return
    via = f" via {gateway}" if gateway else ""
    raise InterfaceDriftError(f"route to {route.dst}{via} is missing in the pod ({ifname!r})")


#: Why a chained (meta) plugin cannot do without prevResult.
CHAINED_NEEDS_PREV = "prevResult missing: chain it after a plugin that creates the interface"


def require_prev_result(request: Request, reason: str = "CHECK needs a prevResult") -> Result:
    """The prevResult, or a config error: CHECK (and every meta plugin) has nothing
    to work on without it."""
    prev = request.config.prev_result
    if prev is None:
        raise InvalidConfigError(f"{request.config.type}: {reason}")
    return prev
