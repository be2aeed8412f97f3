"""Network sysctls (``/proc/sys/net/...``) read and written inside a namespace.

/proc/sys/net shows the namespace of the thread that opens the file, so the file
is opened from a thread that entered the namespace (``run_in_netns``).
Only ``net.*`` keys are accepted: the others are not per-namespace, and writing
one "in a pod" would change the whole host.
"""

from __future__ import annotations

import os

from multinic.dataplane.errors import SysctlError
from multinic.dataplane.netns import Netns, run_in_netns

PROC_SYS = "/proc/sys"


def sysctl_parts(key: str) -> list[str]:
    """The path components of a key: ``net.ipv4.ip_forward`` or ``net/ipv4/conf/eth0.100/x``.

    The slash form exists for interface names with dots in them (as sysctl(8)).
    """
    parts = key.split("/") if "/" in key else key.split(".")
    if parts[0] != "net" or len(parts) < 2 or any(p in ("", ".", "..") or "\0" in p for p in parts):
        raise SysctlError(f"not a network sysctl key: {key!r}")
    return parts


def sysctl_path(key: str) -> str:
    """The /proc/sys file of a network sysctl key."""
    return os.path.join(PROC_SYS, *sysctl_parts(key))


def _interface(parts: list[str]) -> str | None:
    # net.ipv4.conf.<if>.x, net.ipv6.neigh.<if>.x: name the interface in errors.
    if len(parts) >= 5 and parts[2] in ("conf", "neigh"):
        return parts[3]
    return None


def read_sysctl(ns: Netns, key: str) -> str:
    """The value of ``key`` in ``ns``, without the trailing newline."""
    parts = sysctl_parts(key)
    path = os.path.join(PROC_SYS, *parts)

    def read() -> str:
        with open(path, encoding="ascii") as file:
            return file.read().rstrip("\n")

    try:
        return run_in_netns(ns, read)
    except OSError as exc:
        raise SysctlError(
            f"cannot read sysctl {key}", interface=_interface(parts), netns=ns.name, errno=exc.errno
        ) from exc


def write_sysctl(ns: Netns, key: str, value: str | int) -> None:
    """Set ``key`` to ``value`` in ``ns``; a missing key or refused value -> SysctlError."""
    parts = sysctl_parts(key)
    path = os.path.join(PROC_SYS, *parts)
    text = str(value)

    def write() -> None:
        # No O_CREAT: a sysctl that does not exist must fail, not be created.
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, text.encode("ascii"))
        finally:
            os.close(fd)

    try:
        run_in_netns(ns, write)
    except (OSError, UnicodeError) as exc:
        raise SysctlError(
            f"cannot write {text!r} to sysctl {key}",
            interface=_interface(parts),
            netns=ns.name,
            errno=getattr(exc, "errno", None),
        ) from exc
