"""Bridges and their ports: the idempotent ``ensure_bridge`` for the shared bridge,
hairpin mode, and port VLANs (the bridge plugin's ``vlan``).
"""

from __future__ import annotations

import struct

from multinic.dataplane import netlink as nl
from multinic.dataplane.errors import DataplaneError, LinkExistsError, WrongLinkKindError
from multinic.dataplane.links import (
    AF_BRIDGE,
    IFINFOMSG,
    IFLA_BR_VLAN_FILTERING,
    IFLA_BRPORT_MODE,
    IFLA_EXT_MASK,
    IFLA_IFNAME,
    IFLA_PROTINFO,
    RTM_DELLINK,
    RTM_GETLINK,
    RTM_NEWLINK,
    RTM_SETLINK,
    Link,
    change_link,
    common_attrs,
    find_link,
    get_link,
    ifinfo,
    linkinfo,
    new_link,
    resolve,
    set_link,
)
from multinic.dataplane.netns import Netns
from multinic.records import NamedTuple

IFLA_AF_SPEC = 26
IFLA_BRIDGE_FLAGS = 0
IFLA_BRIDGE_VLAN_INFO = 2
BRIDGE_FLAGS_MASTER = 1
BRIDGE_FLAGS_SELF = 2
BRIDGE_VLAN_INFO_PVID = 2
BRIDGE_VLAN_INFO_UNTAGGED = 4
RTEXT_FILTER_BRVLAN = 2


class BridgeVlan(NamedTuple):
    """One VLAN on a bridge port."""

    vid: int
    pvid: bool
    untagged: bool


def create_bridge(
    ns: Netns, name: str, *, mtu: int | None = None, vlan_filtering: bool | None = None
) -> Link:
    """A new bridge; LinkExistsError if the name is taken (see ensure_bridge)."""
    data = [] if vlan_filtering is None else [nl.attr_u8(IFLA_BR_VLAN_FILTERING, vlan_filtering)]
    attrs = [nl.attr_str(IFLA_IFNAME, name), *common_attrs(mtu, None), linkinfo("bridge", *data)]
    new_link(ns, ifinfo() + b"".join(attrs), name=name, target=ns, what="bridge")
    return get_link(ns, name)


def ensure_bridge(
    ns: Netns,
    name: str,
    *,
    mtu: int | None = None,
    vlan_filtering: bool | None = None,
    promisc: bool | None = None,
    up: bool = True,
) -> Link:
    """The bridge ``name``, created if missing, with the options given; idempotent.

    An existing link of that name that is not a bridge -> WrongLinkKindError.
    """
    bridge = find_link(ns, name)
    if bridge is None:
        try:
            bridge = create_bridge(ns, name, mtu=mtu, vlan_filtering=vlan_filtering)
        except LinkExistsError:
            bridge = get_link(ns, name)  # a concurrent ADD made it first: fine
    if bridge.kind != "bridge":
        raise WrongLinkKindError(
            f"existing link is a {bridge.kind or 'device'}, not a bridge",
            interface=name,
            netns=ns.name,
        )
    if vlan_filtering is not None and bool(bridge.info.get("vlan_filtering")) != vlan_filtering:
        _set_bridge_vlan_filtering(ns, bridge, vlan_filtering)
    set_link(
        ns,
        bridge,
        mtu=mtu if mtu is not None and mtu != bridge.mtu else None,
        promisc=promisc if promisc is not None and promisc != bridge.promisc else None,
        up=True if up and not bridge.up else None,
    )
    return get_link(ns, bridge.ifindex)


def _set_bridge_vlan_filtering(ns: Netns, bridge: Link, on: bool) -> None:
    payload = ifinfo(index=bridge.ifindex) + linkinfo(
        "bridge", nl.attr_u8(IFLA_BR_VLAN_FILTERING, int(on))
    )
    change_link(ns, RTM_NEWLINK, payload, bridge.name, "cannot set vlan_filtering")


def set_hairpin(ns: Netns, port: str | int | Link, on: bool = True) -> None:
    """Hairpin mode on a bridge port (frames may go back out the port they came in)."""
    index, name = resolve(ns, port)
    payload = ifinfo(index=index, family=AF_BRIDGE) + nl.nested(
        IFLA_PROTINFO, nl.attr_u8(IFLA_BRPORT_MODE, int(on))
    )
    change_link(ns, RTM_SETLINK, payload, name, "cannot set hairpin mode")


def _vlan_spec(vid: int, flags: int, bridge_flags: int) -> bytes:
    if not 0 < vid < 4095:
        raise DataplaneError(f"VLAN id {vid} not in 1-4094")
    return nl.nested(
        IFLA_AF_SPEC,
        nl.attr_u16(IFLA_BRIDGE_FLAGS, bridge_flags),
        nl.attr(IFLA_BRIDGE_VLAN_INFO, struct.pack("=HH", flags, vid)),
    )


def bridge_vlan_add(
    ns: Netns,
    port: str | int | Link,
    vid: int,
    *,
    pvid: bool = False,
    untagged: bool = False,
    self_: bool = False,
) -> None:
    """Allow VLAN ``vid`` on a bridge port (``self_``: on the bridge device itself)."""
    index, name = resolve(ns, port)
    flags = (BRIDGE_VLAN_INFO_PVID if pvid else 0) | (BRIDGE_VLAN_INFO_UNTAGGED if untagged else 0)
    bridge_flags = BRIDGE_FLAGS_SELF if self_ else BRIDGE_FLAGS_MASTER
    payload = ifinfo(index=index, family=AF_BRIDGE) + _vlan_spec(vid, flags, bridge_flags)
    change_link(ns, RTM_SETLINK, payload, name, f"cannot add VLAN {vid}")


def bridge_vlan_del(ns: Netns, port: str | int | Link, vid: int, *, self_: bool = False) -> None:
    """Remove VLAN ``vid`` from a bridge port."""
    index, name = resolve(ns, port)
    bridge_flags = BRIDGE_FLAGS_SELF if self_ else BRIDGE_FLAGS_MASTER
    payload = ifinfo(index=index, family=AF_BRIDGE) + _vlan_spec(vid, 0, bridge_flags)
    change_link(ns, RTM_DELLINK, payload, name, f"cannot remove VLAN {vid}")


def bridge_vlans(ns: Netns, port: str | int | Link) -> list[BridgeVlan]:
    """The VLANs of a bridge port (or of the bridge itself)."""
    index, _ = resolve(ns, port)
    payload = ifinfo(family=AF_BRIDGE) + nl.attr_u32(IFLA_EXT_MASK, RTEXT_FILTER_BRVLAN)
    vlans = []
    for message in ns.rtnl.dump(RTM_GETLINK, payload):
        if IFINFOMSG.unpack_from(message.payload)[2] != index:
            continue
        spec = nl.parse_attrs(message.payload, IFINFOMSG.size).get(IFLA_AF_SPEC, b"")
        for type_, raw in nl.iter_attrs(spec):
            if type_ == IFLA_BRIDGE_VLAN_INFO:
                flags, vid = struct.unpack_from("=HH", raw)
                pvid = bool(flags & BRIDGE_VLAN_INFO_PVID)
                vlans.append(BridgeVlan(vid, pvid, bool(flags & BRIDGE_VLAN_INFO_UNTAGGED)))
    return vlans
