"""Links: look-up, the kinds plugins create (veth, macvlan, ipvlan, vlan, vxlan),
moves between namespaces, attributes and deletion (bridges: bridge.py).

Exact ``create_*`` calls fail with LinkExistsError when the name is taken in the
target namespace (a pod interface must not exist before ADD).
"""

from __future__ import annotations

import errno
import ipaddress
import struct

from multinic.dataplane import netlink as nl
from multinic.dataplane.errors import (
    DataplaneError,
    LinkExistsError,
    LinkNotFoundError,
    kernel_error,
)
from multinic.dataplane.netns import Netns
from multinic.records import NamedTuple

RTM_NEWLINK = 16
RTM_DELLINK = 17
RTM_GETLINK = 18
RTM_SETLINK = 19

AF_UNSPEC = 0
AF_BRIDGE = 7

IFF_UP = 0x1
IFF_PROMISC = 0x100
IFF_ALLMULTI = 0x200

IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFLA_MTU = 4
IFLA_LINK = 5
IFLA_MASTER = 10
IFLA_PROTINFO = 12
IFLA_TXQLEN = 13
IFLA_IFALIAS = 20
IFLA_LINKINFO = 18
IFLA_NET_NS_FD = 28
IFLA_EXT_MASK = 29
IFLA_LINK_NETNSID = 37
RTEXT_FILTER_SKIP_STATS = 8

IFLA_INFO_KIND = 1
IFLA_INFO_DATA = 2
IFLA_INFO_SLAVE_KIND = 4
IFLA_INFO_SLAVE_DATA = 5

VETH_INFO_PEER = 1
IFLA_BR_VLAN_FILTERING = 7
IFLA_BRPORT_STATE = 1  # BR_STATE_*: 3 is forwarding
IFLA_BRPORT_MODE = 4  # hairpin
BR_STATE_FORWARDING = 3

IFLA_MACVLAN_MODE = 1
IFLA_IPVLAN_MODE = 1
IFLA_IPVLAN_FLAGS = 2
IFLA_VLAN_ID = 1
IFLA_VLAN_PROTOCOL = 5
IFLA_VXLAN_ID = 1
IFLA_VXLAN_GROUP = 2
IFLA_VXLAN_LINK = 3
IFLA_VXLAN_LOCAL = 4
IFLA_VXLAN_LEARNING = 7
IFLA_VXLAN_PORT = 15
IFLA_VXLAN_GROUP6 = 16
IFLA_VXLAN_LOCAL6 = 17

MACVLAN_MODES = {"private": 1, "vepa": 2, "bridge": 4, "passthru": 8, "source": 16}
IPVLAN_MODES = {"l2": 0, "l3": 1, "l3s": 2}
IPVLAN_FLAGS = {"bridge": 0, "private": 1, "vepa": 2}

IFINFOMSG = struct.Struct("=BxHiII")

#: Counters are a third of a link message and nobody here reads them.
_SKIP_STATS = nl.attr_u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS)


class Link(NamedTuple):
    """A link as the kernel reports it (``info`` holds kind-specific fields)."""

    ifindex: int
    name: str
    kind: str  # "" for a device without a driver kind (a NIC, lo)
    mac: str | None
    mtu: int
    up: bool
    master: int | None  # index of the bridge (or bond) this link is enslaved to
    parent: int | None  # IFLA_LINK: the lower device, or a veth's peer index
    parent_netnsid: int | None  # set when the parent/peer lives in another namespace
    txqlen: int
    promisc: bool
    allmulti: bool
    info: dict[str, int | str]
    alias: str = ""  # IFLA_IFALIAS: free text kept with the device across moves


# -- encoding helpers ------------------------------------------------------------------


def ifinfo(index: int = 0, flags: int = 0, change: int = 0, family: int = AF_UNSPEC) -> bytes:
    return IFINFOMSG.pack(family, 0, index, flags, change)


def mac_bytes(mac: str) -> bytes:
    """``aa:bb:cc:dd:ee:ff`` as 6 bytes; anything else is a DataplaneError."""
    raw = bytes.fromhex(mac.replace(":", "")) if _looks_like_mac(mac) else b""
    if len(raw) != 6:
        raise DataplaneError(f"invalid MAC address {mac!r}")
    return raw


def _looks_like_mac(mac: str) -> bool:
    parts = mac.split(":")
    return (
        len(parts) == 6
        and all(len(p) == 2 for p in parts)
        and all(c in "0123456789abcdefABCDEF" for c in mac.replace(":", ""))
    )


def _mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def common_attrs(mtu: int | None, mac: str | None) -> list[bytes]:
    attrs = []
    if mtu is not None:
        attrs.append(nl.attr_u32(IFLA_MTU, mtu))
    if mac is not None:
        attrs.append(nl.attr(IFLA_ADDRESS, mac_bytes(mac)))
    return attrs


# -- decoding --------------------------------------------------------------------------


def decode_link(payload: bytes) -> Link:
    """A Link from an RTM_NEWLINK message's payload."""
    _family, _type, index, flags, _change = IFINFOMSG.unpack_from(payload)
    attrs = nl.parse_attrs(payload, IFINFOMSG.size)
    linkinfo = nl.get_nested(attrs, IFLA_LINKINFO)
    kind = nl.get_str(linkinfo, IFLA_INFO_KIND) or ""
    info = _decode_info(kind, nl.get_nested(linkinfo, IFLA_INFO_DATA))
    if nl.get_str(linkinfo, IFLA_INFO_SLAVE_KIND) == "bridge":
        port = nl.get_nested(linkinfo, IFLA_INFO_SLAVE_DATA)
        info["hairpin"] = nl.get_u8(port, IFLA_BRPORT_MODE) or 0
        info["port_state"] = nl.get_u8(port, IFLA_BRPORT_STATE) or 0
    mac = attrs.get(IFLA_ADDRESS)
    return Link(
        ifindex=index,
        name=nl.get_str(attrs, IFLA_IFNAME) or "",
        kind=kind,
        mac=_mac_text(mac) if mac is not None and len(mac) == 6 else None,
        mtu=nl.get_u32(attrs, IFLA_MTU) or 0,
        up=bool(flags & IFF_UP),
        master=nl.get_u32(attrs, IFLA_MASTER),
        parent=nl.get_u32(attrs, IFLA_LINK),
        parent_netnsid=nl.get_s32(attrs, IFLA_LINK_NETNSID),
        txqlen=nl.get_u32(attrs, IFLA_TXQLEN) or 0,
        promisc=bool(flags & IFF_PROMISC),
        allmulti=bool(flags & IFF_ALLMULTI),
        info=info,
        alias=nl.get_str(attrs, IFLA_IFALIAS) or "",
    )


def _decode_info(kind: str, data: dict[int, bytes]) -> dict[str, int | str]:
    info: dict[str, int | str] = {}
    if kind in ("macvlan", "macvtap"):
        mode = nl.get_u32(data, IFLA_MACVLAN_MODE)
        info["mode"] = _name_of(MACVLAN_MODES, mode)
    elif kind == "ipvlan":
        info["mode"] = _name_of(IPVLAN_MODES, nl.get_u16(data, IFLA_IPVLAN_MODE))
        info["flags"] = _name_of(IPVLAN_FLAGS, nl.get_u16(data, IFLA_IPVLAN_FLAGS) or 0)
    elif kind == "vlan":
        info["vlan_id"] = nl.get_u16(data, IFLA_VLAN_ID) or 0
        info["protocol"] = nl.get_be16(data, IFLA_VLAN_PROTOCOL) or 0x8100
    elif kind == "vxlan":
        info["vni"] = nl.get_u32(data, IFLA_VXLAN_ID) or 0
        info["port"] = nl.get_be16(data, IFLA_VXLAN_PORT) or 0
        info["learning"] = nl.get_u8(data, IFLA_VXLAN_LEARNING) or 0
    elif kind == "bridge":
        info["vlan_filtering"] = nl.get_u8(data, IFLA_BR_VLAN_FILTERING) or 0
    return info


def _name_of(table: dict[str, int], value: int | None) -> str:
    for name, number in table.items():
        if number == value:
            return name
    return str(value)


# -- look-up ---------------------------------------------------------------------------


def find_link(ns: Netns, link: str | int | Link) -> Link | None:
    """The link by name or index, or None when there is none."""
    if isinstance(link, Link):
        link = link.ifindex
    if isinstance(link, int):
        payload = ifinfo(index=link) + _SKIP_STATS
    else:
        payload = ifinfo() + nl.attr_str(IFLA_IFNAME, link) + _SKIP_STATS
    try:
        replies = ns.rtnl.request(RTM_GETLINK, payload)
    except nl.KernelError as exc:
        if exc.errno in (errno.ENODEV, errno.ENOENT):
            return None
        raise kernel_error(
            "cannot look up link", exc.errno, exc.message, interface=str(link), netns=ns.name
        ) from exc
    return decode_link(replies[0].payload)


def get_link(ns: Netns, link: str | int | Link) -> Link:
    """The link by name or index; LinkNotFoundError when there is none."""
    found = find_link(ns, link)
    if found is None:
        name = link.name if isinstance(link, Link) else str(link)
        raise LinkNotFoundError("link not found", interface=name, netns=ns.name, errno=errno.ENODEV)
    return found


def list_links(ns: Netns) -> list[Link]:
    """Every link in the namespace."""
    return [decode_link(m.payload) for m in ns.rtnl.dump(RTM_GETLINK, ifinfo() + _SKIP_STATS)]


def resolve(ns: Netns, link: str | int | Link) -> tuple[int, str]:
    if isinstance(link, Link):
        return link.ifindex, link.name
    found = get_link(ns, link)
    return found.ifindex, found.name


def _name(link: str | int | Link) -> str:
    return link.name if isinstance(link, Link) else str(link)


# -- creation --------------------------------------------------------------------------


def new_link(ns: Netns, payload: bytes, *, name: str, target: Netns, what: str) -> None:
    try:
        ns.rtnl.request(RTM_NEWLINK, payload, nl.NLM_F_CREATE | nl.NLM_F_EXCL)
    except nl.KernelError as exc:
        raise kernel_error(
            f"cannot create {what}",
            exc.errno,
            exc.message,
            interface=name,
            netns=target.name,
            by_errno={errno.EEXIST: LinkExistsError, errno.ENODEV: LinkNotFoundError},
        ) from exc


def linkinfo(kind: str, *data: bytes) -> bytes:
    children = [nl.attr_str(IFLA_INFO_KIND, kind)]
    if data:
        children.append(nl.nested(IFLA_INFO_DATA, *data))
    return nl.nested(IFLA_LINKINFO, *children)


def create_veth(
    ns: Netns,
    name: str,
    peer_name: str,
    *,
    peer_ns: Netns | None = None,
    mtu: int | None = None,
    mac: str | None = None,
    peer_mac: str | None = None,
) -> tuple[Link, Link]:
    """A veth pair: ``name`` in ``ns``, ``peer_name`` directly in ``peer_ns`` (default ``ns``).

    Returns (link, peer). Either name already taken -> LinkExistsError naming it.
    """
    peer_ns = peer_ns or ns
    peer = [nl.attr_str(IFLA_IFNAME, peer_name), *common_attrs(mtu, peer_mac)]
    if peer_ns is not ns:
        peer.append(nl.attr_u32(IFLA_NET_NS_FD, peer_ns.fd))
    peer_msg = nl.attr(VETH_INFO_PEER, ifinfo() + b"".join(peer))
    payload = (
        ifinfo()
        + nl.attr_str(IFLA_IFNAME, name)
        + b"".join(common_attrs(mtu, mac))
        + linkinfo("veth", peer_msg)
    )
    try:
        new_link(ns, payload, name=name, target=ns, what="veth pair")
    except LinkExistsError as exc:
        # Say which end collides: the pod's name is the one that matters to the user.
        if find_link(peer_ns, peer_name) is not None:
            raise LinkExistsError(
                "cannot create veth pair",
                interface=peer_name,
                netns=peer_ns.name,
                errno=errno.EEXIST,
            ) from exc
        raise
    return get_link(ns, name), get_link(peer_ns, peer_name)


def _create_on_parent(
    ns: Netns,
    name: str,
    parent: str | int | Link,
    kind_info: bytes,
    *,
    target_ns: Netns | None,
    mtu: int | None,
    mac: str | None,
    what: str,
) -> Link:
    """A link on a lower device in ``ns``, created directly in ``target_ns`` if given."""
    parent_index, _ = resolve(ns, parent)
    target = target_ns or ns
    attrs = [
        nl.attr_str(IFLA_IFNAME, name),
        nl.attr_u32(IFLA_LINK, parent_index),
        *common_attrs(mtu, mac),
        kind_info,
    ]
    if target is not ns:
        attrs.append(nl.attr_u32(IFLA_NET_NS_FD, target.fd))
    new_link(ns, ifinfo() + b"".join(attrs), name=name, target=target, what=what)
    return get_link(target, name)


def create_macvlan(
    ns: Netns,
    name: str,
    parent: str | int | Link,
    *,
    mode: str = "bridge",
    target_ns: Netns | None = None,
    mtu: int | None = None,
    mac: str | None = None,
) -> Link:
    """A macvlan on ``parent`` (in ``ns``), placed in ``target_ns`` (default ``ns``)."""
    if mode not in MACVLAN_MODES:
        raise DataplaneError(f"unknown macvlan mode {mode!r}", interface=name, netns=ns.name)
    info = linkinfo("macvlan", nl.attr_u32(IFLA_MACVLAN_MODE, MACVLAN_MODES[mode]))
    return _create_on_parent(
        ns, name, parent, info, target_ns=target_ns, mtu=mtu, mac=mac, what="macvlan"
    )


def create_ipvlan(
    ns: Netns,
    name: str,
    parent: str | int | Link,
    *,
    mode: str = "l2",
    flag: str = "bridge",
    target_ns: Netns | None = None,
    mtu: int | None = None,
) -> Link:
    """An ipvlan (mode l2/l3/l3s, flag bridge/private/vepa) on ``parent``."""
    if mode not in IPVLAN_MODES or flag not in IPVLAN_FLAGS:
        raise DataplaneError(
            f"unknown ipvlan mode/flag {mode!r}/{flag!r}", interface=name, netns=ns.name
        )
    info = linkinfo(
        "ipvlan",
        nl.attr_u16(IFLA_IPVLAN_MODE, IPVLAN_MODES[mode]),
        nl.attr_u16(IFLA_IPVLAN_FLAGS, IPVLAN_FLAGS[flag]),
    )
    return _create_on_parent(
        ns, name, parent, info, target_ns=target_ns, mtu=mtu, mac=None, what="ipvlan"
    )


def create_vlan(
    ns: Netns,
    name: str,
    parent: str | int | Link,
    vlan_id: int,
    *,
    target_ns: Netns | None = None,
    mtu: int | None = None,
    mac: str | None = None,
) -> Link:
    """An 802.1Q VLAN ``vlan_id`` (1-4094) on ``parent``."""
    if not 0 < vlan_id < 4095:
        raise DataplaneError(f"VLAN id {vlan_id} not in 1-4094", interface=name, netns=ns.name)
    info = linkinfo("vlan", nl.attr_u16(IFLA_VLAN_ID, vlan_id))
    return _create_on_parent(
        ns, name, parent, info, target_ns=target_ns, mtu=mtu, mac=mac, what="vlan"
    )


def create_vxlan(
    ns: Netns,
    name: str,
    vni: int,
    *,
    parent: str | int | Link | None = None,
    local: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None,
    group: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None,
    port: int = 4789,
    learning: bool = True,
    mtu: int | None = None,
    mac: str | None = None,
) -> Link:
    """A VXLAN device with ``vni``; ``group`` is a multicast group or a unicast remote."""
    data = [
        nl.attr_u32(IFLA_VXLAN_ID, vni),
        nl.attr_be16(IFLA_VXLAN_PORT, port),
        nl.attr_u8(IFLA_VXLAN_LEARNING, int(learning)),
    ]
    if parent is not None:
        data.append(nl.attr_u32(IFLA_VXLAN_LINK, resolve(ns, parent)[0]))
    if local is not None:
        data.append(
            nl.attr(IFLA_VXLAN_LOCAL if local.version == 4 else IFLA_VXLAN_LOCAL6, local.packed)
        )
    if group is not None:
        data.append(
            nl.attr(IFLA_VXLAN_GROUP if group.version == 4 else IFLA_VXLAN_GROUP6, group.packed)
        )
    attrs = [nl.attr_str(IFLA_IFNAME, name), *common_attrs(mtu, mac), linkinfo("vxlan", *data)]
    new_link(ns, ifinfo() + b"".join(attrs), name=name, target=ns, what="vxlan")
    return get_link(ns, name)


# -- changes ---------------------------------------------------------------------------


def change_link(ns: Netns, type_: int, payload: bytes, name: str, what: str) -> None:
    try:
        ns.rtnl.request(type_, payload)
    except nl.KernelError as exc:
        raise kernel_error(
            what,
            exc.errno,
            exc.message,
            interface=name,
            netns=ns.name,
            by_errno={errno.ENODEV: LinkNotFoundError, errno.EEXIST: LinkExistsError},
        ) from exc


def set_link(
    ns: Netns,
    link: str | int | Link,
    *,
    up: bool | None = None,
    mtu: int | None = None,
    mac: str | None = None,
    name: str | None = None,
    promisc: bool | None = None,
    allmulti: bool | None = None,
    txqlen: int | None = None,
) -> None:
    """Change any of the given attributes in one request (None leaves one alone)."""
    flags = change = 0
    for wanted, bit in ((up, IFF_UP), (promisc, IFF_PROMISC), (allmulti, IFF_ALLMULTI)):
        if wanted is not None:
            change |= bit
            flags |= bit if wanted else 0
    attrs = common_attrs(mtu, mac)
    if name is not None:
        attrs.append(nl.attr_str(IFLA_IFNAME, name))
    if txqlen is not None:
        attrs.append(nl.attr_u32(IFLA_TXQLEN, txqlen))
    if not change and not attrs:
        return
    index, current = resolve(ns, link)
    payload = ifinfo(index=index, flags=flags, change=change) + b"".join(attrs)
    change_link(ns, RTM_SETLINK, payload, current, "cannot change link")


def set_up(ns: Netns, link: str | int | Link) -> None:
    """Bring the link up."""
    set_link(ns, link, up=True)


def set_down(ns: Netns, link: str | int | Link) -> None:
    """Bring the link down."""
    set_link(ns, link, up=False)


def set_master(ns: Netns, link: str | int | Link, master: str | int | Link | None) -> None:
    """Enslave ``link`` to ``master`` (a bridge); None releases it (nomaster)."""
    index, name = resolve(ns, link)
    master_index = 0 if master is None else resolve(ns, master)[0]
    payload = ifinfo(index=index) + nl.attr_u32(IFLA_MASTER, master_index)
    change_link(ns, RTM_SETLINK, payload, name, "cannot set master")


def move_link(
    ns: Netns, link: str | int | Link, target_ns: Netns, *, new_name: str | None = None
) -> Link:
    """Move ``link`` from ``ns`` into ``target_ns`` (renamed if ``new_name``); the moved Link.

    The name taken in the target -> LinkExistsError naming the target namespace.
    """
    index, name = resolve(ns, link)
    final = new_name or name
    # The kernel moves first and renames after: a taken name would leave the link
    # in the target under its old name. Refuse before anything moves.
    if find_link(target_ns, final) is not None:
        raise LinkExistsError(
            f"cannot move link {name!r} into {target_ns.name}",
            interface=final,
            netns=target_ns.name,
            errno=errno.EEXIST,
        )
    payload = (
        ifinfo(index=index)
        + nl.attr_u32(IFLA_NET_NS_FD, target_ns.fd)
        + nl.attr_str(IFLA_IFNAME, final)
    )
    try:
        ns.rtnl.request(RTM_SETLINK, payload)
    except nl.KernelError as exc:
        raise kernel_error(
            f"cannot move link into {target_ns.name}",
            exc.errno,
            exc.message,
            interface=final if exc.errno == errno.EEXIST else name,
            netns=target_ns.name if exc.errno == errno.EEXIST else ns.name,
            by_errno={errno.ENODEV: LinkNotFoundError, errno.EEXIST: LinkExistsError},
        ) from exc
    return get_link(target_ns, final)


def delete_link(ns: Netns, link: str | int | Link, *, missing_ok: bool = False) -> bool:
    """Delete the link (a veth takes its peer along); True if it existed.

    ``missing_ok`` makes a missing link a no-op, for DEL's idempotency.
    """
    found = find_link(ns, link)
    if found is None:
        if missing_ok:
            return False
        raise LinkNotFoundError(
            "cannot delete link", interface=_name(link), netns=ns.name, errno=errno.ENODEV
        )
    try:
        ns.rtnl.request(RTM_DELLINK, ifinfo(index=found.ifindex))
    except nl.KernelError as exc:
        if missing_ok and exc.errno == errno.ENODEV:
            return False  # went away meanwhile (its peer's namespace was deleted)
        raise kernel_error(
            "cannot delete link",
            exc.errno,
            exc.message,
            interface=found.name,
            netns=ns.name,
            by_errno={errno.ENODEV: LinkNotFoundError},
        ) from exc
    return True
