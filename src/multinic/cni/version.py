"""CNI specification versions: parsing, comparison and negotiation."""

from __future__ import annotations

import re
from collections.abc import Iterable

from multinic.cni.errors import IncompatibleVersionError

#: Every version multinic reads and writes, oldest first.
SUPPORTED_VERSIONS: tuple[str, ...] = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
LATEST_VERSION = SUPPORTED_VERSIONS[-1]

#: Spec versions older than this have no CHECK verb.
CHECK_SINCE = "0.4.0"
#: Spec versions older than this have no GC or STATUS verbs.
GC_SINCE = "1.1.0"

_VERSION_RE = re.compile(r"(0|[1-9]\d{0,3})\.(0|[1-9]\d{0,3})\.(0|[1-9]\d{0,3})")

Version = tuple[int, int, int]


def parse_version(text: object) -> Version:
    """Parse ``major.minor.patch``; anything else is an incompatible version (code 1)."""
    if not isinstance(text, str):
        raise IncompatibleVersionError("invalid cniVersion", f"{text!r} is not a string")
    match = _VERSION_RE.fullmatch(text)
    if match is None:
        raise IncompatibleVersionError("invalid cniVersion", f"{text!r} is not major.minor.patch")
    major, minor, patch = (int(part) for part in match.groups())
    return (major, minor, patch)


def at_least(version: str, minimum: str) -> bool:
    """True when ``version`` is ``minimum`` or newer."""
    return parse_version(version) >= parse_version(minimum)


def require_supported(version: str, supported: Iterable[str] = SUPPORTED_VERSIONS) -> str:
    """Return ``version`` when it is in ``supported``, else raise code 1 naming both."""
    parse_version(version)
    supported = tuple(supported)
    if version not in supported:
        raise IncompatibleVersionError(
            "incompatible CNI versions",
            f"config is {version!r}, supported versions are {list(supported)}",
        )
    return version


def highest_common(candidates: Iterable[str], supported: Iterable[str] = SUPPORTED_VERSIONS) -> str:
    """The newest version in ``candidates`` that is also in ``supported``.

    This is how a runtime reads a config list's ``cniVersions``.
    """
    offered = list(candidates)
    allowed = set(supported)
    usable = [v for v in offered if v in allowed]
    if not usable:
        raise IncompatibleVersionError(
            "no supported CNI version",
            f"config offers {offered}, supported versions are {sorted(allowed, key=parse_version)}",
        )
    return max(usable, key=parse_version)
