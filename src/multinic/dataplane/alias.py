"""Link aliases (IFLA_IFALIAS): free text the kernel keeps with a device across moves.

host-device records a device's host name here before renaming it in the pod, as
the reference plugin does, so DEL (ours or the reference's) knows what to call it
back on the host, even when the kernel returned it there on its own (the pod's
namespace was destroyed). Reading an alias is reading a ``Link``: its ``alias``
field comes with every link look-up.
"""

from __future__ import annotations

from multinic.dataplane import netlink as nl
from multinic.dataplane.links import (
    IFLA_IFALIAS,
    RTM_SETLINK,
    Link,
    change_link,
    get_link,
    ifinfo,
    list_links,
)
from multinic.dataplane.netns import Netns

#: The kernel's limit (IFALIASZ is 256 bytes with the terminating NUL).
MAX_ALIAS_BYTES = 255


def set_alias(ns: Netns, link: str | int | Link, alias: str) -> None:
    """Set the link's alias; an empty string clears it."""
    found = link if isinstance(link, Link) else get_link(ns, link)
    raw = alias.encode()
    if len(raw) > MAX_ALIAS_BYTES:
        raise ValueError(f"alias over {MAX_ALIAS_BYTES} bytes: {alias!r}")
    # Not NUL-terminated: the kernel takes the attribute's length as the alias length.
    payload = ifinfo(index=found.ifindex) + nl.attr(IFLA_IFALIAS, raw)
    change_link(ns, RTM_SETLINK, payload, found.name, "cannot set alias")


def link_aliases(ns: Netns) -> dict[int, str]:
    """The alias of every link in ``ns`` that has one, by interface index."""
    return {link.ifindex: link.alias for link in list_links(ns) if link.alias}


def get_alias(ns: Netns, link: str | int | Link) -> str:
    """The link's alias ("" when it has none)."""
    return get_link(ns, link).alias
