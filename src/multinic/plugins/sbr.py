"""multinic-sbr: source-based routing for one pod interface (config as the reference ``sbr``).

A meta plugin chained after an interface plugin. For each address of the pod
interface in prevResult it takes the first routing table from 100 that no rule
or route uses yet, copies the interface's main-table routes that belong to that
address (its subnet route, routes via a gateway in its subnet, and routes with
neither a source nor a gateway) into it, adds a default route via the address's
gateway, and adds ``from <address> lookup <table>``; then the interface's routes
leave the main table. A reply sourced from a secondary address therefore leaves
through the secondary interface, whatever the main table's default route says.

Fields: ``table`` (a fixed table: only the rules are added, routes stay where
the interface plugin put them, e.g. in that table through CNI 1.1's route
``table``), ``gateways`` (at most one IPv4 and one IPv6 address used instead of
prevResult's gateways), ``addSourceHints`` (keep the interface's subnet routes
in the main table with the address as preferred source, move only the others).

DEL deletes the rules whose source is one of the interface's addresses and the
routes of their tables; a gone namespace or interface, or a second DEL, is
fine. CHECK finds each rule and, per table, the subnet and default routes.
ADD, DEL and CHECK hold an exclusive lock on the namespace file, as the
reference does, so two attachments of one pod pick different tables.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

from multinic.cni import skel
from multinic.cni.errors import CNIError, InvalidConfigError
from multinic.cni.types import IPConfig, Result
from multinic.cni.version import SUPPORTED_VERSIONS
from multinic.dataplane import (
    RT_TABLE_MAIN,
    Link,
    Netns,
    NetnsNotFoundError,
    Route,
    RouteExistsError,
    Rule,
    add_route,
    add_rule,
    delete_route,
    delete_rule,
    find_link,
    get_link,
    list_addresses,
    list_routes,
    list_rules,
    open_netns,
    replace_route,
)
from multinic.plugins.attach import CHAINED_NEEDS_PREV, InterfaceDriftError, require_prev_result
from multinic.plugins.fields import plugin_fields
from multinic.records import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from typing import NoReturn

TYPE = "multinic-sbr"
FIRST_TABLE = 100
RTN_UNICAST = 1
#: unspec, default, main, local: never a table of ours.
RESERVED_TABLES = frozenset({0, 253, RT_TABLE_MAIN, 255})

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network


class SbrConf(NamedTuple):
    """The plugin's own fields."""

    table: int | None
    gateways: dict[int, IPAddress]  # by IP version
    source_hints: bool


def load_conf(request: skel.Request) -> SbrConf:
    """Parse and validate the config."""
    fields = plugin_fields(request.config.raw, TYPE)
    table = fields.integer("table", low=1, high=2**32 - 1)
    raw = request.config.raw.get("gateways") or []
    if not isinstance(raw, list) or not all(isinstance(g, str) for g in raw):
        raise fields.error("gateways", "must be a list of IP address strings")
    gateways: dict[int, IPAddress] = {}
    for text in raw:
        try:
            gateway = ip_address(text)
        except ValueError as exc:
            raise fields.error("gateways", f"holds {text!r}, not an IP address") from exc
        if gateway.version in gateways:
            raise fields.error("gateways", f"holds more than one IPv{gateway.version} address")
        gateways[gateway.version] = gateway
    return SbrConf(table, gateways, fields.boolean("addSourceHints"))


def addresses_of(prev: Result, ifname: str) -> list[IPConfig]:
    """The IPs of ``ifname`` in prevResult; an IP without an interface index counts (as ref)."""
    mine = []
    for ip in prev.ips:
        index = ip.interface
        owner = None
        if index is not None and 0 <= index < len(prev.interfaces):
            owner = prev.interfaces[index].name
        if owner is None or owner == ifname:
            mine.append(ip)
    return mine


@contextlib.contextmanager
def locked_netns(path: str) -> Iterator[Netns]:
    """The pod's namespace, held under an exclusive lock on its file (released on close)."""
    with open_netns(path) as ns:
        try:
            fcntl.flock(ns.fd, fcntl.LOCK_EX)
        except OSError as exc:
            raise CNIError(f"{TYPE}: cannot lock {path}", str(exc)) from exc
        yield ns


def _host(address: IPAddress) -> IPNetwork:
    return ip_network(address)


def _default(version: int) -> IPNetwork:
    return ip_network("0.0.0.0/0" if version == 4 else "::/0")


# -- ADD -------------------------------------------------------------------------------


def free_table(used: set[int], start: int) -> int:
    """The first table from ``start`` that no rule or route refers to."""
    table = start
    while table in used:
        table += 1
    return table


def _belongs(route: Route, ip: IPConfig) -> bool:
    """Whether a main-table route of the link goes with ``ip`` (as the reference decides)."""
    if route.dst.version != ip.address.version:
        return False
    network = ip.address.network
    if route.src is not None and route.src in network:
        return True
    if route.gateway is not None and route.gateway in network:
        return True
    return route.src is None and route.gateway is None


def _copy_route(ns: Netns, route: Route, table: int, link: Link) -> None:
    _put_route(ns, route, link, table, replace=True)


def _readd(ns: Netns, route: Route, link: Link) -> None:
    with contextlib.suppress(RouteExistsError):
        _put_route(ns, route, link, RT_TABLE_MAIN, replace=False)


def _put_route(ns: Netns, route: Route, link: Link, table: int, *, replace: bool) -> None:
    """Install a route the kernel listed, with all its attributes, in ``table`` via ``link``."""
    install = replace_route if replace else add_route
    install(
        ns,
        route.dst,
        gateway=route.gateway,
        oif=link,
        table=table,
        priority=route.priority,
        scope=route.scope,
        src=route.src,
        mtu=route.mtu,
        advmss=route.advmss,
    )


def _forget(ns: Netns, route: Route, link: Link, table: int) -> None:
    delete_route(
        ns,
        route.dst,
        gateway=route.gateway,
        oif=link,
        table=table,
        priority=route.priority,
        missing_ok=True,
    )


def route_per_source(
    ns: Netns, link: Link, ips: list[IPConfig], conf: SbrConf, undo: contextlib.ExitStack
) -> None:
    """Tables, rules and routes for each address; every step registered on ``undo``."""
    used = {r.table for r in list_rules(ns)} | {r.table for r in list_routes(ns, table=None)}
    main = [r for r in list_routes(ns, table=RT_TABLE_MAIN, oif=link) if r.type == RTN_UNICAST]
    table = free_table(used, FIRST_TABLE)
    for ip in ips:
        source = _host(ip.address.ip)
        add_rule(ns, table=table, src=source)
        undo.callback(delete_rule, ns, table=table, src=source, missing_ok=True)
        gateway = conf.gateways.get(ip.address.version) or ip.gateway
        if gateway is not None:
            add_route(ns, _default(ip.address.version), gateway=gateway, oif=link, table=table)
            undo.callback(
                delete_route, ns, _default(ip.address.version), table=table, missing_ok=True
            )
        for route in main:
            if _belongs(route, ip):
                _copy_route(ns, route, table, link)
                undo.callback(_forget, ns, route, link, table)
        used.add(table)
        table = free_table(used, table + 1)
    _leave_main(ns, link, ips, main, conf.source_hints, undo)


def _leave_main(
    ns: Netns,
    link: Link,
    ips: list[IPConfig],
    main: list[Route],
    source_hints: bool,
    undo: contextlib.ExitStack,
) -> None:
    # Removed only after every copy: two addresses of one subnet both need its route.
    hints = {ip.address.network: ip.address.ip for ip in ips} if source_hints else {}
    for route in main:
        if route.dst.version == 6 and route.dst.is_link_local:
            continue  # fe80::/64 names no source: link-local traffic keeps working unbound
        hint = hints.get(route.dst) if route.gateway is None else None
        if hint is not None:
            # Kept for destination-based routing, with the address as preferred source.
            _copy_route(ns, route._replace(src=hint), RT_TABLE_MAIN, link)
            undo.callback(_copy_route, ns, route, RT_TABLE_MAIN, link)
            continue
        _forget(ns, route, link, RT_TABLE_MAIN)
        undo.callback(_readd, ns, route, link)


def rules_only(ns: Netns, ips: list[IPConfig], table: int, undo: contextlib.ExitStack) -> None:
    """With a fixed ``table``: one rule per address, routes left alone (as the reference)."""
    for ip in ips:
        source = _host(ip.address.ip)
        add_rule(ns, table=table, src=source)
        undo.callback(delete_rule, ns, table=table, src=source, missing_ok=True)


# -- DEL -------------------------------------------------------------------------------


def _our_rules(ns: Netns, sources: set[IPAddress], table: int | None) -> list[Rule]:
    return [
        rule
        for rule in list_rules(ns)
        if rule.src is not None
        and rule.src.num_addresses == 1
        and rule.src.network_address in sources
        and rule.table not in RESERVED_TABLES
        and (table is None or rule.table == table)
    ]


def tidy(ns: Netns, ifname: str, prev: Result | None, table: int | None) -> None:
    """Delete the interface's source rules and, without a fixed table, their tables' routes."""
    link = find_link(ns, ifname)
    sources: set[IPAddress] = set()
    if prev is not None:
        sources |= {ip.address.ip for ip in addresses_of(prev, ifname)}
    if link is not None:
        sources |= {a.ip for a in list_addresses(ns, link)}
    rules = _our_rules(ns, sources, table)
    for rule in rules:
        delete_rule(ns, table=rule.table, src=rule.src, priority=rule.priority, missing_ok=True)
    if table is not None or link is None:
        return  # a fixed table is not ours to empty; a gone link took its routes along
    routes = list_routes(ns, table=None)
    # A table whose rule someone deleted is still found: one only this link's routes use.
    tables = {rule.table for rule in rules} | _tables_of_link_alone(routes, link)
    for route in routes:
        if route.table in tables and route.oif == link.ifindex:
            _forget(ns, route, link, route.table)


def _tables_of_link_alone(routes: list[Route], link: Link) -> set[int]:
    tables: dict[int, bool] = {}
    for route in routes:
        if route.table >= FIRST_TABLE and route.table not in RESERVED_TABLES:
            tables[route.table] = tables.get(route.table, True) and route.oif == link.ifindex
    return {number for number, alone in tables.items() if alone}


# -- CHECK -----------------------------------------------------------------------------


def drift(ns: Netns, link: Link, ips: list[IPConfig], conf: SbrConf) -> Iterator[str]:
    """What is missing of the rules and routes ADD made."""
    rules = list_rules(ns)
    for ip in ips:
        source = _host(ip.address.ip)
        found = [r for r in rules if r.src == source and r.table not in (0, RT_TABLE_MAIN)]
        if conf.table is not None:
            found = [r for r in found if r.table == conf.table]
        if not found:
            where = "" if conf.table is None else f" {conf.table}"
            yield f"no rule 'from {source} lookup{where or ' <table>'}'"
            continue
        if conf.table is not None:
            continue
        table = found[0].table
        routes = list_routes(ns, version=ip.address.version, table=table, oif=link)
        if not any(r.dst == ip.address.network for r in routes):
            yield f"route to {ip.address.network} is missing from table {table}"
        gateway = conf.gateways.get(ip.address.version) or ip.gateway
        default = _default(ip.address.version)
        if gateway is not None and not any(
            r.dst == default and r.gateway == gateway for r in routes
        ):
            yield f"default route via {gateway} is missing from table {table}"


class Sbr:
    """The source-based routing meta plugin."""

    name = TYPE
    supported_versions = SUPPORTED_VERSIONS

    def add(self, request: skel.Request) -> Result:
        conf = load_conf(request)
        prev = require_prev_result(request, CHAINED_NEEDS_PREV)
        ips = addresses_of(prev, request.ifname)
        if not ips:
            raise InvalidConfigError(f"{TYPE}: no IP addresses on {request.ifname!r} in prevResult")
        with locked_netns(request.netns) as ns, contextlib.ExitStack() as undo:
            if conf.table is not None:
                rules_only(ns, ips, conf.table, undo)
            else:
                route_per_source(ns, get_link(ns, request.ifname), ips, conf, undo)
            undo.pop_all()
        return prev

    def delete(self, request: skel.Request) -> None:
        conf = load_conf(request)
        if not request.netns:
            return
        try:
            with locked_netns(request.netns) as ns:
                tidy(ns, request.ifname, request.config.prev_result, conf.table)
        except NetnsNotFoundError:
            return  # the pod is gone, its rules and routes with it

    def check(self, request: skel.Request) -> None:
        conf = load_conf(request)
        prev = require_prev_result(request, CHAINED_NEEDS_PREV)
        ips = addresses_of(prev, request.ifname)
        with locked_netns(request.netns) as ns:
            link = get_link(ns, request.ifname)
            found = list(drift(ns, link, ips, conf))
        if found:
            raise InterfaceDriftError(
                f"{TYPE}: source-based routing of {request.ifname!r} drifted", "; ".join(found)
            )

    def status(self, request: skel.Request) -> None:
        load_conf(request)

    def gc(self, request: skel.Request) -> None:
        """Nothing: rules and tables live in the pod's namespace and die with it."""


PLUGIN = Sbr()


def main() -> NoReturn:
    skel.main(PLUGIN)
