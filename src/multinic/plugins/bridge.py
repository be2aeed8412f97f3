"""``multinic-bridge``: pods on a Linux bridge in the host, as the reference ``bridge``.

ADD ensures the bridge (shared by every pod of the network, never deleted),
creates a veth pair whose host end (``veth`` + random hex, as the reference)
is a port of the bridge and whose other end is CNI_IFNAME in the pod, asks the
IPAM plugin for addresses and configures them. With ``isGateway`` the bridge
holds each subnet's gateway address and the host forwards; with
``isDefaultGateway`` the pod also gets a default route through it. The result
lists ``[bridge, host veth, pod veth]`` and every address on the pod's one
(index 2), as the reference does.

Config fields are the reference's: bridge (default ``cni0``), isGateway,
isDefaultGateway, forceAddress, ipMasq, mtu, hairpinMode, promiscMode, vlan,
vlanTrunk, preserveDefaultVlan, macspoofchk, enabledad, and the pod MAC from
``MAC=`` in CNI_ARGS, ``args.cni.mac`` or ``runtimeConfig.mac``. ipMasq and
macspoofchk are nftables rules (see :mod:`multinic.plugins.masq`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from ipaddress import IPv4Interface, IPv6Interface, ip_interface, ip_network

from multinic.cni import skel
from multinic.cni.errors import CNIError, InvalidConfigError, UnsupportedFieldError
from multinic.cni.types import DNS, Interface, IPConfig, Result, Route
from multinic.cni.version import SUPPORTED_VERSIONS
from multinic.dataplane import (
    AddressExistsError,
    Link,
    LinkExistsError,
    Netns,
    add_address,
    bridge_vlan_add,
    bridge_vlan_del,
    bridge_vlans,
    create_veth,
    delete_address,
    delete_link,
    ensure_bridge,
    find_link,
    get_link,
    host_netns,
    list_addresses,
    list_links,
    open_netns,
    read_sysctl,
    set_hairpin,
    set_link,
    set_master,
    set_up,
    write_sysctl,
)
from multinic.dataplane.links import BR_STATE_FORWARDING
from multinic.plugins.attach import (
    InterfaceDriftError,
    check_interface,
    configure_interface,
    require_prev_result,
)
from multinic.plugins.delegate import delegate, ipam_add, ipam_check, ipam_del, ipam_type
from multinic.plugins.fields import Fields, plugin_fields
from multinic.plugins.veth import (
    create_pod_veth,
    delete_pod_link,
    delete_unreadable,
    interface_of,
    random_veth_name,
    requested_mac,
)
from multinic.records import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from typing import Any, NoReturn

    from multinic.plugins.nftables import Tag

NAME = "multinic-bridge"
DEFAULT_BRIDGE = "cni0"
#: How long ADD waits for the pod's bridge port to forward before announcing.
PORT_READY_TIMEOUT = 1.0

IPInterface = IPv4Interface | IPv6Interface


class BridgeAddressError(CNIError):
    """The bridge holds a different address of the gateway's family (forceAddress is off)."""


class BridgeConf(NamedTuple):
    """One request's bridge config, parsed and checked."""

    bridge: str
    is_gateway: bool
    is_default_gateway: bool
    force_address: bool
    ip_masq: bool
    mtu: int | None
    hairpin: bool
    promisc: bool
    vlan: int
    vlan_trunk: tuple[int, ...]
    preserve_default_vlan: bool
    macspoofchk: bool
    enable_dad: bool
    layer3: bool
    dns: DNS


def load_conf(request: skel.Request) -> BridgeConf:
    fields = plugin_fields(request.config.raw, NAME)
    bridge = fields.link_name("bridge", DEFAULT_BRIDGE)
    is_default_gateway = fields.boolean("isDefaultGateway")
    vlan = fields.integer("vlan", 0, low=0, high=4094) or 0
    trunk = _vlan_trunk(fields)
    if vlan and trunk:
        raise InvalidConfigError(f"{NAME}: cannot set vlan and vlanTrunk at the same time")
    conf = BridgeConf(
        bridge=bridge,
        is_gateway=fields.boolean("isGateway") or is_default_gateway,
        is_default_gateway=is_default_gateway,
        force_address=fields.boolean("forceAddress"),
        ip_masq=fields.boolean("ipMasq"),
        mtu=fields.integer("mtu", 0, low=0, high=65535) or None,
        hairpin=fields.boolean("hairpinMode"),
        promisc=fields.boolean("promiscMode"),
        vlan=vlan,
        vlan_trunk=trunk,
        preserve_default_vlan=fields.boolean("preserveDefaultVlan", True),
        macspoofchk=fields.boolean("macspoofchk"),
        enable_dad=fields.boolean("enabledad"),
        layer3=request.config.ipam is not None and bool(request.config.ipam.get("type")),
        dns=_dns(request),
    )
    if conf.hairpin and conf.promisc:
        raise InvalidConfigError(
            f"{NAME}: cannot set hairpin mode and promiscuous mode at the same time"
        )
    return conf


def _vlan_trunk(fields: Fields) -> tuple[int, ...]:
    raw = fields.obj.get("vlanTrunk")
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise fields.error("vlanTrunk", "must be a list")
    vids: set[int] = set()
    for n, item in enumerate(raw):
        entry = Fields(item if isinstance(item, dict) else {}, f"{NAME}.vlanTrunk[{n}]")
        low = entry.integer("minID", low=1, high=4094)
        high = entry.integer("maxID", low=1, high=4094)
        if (low is None) != (high is None):
            raise entry.error("minID", "and maxID must be set together")
        if low is not None and high is not None:
            if high < low:
                raise entry.error("minID", f"is greater than maxID ({low} > {high})")
            vids.update(range(low, high + 1))
        single = entry.integer("id", low=1, high=4094)
        if single is not None:
            vids.add(single)
    return tuple(sorted(vids))


def _dns(request: skel.Request) -> DNS:
    raw = request.config.raw.get("dns")
    if not raw:
        return DNS()
    version = request.config.cni_version
    return Result.from_dict({"cniVersion": version, "dns": raw}, version).dns


class Bridge:
    """The plugin object; the executable and an in-process caller use the same one."""

    name = NAME
    supported_versions = SUPPORTED_VERSIONS

    def add(self, request: skel.Request) -> Result:
        conf = load_conf(request)
        mac = requested_mac(request)
        with (
            open_netns(request.netns) as pod,
            host_netns() as host,
            contextlib.ExitStack() as undo,
        ):
            result = _add(request, conf, mac, host, pod, undo)
            undo.pop_all()
        return result

    def delete(self, request: skel.Request) -> None:
        try:
            conf = load_conf(request)
        except (InvalidConfigError, UnsupportedFieldError):
            delete_unreadable(request)
            return
        # As the reference: the pod's link first (its host veth goes with it), then IPAM.
        if not _delete_host_end(request, conf):
            delete_pod_link(request.netns, request.ifname)
        if conf.layer3:
            ipam_del(request)
        if conf.macspoofchk or (conf.layer3 and conf.ip_masq):
            from multinic.plugins import masq  # only configs asking for it pay for its import

            tag = _tag(request)
            if conf.macspoofchk:
                masq.teardown_spoofcheck(tag)
            if conf.layer3 and conf.ip_masq:
                masq.teardown_masq(tag)

    def check(self, request: skel.Request) -> None:
        conf = load_conf(request)
        with open_netns(request.netns) as pod, host_netns() as host:
            if conf.layer3:
                ipam_check(request)
            prev = require_prev_result(request)
            _check(request, conf, prev, host, pod)

    def status(self, request: skel.Request) -> None:
        conf = load_conf(request)
        if conf.layer3:
            delegate(ipam_type(request), "STATUS", request)

    def gc(self, request: skel.Request) -> None:
        from multinic.plugins import masq
        from multinic.plugins.nftables import Tag

        conf = load_conf(request)
        if conf.layer3:
            delegate(ipam_type(request), "GC", request)
        valid = request.config.valid_attachments
        if valid is None:
            return  # without the list, no rule can be known to be stale
        network = request.config.name
        keep = {Tag(network, a.container_id, a.ifname) for a in valid}
        masq.gc_rules(Tag(network, "", ""), keep)


def _delete_host_end(request: skel.Request, conf: BridgeConf) -> bool:
    """Delete the pair from its host end named in prevResult; True if that was possible.

    Runtimes pass the cached result on DEL: its host veth, still a port of our
    bridge with its peer in another namespace, takes the pod's end along, and the
    pod's namespace need not be entered (a thread and setns saved per DEL).
    """
    prev = request.config.prev_result
    if prev is None:
        return False
    names = [i.name for i in prev.interfaces if not i.sandbox and i.name != conf.bridge]
    with host_netns() as host:
        br = find_link(host, conf.bridge)
        for name in names:
            port = find_link(host, name)
            if (
                br is not None
                and port is not None
                and port.kind == "veth"
                and port.master == br.ifindex
                and port.parent_netnsid is not None
                and not name.startswith(f"{conf.bridge}.")  # the VLAN gateway is shared
            ):
                return delete_link(host, port, missing_ok=True)
    return False


# -- ADD ---------------------------------------------------------------------------------


def _add(
    request: skel.Request,
    conf: BridgeConf,
    mac: str | None,
    host: Netns,
    pod: Netns,
    undo: contextlib.ExitStack,
) -> Result:
    if find_link(host, conf.bridge) is None:
        # Undone last (LIFO): a failed first ADD leaves no empty bridge behind.
        undo.callback(_quietly, _remove_unused_bridge, host, conf.bridge)
    br = ensure_bridge(
        host,
        conf.bridge,
        mtu=conf.mtu,
        vlan_filtering=True if conf.vlan or conf.vlan_trunk else None,
        promisc=True if conf.promisc else None,
    )
    _quietly(write_sysctl, host, f"net/ipv6/conf/{conf.bridge}/accept_ra", 0)
    if br.mac and not _mac_pinned(br.name):
        # Pin the bridge's MAC: otherwise it takes its lowest port's, changing as pods
        # come and go (and CHECK, which compares it with the result, would fail). Once:
        # each MAC change flushes the bridge's neighbour entries.
        set_link(host, br, mac=br.mac)
    pair = create_pod_veth(host, pod, request.ifname, mtu=conf.mtu, mac=mac)
    undo.callback(_quietly, delete_link, host, pair.host.name, missing_ok=True)
    _attach_port(host, br, pair.host, conf)
    # Up at once: the bridge enables the port asynchronously once it has carrier, and
    # it should be forwarding by the time the addresses are announced.
    set_up(pod, pair.pod)
    if conf.macspoofchk:
        from multinic.plugins import masq  # only configs asking for it pay for its import

        tag = _tag(request)
        masq.setup_spoofcheck(pair.host.name, pair.pod.mac or "", tag)
        undo.callback(_quietly, masq.teardown_spoofcheck, tag)
    interfaces = (
        interface_of(br),
        interface_of(pair.host),
        interface_of(pair.pod, request.netns),
    )
    result = Result(request.config.cni_version, interfaces)
    if conf.layer3:
        result = _add_layer3(request, conf, host, pod, br, result, undo)
        _announce(host, pod, pair.host.name, request.ifname, result)
    # MACs as they are now: the bridge's changes when its first port or address comes.
    br = get_link(host, br.ifindex)
    host_end = get_link(host, pair.host.name)
    fresh = (interface_of(br), interface_of(host_end), *result.interfaces[2:])
    result = result._replace(interfaces=fresh)
    if conf.dns:
        result = result._replace(dns=conf.dns)
    return result


def _remove_unused_bridge(host: Netns, name: str) -> None:
    """Undo of the ADD that created the bridge: remove it, unless a pod is on it by now.

    A concurrent ADD may have found the new bridge and attached its pod: a port
    whose peer is in another namespace. The only other ports this ADD can have
    made are the VLAN gateway's (a veth pair on the node), which go with it.
    """
    br = find_link(host, name)
    if br is None or br.kind != "bridge":
        return
    ports = [link for link in list_links(host) if link.master == br.ifindex]
    if any(port.parent_netnsid is not None for port in ports):
        return
    for port in ports:
        delete_link(host, port, missing_ok=True)
    delete_link(host, br, missing_ok=True)


def _mac_pinned(bridge: str) -> bool:
    """True when the bridge's MAC was set explicitly (sysfs ``addr_assign_type`` 3)."""
    try:
        with open(f"/sys/class/net/{bridge}/addr_assign_type", encoding="ascii") as file:
            return file.read().strip() == "3"
    except OSError:
        return False  # no sysfs for this namespace: pin it again, harmlessly


def _attach_port(host: Netns, br: Link, port: Link, conf: BridgeConf) -> None:
    set_master(host, port, br)
    if conf.hairpin:
        set_hairpin(host, port, True)
    if (conf.vlan or conf.vlan_trunk) and not conf.preserve_default_vlan:
        for vlan in bridge_vlans(host, port):
            bridge_vlan_del(host, port, vlan.vid)
    if conf.vlan:
        bridge_vlan_add(host, port, conf.vlan, pvid=True, untagged=True)
    for vid in conf.vlan_trunk:
        bridge_vlan_add(host, port, vid)
    set_up(host, port)


def _add_layer3(
    request: skel.Request,
    conf: BridgeConf,
    host: Netns,
    pod: Netns,
    br: Link,
    result: Result,
    undo: contextlib.ExitStack,
) -> Result:
    ipam = ipam_add(request)
    undo.callback(_quietly, ipam_del, request)
    if not ipam.ips:
        raise InvalidConfigError(f"{NAME}: IPAM plugin returned missing IP config")
    ips, routes = _gateways(ipam, conf)
    result = result._replace(ips=ips, routes=routes, dns=ipam.dns)
    configure_interface(pod, request.ifname, result, dad=conf.enable_dad, send_announcements=False)
    if conf.is_gateway:
        result = _set_gateways(host, br, result, conf)
    if conf.ip_masq:
        from multinic.plugins import masq

        tag = _tag(request)
        undo.callback(_quietly, masq.teardown_masq, tag)
        masq.setup_masq((ip.address for ip in result.ips), tag)
    return result


def _gateways(ipam: Result, conf: BridgeConf) -> tuple[tuple[IPConfig, ...], tuple[Route, ...]]:
    """Every address on the pod's interface (index 2), gateways filled in, default routes."""
    ips = []
    routes = list(ipam.routes)
    for ip in ipam.ips:
        gateway = ip.gateway
        if gateway is None and conf.is_gateway:
            gateway = ip.address.network.network_address + 1
        ips.append(IPConfig(ip.address, gateway, interface=2))
        if conf.is_default_gateway:
            default = ip_network("0.0.0.0/0" if ip.address.version == 4 else "::/0")
            if not any(r.dst == default and r.gw is not None for r in routes):
                routes.append(Route(default, gateway))
    return tuple(ips), tuple(routes)


def _set_gateways(host: Netns, br: Link, result: Result, conf: BridgeConf) -> Result:
    target = br
    if conf.vlan:
        target = _vlan_gateway(host, br, conf)
        result = result._replace(interfaces=(*result.interfaces, interface_of(target)))
    families = set()
    for ip in result.ips:
        if ip.gateway is None:
            continue
        _ensure_address(
            host, target, ip_interface(f"{ip.gateway}/{ip.address.network.prefixlen}"), conf
        )
        families.add(ip.address.version)
    for version in sorted(families):
        _enable_forwarding(host, version)
    return result


def _ensure_address(host: Netns, link: Link, gateway: IPInterface, conf: BridgeConf) -> None:
    """The gateway address on the bridge, as the reference's ``ensureAddr``."""
    for present in list_addresses(host, link, version=gateway.version):
        if present == gateway:
            return
        overlapping = present.network.overlaps(gateway.network)
        if gateway.version == 4 or overlapping:
            if not conf.force_address:
                raise BridgeAddressError(
                    f"{link.name!r} already has an IP address different from {gateway}",
                    f"found {present}; set forceAddress to replace it",
                )
            delete_address(host, link, present, missing_ok=True)
    try:
        add_address(host, link, gateway, nodad=True)
    except AddressExistsError:
        # A concurrent ADD of this network (the node daemon runs them in parallel)
        # assigned the same gateway between our look and our add: fine.
        if gateway not in list_addresses(host, link, version=gateway.version):
            raise


def _vlan_gateway(host: Netns, br: Link, conf: BridgeConf) -> Link:
    """``<bridge>.<vlan>``: a veth whose peer is an untagged port of the VLAN, for the gateway."""
    name = f"{br.name}.{conf.vlan}"
    found = find_link(host, name)
    if found is not None:
        return found
    try:
        gateway, port = create_veth(host, name, random_veth_name(), mtu=br.mtu)
    except LinkExistsError:
        found = find_link(host, name)  # a concurrent ADD made it first: fine
        if found is None:
            raise  # the random peer name was taken, not ours
        return found
    _attach_port(host, br, port, conf._replace(hairpin=False, vlan_trunk=()))
    set_up(host, gateway)
    return get_link(host, name)


def _enable_forwarding(host: Netns, version: int) -> None:
    key = "net.ipv4.ip_forward" if version == 4 else "net.ipv6.conf.all.forwarding"
    if read_sysctl(host, key) != "1":
        write_sysctl(host, key, 1)


def _announce(host: Netns, pod: Netns, port: str, ifname: str, result: Result) -> None:
    """Have the pod's kernel announce its addresses once its bridge port forwards.

    Neighbours may cache a previous owner's MAC for a reused address. A gratuitous
    ARP or unsolicited NA sent before the bridge enables the new port (it does so
    asynchronously, after carrier) is dropped, so wait for forwarding, as the
    reference waits for the port's oper state. With arp_notify and ndisc_notify
    on, the kernel announces every address of a link whose MAC is set, even to
    the MAC it has: that spares an AF_PACKET socket, whose close waits for an RCU
    grace period (10-20 ms here) on every pod start. Best effort, as announcing is.
    """
    versions = {ip.address.version for ip in result.ips}
    if not versions:
        return
    _wait_forwarding(host, port)
    if 4 in versions:
        _quietly(write_sysctl, pod, f"net/ipv4/conf/{ifname}/arp_notify", 1)
    if 6 in versions:
        _quietly(write_sysctl, pod, f"net/ipv6/conf/{ifname}/ndisc_notify", 1)
    link = get_link(pod, ifname)
    if link.mac:
        set_link(pod, link, mac=link.mac)


def _wait_forwarding(host: Netns, port: str) -> None:
    import time  # only reached with addresses to announce

    deadline = time.monotonic() + PORT_READY_TIMEOUT
    while get_link(host, port).info.get("port_state") != BR_STATE_FORWARDING:
        if time.monotonic() > deadline:
            return  # STP keeps it learning, say: announce anyway, best effort
        time.sleep(0.001)


def _tag(request: skel.Request) -> Tag:
    from multinic.plugins.nftables import Tag

    return Tag(request.config.name, request.container_id, request.ifname)


def _quietly(action: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    # Rollback and best-effort steps must not hide the error that matters.
    with contextlib.suppress(CNIError, OSError):
        action(*args, **kwargs)


# -- CHECK -------------------------------------------------------------------------------


def _check(request: skel.Request, conf: BridgeConf, prev: Result, host: Netns, pod: Netns) -> None:
    expected = {i.name: i for i in prev.interfaces if not i.sandbox}
    pod_iface = next((i for i in prev.interfaces if i.name == request.ifname and i.sandbox), None)
    if pod_iface is None or pod_iface.sandbox != request.netns:
        raise InterfaceDriftError(
            f"{NAME}: prevResult has no interface {request.ifname!r} in sandbox {request.netns}"
        )
    br = _check_bridge(host, conf, expected.get(conf.bridge))
    pod_link = check_interface(pod, request.ifname, prev)
    if pod_link.kind != "veth":
        raise InterfaceDriftError(
            f"pod interface {request.ifname!r} is a {pod_link.kind or 'device'}, not a veth"
        )
    for iface in expected.values():
        if iface.name == conf.bridge:
            continue
        port = find_link(host, iface.name)
        if port is not None and _is_pods_port(port, pod_link, br):
            if iface.mac and port.mac != iface.mac:
                raise InterfaceDriftError(
                    f"host veth {iface.name!r} has MAC {port.mac}, the result says {iface.mac}"
                )
            if port.info.get("hairpin", 0) != int(conf.hairpin):
                raise InterfaceDriftError(
                    f"host veth {iface.name!r}: hairpin mode is not {conf.hairpin}"
                )
            break
    else:
        raise InterfaceDriftError(
            f"{NAME}: no host veth of the result is the peer of {request.ifname!r}",
            f"on bridge {conf.bridge!r}",
        )
    from multinic.plugins import masq

    tag = _tag(request)
    if conf.layer3 and conf.ip_masq and not masq.masq_rules(tag):
        raise InterfaceDriftError(f"{NAME}: the ipMasq rules of this attachment are missing")
    if conf.macspoofchk and not masq.spoofcheck_rules(tag):
        raise InterfaceDriftError(f"{NAME}: the macspoofchk rule of this attachment is missing")


def _check_bridge(host: Netns, conf: BridgeConf, iface: Interface | None) -> Link:
    br = find_link(host, conf.bridge)
    if br is None or iface is None:
        raise InterfaceDriftError(f"{NAME}: bridge {conf.bridge!r} was not found")
    if br.kind != "bridge":
        raise InterfaceDriftError(f"{conf.bridge!r} is a {br.kind or 'device'}, not a bridge")
    if iface.mac and br.mac != iface.mac:
        raise InterfaceDriftError(
            f"bridge {conf.bridge!r} has MAC {br.mac}, the result says {iface.mac}"
        )
    if br.promisc != conf.promisc:
        raise InterfaceDriftError(
            f"bridge {conf.bridge!r}: promiscuous mode is {br.promisc}",
            f"the config says {conf.promisc}",
        )
    return br


def _is_pods_port(port: Link, pod_link: Link, br: Link) -> bool:
    return (
        port.kind == "veth"
        and port.parent == pod_link.ifindex
        and pod_link.parent == port.ifindex
        and port.master == br.ifindex
    )


PLUGIN = Bridge()


def main() -> NoReturn:
    skel.main(PLUGIN)
