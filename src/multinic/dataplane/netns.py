"""Network namespaces opened by path, and work done inside them from threads we own.

A socket keeps the namespace it was created in, so entering a namespace is only
needed to *create* a socket (or to open a /proc/sys file): a short-lived thread
of ours calls setns(2), does that, and ends. The caller's thread never moves.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from typing import Any, TypeVar

from multinic.dataplane.errors import DataplaneError, NetnsNotFoundError
from multinic.dataplane.netlink import Rtnl

T = TypeVar("T")

CLONE_NEWNET = 0x40000000
#: ioctl on a namespace file: which kind of namespace it is (<linux/nsfs.h>).
NS_GET_NSTYPE = 0xB703


class Netns:
    """An open network namespace (a file descriptor) and its one rtnetlink socket.

    One ``Netns`` per request per namespace: its netlink socket is created on first
    use and shared by every operation until ``close()``.
    """

    def __init__(self, fd: int, name: str, *, current: bool = False) -> None:
        self.fd = fd
        self.name = name
        #: True when this is the calling thread's own namespace: no setns needed.
        self.current = current
        self._rtnl: Rtnl | None = None

    @classmethod
    def open(cls, path: str) -> Netns:
        """Open the namespace at ``path`` (e.g. CNI_NETNS); missing -> NetnsNotFoundError."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise NetnsNotFoundError(
                "cannot open network namespace", netns=path, errno=exc.errno
            ) from exc
        # Ask the file what it is: a plain file, or another kind of namespace (a
        # mount namespace's file, say), is refused here rather than at the first setns.
        try:
            kind = fcntl.ioctl(fd, NS_GET_NSTYPE)
        except OSError:
            kind = 0
        if kind != CLONE_NEWNET:
            os.close(fd)
            raise NetnsNotFoundError("not a network namespace", netns=path)
        return cls(fd, path)

    @classmethod
    def current_thread(cls) -> Netns:
        """The calling thread's namespace (the host, for a plugin process)."""
        fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        return cls(fd, "host", current=True)

    @property
    def rtnl(self) -> Rtnl:
        """This namespace's rtnetlink socket, created on first use."""
        if self._rtnl is None:
            name = self.name
            self._rtnl = (
                Rtnl.open(name) if self.current else run_in_netns(self, lambda: Rtnl.open(name))
            )
        return self._rtnl

    def close(self) -> None:
        if self._rtnl is not None:
            self._rtnl.close()
            self._rtnl = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Netns:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Netns({self.name!r})"


def open_netns(path: str) -> Netns:
    """Open a namespace by path; a missing one is an error and is never created."""
    return Netns.open(path)


def host_netns() -> Netns:
    """The calling thread's namespace, for the host side of a plugin's work."""
    return Netns.current_thread()


def run_in_netns(ns: Netns, fn: Callable[[], T]) -> T:
    """Run ``fn`` in a fresh thread that entered ``ns``; return its result or raise its error.

    For what must be *created* inside the namespace: sockets (netlink, AF_PACKET)
    and /proc/sys files. The thread ends afterwards, so no thread of the caller's
    ever changes namespace.
    """
    if ns.current:
        return fn()
    import threading  # imported here: a plugin that never enters a namespace skips it

    outcome: list[Any] = []

    def enter_and_run() -> None:
        try:
            _setns(ns)
            outcome.append((True, fn()))
        except BaseException as exc:  # handed to the caller's thread below
            outcome.append((False, exc))

    worker = threading.Thread(target=enter_and_run, name=f"netns {ns.name}")
    worker.start()
    worker.join()
    ok, value = outcome[0]
    if not ok:
        raise value
    result: T = value
    return result


def _setns(ns: Netns) -> None:
    import ctypes  # Python 3.11 has no os.setns; loaded only when a namespace is entered

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(ns.fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise DataplaneError("cannot enter network namespace", netns=ns.name, errno=errno)
