"""What macvlan, ipvlan and vlan share: a link on a master device, placed in the pod.

The three reference plugins are one pattern with a different link kind: find the
master (named, or the default-route interface), create the link on it directly
in the pod's namespace under CNI_IFNAME, run IPAM, configure the interface.
``linkInContainer`` means the master lives in the pod's namespace itself.
Each plugin module supplies its conf and a ``create`` function; the verbs here
do the rest, with complete rollback on ADD and an idempotent DEL.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from multinic.cni.errors import CNIError, InvalidConfigError, PluginNotAvailableError
from multinic.cni.skel import Request
from multinic.cni.types import DNS, Interface, Result
from multinic.dataplane import (
    DataplaneError,
    Link,
    Netns,
    NetnsNotFoundError,
    announce,
    delete_link,
    find_link,
    get_link,
    host_netns,
    list_routes,
    open_netns,
    set_link,
    set_up,
    write_sysctl,
)
from multinic.plugins.attach import (
    InterfaceDriftError,
    assign_to_interface,
    check_interface,
    configure_interface,
    require_prev_result,
)
from multinic.plugins.delegate import delegate, ipam_add, ipam_check, ipam_del, ipam_type
from multinic.plugins.fields import Fields
from multinic.records import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from typing import Any

#: Creates the pod's link on ``master`` (which lives in ``lower``) inside ``pod``.
Create = Callable[[Netns, Link, Netns], Link]
#: Says what is wrong with the pod's link (mode, VLAN id...), or None.
Expect = Callable[[Link], str | None]


class MasterNotFoundError(InvalidConfigError):
    """The master device the config names (or the default-route interface) does not exist."""


class LowerConf(NamedTuple):
    """The fields every lower-device plugin reads."""

    master: str  # "" = the default-route interface (or, chained ipvlan, prevResult's)
    mtu: int | None  # None (or 0 in the config) = the kernel's default, the master's MTU
    link_in_container: bool


def lower_conf(fields: Fields, *, master_required: bool = False) -> LowerConf:
    """master, mtu and linkInContainer, with the reference's types and limits."""
    if master_required:
        fields.required_string("master")
    master = fields.link_name("master")
    mtu = fields.integer("mtu", low=0, high=65535)
    return LowerConf(master, mtu or None, fields.boolean("linkInContainer"))


def has_ipam(request: Request) -> bool:
    """True when the config has an ``ipam`` section naming a type."""
    ipam = request.config.ipam
    return ipam is not None and bool(ipam.get("type"))


# -- the master ------------------------------------------------------------------------


def default_route_interface(ns: Netns) -> str:
    """The interface of the namespace's first default route (IPv4, then IPv6), as the reference."""
    for route in list_routes(ns):
        if route.dst.prefixlen == 0 and route.oif:
            return get_link(ns, route.oif).name
    raise MasterNotFoundError(
        "no master given and no default route interface found", f"netns {ns.name}"
    )


def master_name(request: Request, conf: LowerConf, *, chained: bool = False) -> str:
    """The master the config names; chained (ipvlan): prevResult's only interface."""
    if conf.master:
        return conf.master
    prev = request.config.prev_result
    if chained and prev is not None:
        if len(prev.interfaces) == 1 and prev.interfaces[0].name:
            return prev.interfaces[0].name
        raise InvalidConfigError(
            f"{request.config.type}: chained master failure",
            "no master given and prevResult lacks a single named interface",
        )
    return ""


def resolve_master(ns: Netns, name: str, mtu: int | None) -> Link:
    """The master link in ``ns`` (by name, or the default-route one); checks ``mtu`` fits."""
    name = name or default_route_interface(ns)
    master = find_link(ns, name)
    if master is None:
        raise MasterNotFoundError(f"master {name!r} not found", f"netns {ns.name}")
    if mtu is not None and mtu > master.mtu:
        raise InvalidConfigError(
            f"invalid MTU {mtu}, must be [0, master MTU({master.mtu})]", f"master {name!r}"
        )
    return master


# -- verbs -----------------------------------------------------------------------------


def add(
    request: Request,
    conf: LowerConf,
    create: Create,
    *,
    ipam_required: bool,
    chained: bool = False,
) -> Result:
    """ADD: the link in the pod, IPAM (or prevResult's addresses, chained), configuration.

    Any failure removes the link and releases the IPAM reservation before the
    error is returned.
    """
    name = master_name(request, conf, chained=chained)
    with open_netns(request.netns) as pod, host_netns() as host:
        lower = pod if conf.link_in_container else host
        master = resolve_master(lower, name, conf.mtu)
        with contextlib.ExitStack() as undo:
            link = create(lower, master, pod)
            undo.callback(_quietly, delete_link, pod, request.ifname, missing_ok=True)
            ipam = _addresses(request, undo, ipam_required=ipam_required, chained=chained)
            interface = Interface(request.ifname, link.mac or "", link.mtu, request.netns)
            if ipam is None:  # layer 2 only (macvlan without ipam): just bring it up
                set_up(pod, link)
                result = Result(request.config.cni_version, (interface,))
            else:
                result = assign_to_interface(ipam, (interface,), 0, request.config.cni_version)
                configure_interface(pod, request.ifname, result, send_announcements=False)
                announce_addresses(pod, request.ifname, result)
            undo.pop_all()
    dns = config_dns(request)
    return result._replace(dns=dns) if dns else result


def _addresses(
    request: Request, undo: contextlib.ExitStack, *, ipam_required: bool, chained: bool
) -> Result | None:
    prev = request.config.prev_result
    if chained and not has_ipam(request) and prev is not None and prev.ips:
        return prev
    if not has_ipam(request) and not ipam_required:
        return None
    ipam = ipam_add(request)
    undo.callback(_quietly, ipam_del, request)
    if not ipam.ips:
        raise CNIError(f"{request.config.type}: IPAM plugin returned missing IP config")
    return ipam


def announce_addresses(pod: Netns, ifname: str, result: Result) -> None:
    """Have the pod's kernel announce the new addresses (GARP, unsolicited NA).

    Neighbours may still cache a previous owner's MAC for a reused address. With
    ``arp_notify``/``ndisc_notify`` on (as the reference sets them), setting the
    link's MAC, even to the one it has, makes the kernel announce every address:
    that spares an AF_PACKET socket, whose close waits for an RCU grace period
    (10-20 ms) on every pod start. A link that cannot set its MAC (ipvlan shares
    its master's) is announced from a packet socket instead. Best effort.
    """
    addresses = [ip.address for ip in result.ips]
    for version, key in ((4, "net/ipv4/conf/{}/arp_notify"), (6, "net/ipv6/conf/{}/ndisc_notify")):
        if any(a.version == version for a in addresses):
            _quietly(write_sysctl, pod, key.format(ifname), "1")
    if not addresses:
        return
    link = get_link(pod, ifname)
    try:
        if link.mac is None:
            raise DataplaneError("no MAC address to set", interface=ifname, netns=pod.name)
        set_link(pod, link, mac=link.mac)
    except DataplaneError:
        announce(pod, link, addresses)


def config_dns(request: Request) -> DNS:
    """The config's own ``dns`` section (it overrides IPAM's, as in the reference)."""
    raw = request.config.raw.get("dns")
    if not raw:
        return DNS()
    return Result.from_dict({"dns": raw}, request.config.cni_version).dns


def delete(request: Request) -> None:
    """DEL: release IPAM, remove the pod's link; a missing link or netns is fine."""
    if has_ipam(request):
        ipam_del(request)
    if not request.netns:
        return
    try:
        with open_netns(request.netns) as pod:
            delete_link(pod, request.ifname, missing_ok=True)
    except NetnsNotFoundError:
        return  # the pod is gone, and its links with it


def check(
    request: Request, conf: LowerConf, kind: str, expect: Expect, *, chained: bool = False
) -> None:
    """CHECK: IPAM's reservation, the master, the pod link's kind/mode/MTU, addresses, routes."""
    prev = require_prev_result(request)
    if has_ipam(request):
        ipam_check(request)
    if not any(i.name == request.ifname and i.sandbox == request.netns for i in prev.interfaces):
        raise InterfaceDriftError(
            f"no interface {request.ifname!r} in sandbox {request.netns} in prevResult"
        )
    with open_netns(request.netns) as pod, host_netns() as host:
        # A chained ipvlan's master came from the prevResult of its ADD, which the
        # cached result no longer shows: only a named master can be checked.
        if conf.master or not chained:
            resolve_master(pod if conf.link_in_container else host, conf.master, None)
        link = find_link(pod, request.ifname)
        if link is None:
            raise InterfaceDriftError(f"interface {request.ifname!r} is missing from the pod")
        if link.kind != kind:
            raise InterfaceDriftError(
                f"interface {request.ifname!r} is a {link.kind or 'device'}, not a {kind}"
            )
        problem = expect(link)
        if problem is not None:
            raise InterfaceDriftError(f"interface {request.ifname!r}: {problem}")
        if conf.mtu is not None and link.mtu != conf.mtu:
            raise InterfaceDriftError(
                f"interface {request.ifname!r} has MTU {link.mtu}, the config says {conf.mtu}"
            )
        check_interface(pod, request.ifname, prev)


def status(request: Request, conf: LowerConf, *, chained: bool = False) -> None:
    """STATUS: a host master that is missing -> code 50; then IPAM's STATUS.

    A master inside the pod (linkInContainer), or one a chained ipvlan takes from
    prevResult, cannot be checked without a pod.
    """
    if not conf.link_in_container and (conf.master or not chained):
        with host_netns() as host:
            try:
                resolve_master(host, conf.master, None)
            except MasterNotFoundError as exc:
                raise PluginNotAvailableError(exc.msg, exc.details) from exc
    if has_ipam(request):
        delegate(ipam_type(request), "STATUS", request)


def gc(request: Request) -> None:
    """GC: the IPAM plugin's, when there is one (the links went with their pods)."""
    if has_ipam(request):
        delegate(ipam_type(request), "GC", request)


def _quietly(undo: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    # Rolling back must never hide the error that caused it.
    with contextlib.suppress(Exception):
        undo(*args, **kwargs)
