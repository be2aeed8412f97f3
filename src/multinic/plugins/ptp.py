"""``multinic-ptp``: a routed veth pair per pod, as the reference ``ptp``.

No bridge: the host end (``veth`` + random hex) holds each subnet's gateway as
a host address (/32 or /128) and routes the pod's address to the veth; the pod
end holds its address without the subnet's on-link route, reaches the gateway
through a link-scope host route, and the rest of its subnet through the
gateway. So every packet leaves the pod for the host, which routes it (ip
forwarding is turned on). The result lists ``[host veth, pod veth]`` with every
address on the pod's one (index 1), as the reference does.

Config fields are the reference's: ``ipMasq`` and ``mtu``; an ``ipam`` section
is required, and each address it gives needs a gateway (host-local gives one).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from ipaddress import ip_interface, ip_network

from multinic.cni import skel
from multinic.cni.errors import CNIError, InvalidConfigError, UnsupportedFieldError
from multinic.cni.types import DNS, IPConfig, Result
from multinic.cni.version import SUPPORTED_VERSIONS
from multinic.dataplane import (
    RT_SCOPE_LINK,
    Link,
    Netns,
    RouteExistsError,
    add_address,
    add_route,
    delete_link,
    find_link,
    host_netns,
    list_addresses,
    open_netns,
    read_sysctl,
    set_up,
    write_sysctl,
)
from multinic.plugins.attach import (
    InterfaceDriftError,
    add_result_route,
    check_interface,
    require_prev_result,
)
from multinic.plugins.delegate import delegate, ipam_add, ipam_check, ipam_del, ipam_type
from multinic.plugins.fields import plugin_fields
from multinic.plugins.veth import (
    create_pod_veth,
    delete_pod_link,
    delete_unreadable,
    interface_of,
)
from multinic.records import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from typing import Any, NoReturn

    from multinic.plugins.nftables import Tag

NAME = "multinic-ptp"


class PtpConf(NamedTuple):
    """One request's ptp config, parsed and checked."""

    ip_masq: bool
    mtu: int | None
    dns: DNS


def load_conf(request: skel.Request) -> PtpConf:
    fields = plugin_fields(request.config.raw, NAME)
    ipam_type(request)  # ptp is routed: without addresses there is nothing to do
    raw_dns = request.config.raw.get("dns")
    version = request.config.cni_version
    dns = (
        Result.from_dict({"cniVersion": version, "dns": raw_dns}, version).dns if raw_dns else DNS()
    )
    return PtpConf(
        ip_masq=fields.boolean("ipMasq"),
        mtu=fields.integer("mtu", 0, low=0, high=65535) or None,
        dns=dns,
    )


class Ptp:
    """The plugin object; the executable and an in-process caller use the same one."""

    name = NAME
    supported_versions = SUPPORTED_VERSIONS

    def add(self, request: skel.Request) -> Result:
        conf = load_conf(request)
        with (
            open_netns(request.netns) as pod,
            host_netns() as host,
            contextlib.ExitStack() as undo,
        ):
            result = _add(request, conf, host, pod, undo)
            undo.pop_all()
        return result

    def delete(self, request: skel.Request) -> None:
        try:
            conf = load_conf(request)
        except (InvalidConfigError, UnsupportedFieldError):
            delete_unreadable(request)
            return
        # As the reference: IPAM first, then the pod's link (its host end goes with it).
        ipam_del(request)
        delete_pod_link(request.netns, request.ifname)
        if conf.ip_masq:
            from multinic.plugins import masq  # only configs asking for it pay for its import

            masq.teardown_masq(_tag(request))

    def check(self, request: skel.Request) -> None:
        conf = load_conf(request)
        with open_netns(request.netns) as pod, host_netns() as host:
            ipam_check(request)
            prev = require_prev_result(request)
            _check(request, conf, prev, host, pod)

    def status(self, request: skel.Request) -> None:
        load_conf(request)
        delegate(ipam_type(request), "STATUS", request)

    def gc(self, request: skel.Request) -> None:
        load_conf(request)
        delegate(ipam_type(request), "GC", request)
        valid = request.config.valid_attachments
        if valid is None:
            return  # without the list, no rule can be known to be stale
        from multinic.plugins import masq
        from multinic.plugins.nftables import Tag

        network = request.config.name
        masq.gc_rules(Tag(network, "", ""), {Tag(network, a.container_id, a.ifname) for a in valid})


def _add(
    request: skel.Request, conf: PtpConf, host: Netns, pod: Netns, undo: contextlib.ExitStack
) -> Result:
    ipam = ipam_add(request)
    undo.callback(_quietly, ipam_del, request)
    if not ipam.ips:
        raise InvalidConfigError(f"{NAME}: IPAM plugin returned missing IP config")
    for ip in ipam.ips:
        if ip.gateway is None:
            raise InvalidConfigError(
                f"{NAME}: address {ip.address} has no gateway",
                "ptp routes through the gateway: give the IPAM range one",
            )
    for version in sorted({ip.address.version for ip in ipam.ips}):
        _enable_forwarding(host, version)
    pair = create_pod_veth(host, pod, request.ifname, mtu=conf.mtu)
    undo.callback(_quietly, delete_link, host, pair.host.name, missing_ok=True)
    ips = tuple(IPConfig(ip.address, ip.gateway, interface=1) for ip in ipam.ips)
    interfaces = (interface_of(pair.host), interface_of(pair.pod, request.netns))
    result = Result(request.config.cni_version, interfaces, ips, ipam.routes, ipam.dns)
    _configure_pod(pod, pair.pod, result)
    _configure_host(host, pair.host, result)
    if conf.ip_masq:
        from multinic.plugins import masq

        tag = _tag(request)
        undo.callback(_quietly, masq.teardown_masq, tag)
        masq.setup_masq((ip.address for ip in ips), tag)
    if conf.dns:
        result = result._replace(dns=conf.dns)
    return result


def _configure_pod(pod: Netns, link: Link, result: Result) -> None:
    """Addresses without on-link subnet routes; the gateway on-link; the subnet via it."""
    set_up(pod, link)
    for ip in result.ips:
        add_address(pod, link, ip.address, nodad=True, noprefixroute=True)
    for ip in result.ips:
        if ip.gateway is None:
            continue  # refused in _add; kept for the type checker
        host_bits = ip.address.max_prefixlen
        add_route(
            pod,
            ip_network(f"{ip.gateway}/{host_bits}"),
            oif=link,
            scope=RT_SCOPE_LINK,
            src=ip.address.ip,
        )
        add_route(pod, ip.address.network, gateway=ip.gateway, oif=link, src=ip.address.ip)
    for route in result.routes:
        gateway = route.gw or next(
            (ip.gateway for ip in result.ips if ip.address.version == route.dst.version), None
        )
        add_result_route(pod, link, route, gateway)


def _configure_host(host: Netns, link: Link, result: Result) -> None:
    """The gateways as host addresses on the host end; each pod address routed to it."""
    if any(ip.address.version == 6 for ip in result.ips):
        # The host resolves a pod's address for traffic it forwards from its link-local
        # address; left to DAD, that is tentative (NS unanswerable) for a second or two.
        _quietly(write_sysctl, host, f"net/ipv6/conf/{link.name}/accept_dad", 0)
    set_up(host, link)
    for ip in result.ips:
        bits = ip.address.max_prefixlen
        add_address(host, link, ip_interface(f"{ip.gateway}/{bits}"), nodad=True)
        # The reference tolerates an existing route here too.
        with contextlib.suppress(RouteExistsError):
            add_route(host, ip_network(f"{ip.address.ip}/{bits}"), oif=link, scope=RT_SCOPE_LINK)


def _enable_forwarding(host: Netns, version: int) -> None:
    key = "net.ipv4.ip_forward" if version == 4 else "net.ipv6.conf.all.forwarding"
    if read_sysctl(host, key) != "1":
        write_sysctl(host, key, 1)


def _tag(request: skel.Request) -> Tag:
    from multinic.plugins.nftables import Tag

    return Tag(request.config.name, request.container_id, request.ifname)


def _quietly(action: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    # Rollback must not hide the error that caused it.
    with contextlib.suppress(CNIError, OSError):
        action(*args, **kwargs)


def _check(request: skel.Request, conf: PtpConf, prev: Result, host: Netns, pod: Netns) -> None:
    pod_iface = next((i for i in prev.interfaces if i.name == request.ifname and i.sandbox), None)
    if pod_iface is None or pod_iface.sandbox != request.netns:
        raise InterfaceDriftError(
            f"{NAME}: prevResult has no interface {request.ifname!r} in sandbox {request.netns}"
        )
    pod_link = check_interface(pod, request.ifname, prev)
    if pod_link.kind != "veth":
        raise InterfaceDriftError(
            f"pod interface {request.ifname!r} is a {pod_link.kind or 'device'}, not a veth"
        )
    host_end = find_link(host, pod_link.parent) if pod_link.parent else None
    if host_end is None or host_end.kind != "veth" or host_end.parent != pod_link.ifindex:
        raise InterfaceDriftError(f"{NAME}: the host end of {request.ifname!r} is missing")
    present = set(list_addresses(host, host_end))
    for ip in prev.ips:
        if ip.gateway is None:
            continue
        gateway = ip_interface(f"{ip.gateway}/{ip.address.max_prefixlen}")
        if gateway not in present:
            raise InterfaceDriftError(
                f"{NAME}: gateway {gateway} is missing from host veth {host_end.name!r}"
            )
    if conf.ip_masq:
        from multinic.plugins import masq

        if not masq.masq_rules(_tag(request)):
            raise InterfaceDriftError(f"{NAME}: the ipMasq rules of this attachment are missing")


PLUGIN = Ptp()


def main() -> NoReturn:
    skel.main(PLUGIN)
