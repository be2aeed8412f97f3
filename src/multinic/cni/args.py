"""The runtime's arguments to a plugin: CNI_ARGS, container ids, interface names."""

from __future__ import annotations

import re
from collections.abc import Iterable

from multinic.cni.errors import InvalidEnvironmentError

#: libcni's rule: starts alphanumeric, then alphanumerics, '_', '.', '-'. No path separators.
CONTAINER_ID_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.\-]*")
#: The kernel's IFNAMSIZ is 16 bytes including the terminating NUL.
MAX_IFNAME_BYTES = 15

CniArgs = tuple[tuple[str, str], ...]


def parse_cni_args(text: str) -> CniArgs:
    """Split ``K1=V1;K2=V2`` into pairs, in order; an empty string gives no pairs."""
    if not text:
        return ()
    pairs = []
    for item in text.split(";"):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidEnvironmentError("invalid CNI_ARGS", f"{item!r} is not KEY=VALUE")
        pairs.append((key, value))
    return tuple(pairs)


def format_cni_args(pairs: Iterable[tuple[str, str]]) -> str:
    """The inverse of :func:`parse_cni_args`."""
    return ";".join(f"{key}={value}" for key, value in pairs)


def validate_container_id(container_id: str) -> str:
    """Reject an empty id or one that could escape a directory (it names cache files)."""
    if not container_id:
        raise InvalidEnvironmentError("missing containerID", "CNI_CONTAINERID is empty")
    if not CONTAINER_ID_RE.fullmatch(container_id):
        raise InvalidEnvironmentError("invalid characters in containerID", container_id)
    return container_id


def validate_ifname(ifname: str) -> str:
    """Reject names the kernel would refuse or that could escape a directory."""
    if not ifname:
        raise InvalidEnvironmentError("missing interface name", "CNI_IFNAME is empty")
    if len(ifname.encode()) > MAX_IFNAME_BYTES:
        raise InvalidEnvironmentError(
            "interface name is too long", f"{ifname!r} is over {MAX_IFNAME_BYTES} bytes"
        )
    if ifname in (".", ".."):
        raise InvalidEnvironmentError("interface name is . or ..", ifname)
    for char in ifname:
        if char in "/:" or char.isspace() or not char.isprintable():
            raise InvalidEnvironmentError("invalid character in interface name", repr(ifname))
    return ifname
