"""The runtime's arguments to a plugin: CNI_ARGS, container ids, interface names."""

from __future__ import annotations

import re
from collections.abc import Iterable

from multinic.cni.errors import InvalidEnvironmentError

#: libcni's rule: starts alphanumeric, then alphanumerics, '_', '.', '-'. No path separators.
CONTAINER_ID_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.\-]*")
#: The kernel's IFNAMSIZ is 16 bytes including the terminating NUL.
MAX_IFNAME_BYTES = 15
#: Bytes the kernel's isspace() is true for (lib/ctype.c), 0xa0 included.
KERNEL_SPACE_BYTES = frozenset(b" \t\n\v\f\r\xa0")

CniArgs = tuple[tuple[str, str], ...]


def parse_cni_args(text: str) -> CniArgs:
    """Split ``K1=V1;K2=V2`` into pairs, in order; an empty string gives no pairs."""
    if not text:
        return ()
    try:
        text.encode()
    except UnicodeEncodeError as exc:  # bytes that are not UTF-8 reach us as surrogates
        raise InvalidEnvironmentError("invalid CNI_ARGS", "not UTF-8") from exc
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
    """Reject names the kernel would refuse or that could escape a directory (code 4)."""
    if not ifname:
        raise InvalidEnvironmentError("missing interface name", "CNI_IFNAME is empty")
    problem = ifname_problem(ifname)
    if problem:
        raise InvalidEnvironmentError(problem, repr(ifname))
    return ifname


def ifname_problem(name: str) -> str:
    """Why the kernel refuses ``name`` as a link name, or "" when it takes it.

    The kernel's dev_valid_name(): 1 to 15 bytes, not "." or "..", no '/', ':'
    or whitespace (its isspace() is true for byte 0xa0 too). We also refuse
    control and other non-printable characters, which no tool shows, and bytes
    that are not UTF-8 (Python holds them as surrogates): a JSON result or a
    cache file could not carry the name back.
    """
    try:
        raw = name.encode()
    except UnicodeEncodeError:
        return "interface name is not UTF-8"
    if not raw:
        return "interface name is empty"
    if len(raw) > MAX_IFNAME_BYTES:
        return "interface name is too long"
    if name in (".", ".."):
        return "interface name is . or .."
    if "/" in name or ":" in name or not name.isprintable() or KERNEL_SPACE_BYTES & set(raw):
        return "invalid character in interface name"
    return ""
