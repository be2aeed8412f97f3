"""Link aliases (IFLA_IFALIAS): free text the kernel keeps with a device across moves.

host-device records a device's host name here before renaming it in the pod, as
the reference plugin does, so DEL (ours or the reference's) knows what to call it
back on the host, even when the kernel returned it there on its own (the pod's
namespace was destroyed).
"""

from __future__ import annotations

import errno
import struct

from multinic.dataplane import netlink as nl
from multinic.dataplane.errors import LinkNotFoundError, kernel_error
from multinic.dataplane.links import Link, get_link
from multinic.dataplane.netns import Netns

RTM_GETLINK = 18
RTM_SETLINK = 19
IFLA_IFALIAS = 20
#: The kernel's limit (IFALIASZ is 256 bytes with the terminating NUL).
MAX_ALIAS_BYTES = 255

_IFINFOMSG = struct.Struct("=BxHiII")


def set_alias(ns: Netns, link: str | int | Link, alias: str) -> None:
    """Set the link's alias; an empty string clears it."""
    found = link if isinstance(link, Link) else get_link(ns, link)
    raw = alias.encode()
    if len(raw) > MAX_ALIAS_BYTES:
        raise ValueError(f"alias over {MAX_ALIAS_BYTES} bytes: {alias!r}")
    # Not NUL-terminated: the kernel takes the attribute's length as the alias length.
    payload = _IFINFOMSG.pack(0, 0, found.ifindex, 0, 0) + nl.attr(IFLA_IFALIAS, raw)
    try:
        ns.rtnl.request(RTM_SETLINK, payload)
    except nl.KernelError as exc:
        raise kernel_error(
            "cannot set alias",
            exc.errno,
            exc.message,
            interface=found.name,
            netns=ns.name,
            by_errno={errno.ENODEV: LinkNotFoundError},
        ) from exc


def link_aliases(ns: Netns) -> dict[int, str]:
    """The alias of every link in ``ns`` that has one, by interface index."""
    aliases = {}
    for message in ns.rtnl.dump(RTM_GETLINK, _IFINFOMSG.pack(0, 0, 0, 0, 0)):
        index = _IFINFOMSG.unpack_from(message.payload)[2]
        alias = nl.get_str(nl.parse_attrs(message.payload, _IFINFOMSG.size), IFLA_IFALIAS)
        if alias:
            aliases[index] = alias
    return aliases


def get_alias(ns: Netns, link: str | int | Link) -> str:
    """The link's alias ("" when it has none)."""
    index = link.ifindex if isinstance(link, Link) else get_link(ns, link).ifindex
    try:
        [reply] = ns.rtnl.request(RTM_GETLINK, _IFINFOMSG.pack(0, 0, index, 0, 0))
    except nl.KernelError as exc:
        raise kernel_error(
            "cannot look up link",
            exc.errno,
            exc.message,
            interface=str(link if not isinstance(link, Link) else link.name),
            netns=ns.name,
            by_errno={errno.ENODEV: LinkNotFoundError},
        ) from exc
    return nl.get_str(nl.parse_attrs(reply.payload, _IFINFOMSG.size), IFLA_IFALIAS) or ""
