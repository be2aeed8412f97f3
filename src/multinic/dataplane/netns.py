"""Network namespaces opened by path, and work done inside them from threads we own.

A socket keeps the namespace it was created in, so entering a namespace is only
needed to *create* a socket (or to open a /proc/sys file): a short-lived thread
of ours calls setns(2), does that, and ends. The caller's thread never moves.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable

from multinic.dataplane.errors import DataplaneError, NetnsNotFoundError
from multinic.dataplane.netlink import Rtnl
from multinic.records import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any, TypeVar

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
    # _thread, not threading: the low-level module is all a join needs, and
    # threading's import is paid on every pod start that enters a namespace.
    import _thread

    outcome: list[Any] = []
    done = _thread.allocate_lock()
    done.acquire()

    def enter_and_run() -> None:
        try:
            _setns(ns)
            outcome.append((True, fn()))
        except BaseException as exc:  # handed to the caller's thread below
            outcome.append((False, exc))
        finally:
            done.release()

    _thread.start_new_thread(enter_and_run, ())
    done.acquire()  # the worker's last act is the release: the outcome is in
    ok, value = outcome[0]
    if not ok:
        raise value
    result: T = value
    return result


def _setns(ns: Netns) -> None:
    """setns(2) for the calling thread; Python 3.11's os has none (3.12's has)."""
    setns = getattr(os, "setns", None)
    if setns is not None:
        try:
            setns(ns.fd, CLONE_NEWNET)
        except OSError as exc:
            raise DataplaneError(
                "cannot enter network namespace", netns=ns.name, errno=exc.errno
            ) from exc
        return
    libc_setns, get_errno = _libc_setns()
    if libc_setns(ns.fd, CLONE_NEWNET) != 0:
        raise DataplaneError("cannot enter network namespace", netns=ns.name, errno=get_errno())


def _libc_setns() -> tuple[Callable[[int, int], int], Callable[[], int]]:
    """libc's setns and the errno it left, through the ``_ctypes`` C module.

    The ``ctypes`` package costs more start-up time than the whole namespace
    switch (it builds dozens of types at import); a foreign function needs only
    what it is built from here: a C ``int`` type, a function-pointer type that
    keeps errno (``use_errno=True``) and the symbol's address. This is exactly
    what ``ctypes.CDLL(None, use_errno=True).setns`` is made of; should a
    Python lack these internals, the ``ctypes`` package does it.
    """
    try:
        import _ctypes

        class CInt(_ctypes._SimpleCData):  # type: ignore[type-arg]  # not subscriptable at run time
            _type_ = "i"

        class LibcFunction(_ctypes.CFuncPtr):
            _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
            _restype_ = CInt

        # dlopen(NULL): the program itself, which links libc (typeshed lacks the None).
        program = _ctypes.dlopen(None, os.RTLD_NOW)  # type: ignore[arg-type]
        address = _ctypes.dlsym(program, "setns")
        function: Callable[[int, int], int] = LibcFunction(address)
        get_errno: Callable[[], int] = _ctypes.get_errno
    except (ImportError, AttributeError, OSError, TypeError):
        import ctypes

        function = ctypes.CDLL(None, use_errno=True).setns
        get_errno = ctypes.get_errno
    return function, get_errno
