"""Running a plugin executable from inside a plugin, without ``subprocess``.

A plugin that delegates (to its IPAM plugin, say) pays for every import on
every pod start; ``subprocess`` alone costs about as much as the whole plugin
entry. This is the part of it a plugin needs: spawn, feed stdin, collect
stdout and stderr, reap. The runtime keeps using ``subprocess`` (invoke.py),
which also enforces timeouts: a delegate runs in its caller's process group,
so the runtime's timeout kills it together with its caller.
"""

from __future__ import annotations

import errno
import os
import select
import time
from collections.abc import Mapping

from multinic.records import NamedTuple

_TEXT_BUSY_RETRIES = 6
_TEXT_BUSY_PAUSE = 0.2
_CHUNK = 65536


class Finished(NamedTuple):
    """A plugin process that has exited."""

    status: int  # as subprocess's returncode: negative for a signal
    stdout: bytes
    stderr: bytes


def find_executable(name: str, search_path: tuple[str, ...]) -> str | None:
    """The first executable file ``name`` in the directories of ``search_path``."""
    for directory in search_path:
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def run_executable(
    path: str, env: Mapping[str, str], stdin: bytes, *, args: tuple[str, ...] = ()
) -> Finished:
    """Run ``path ARGS`` with ``env``, ``stdin`` on its standard input, and wait for it."""
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        pid = _spawn(path, args, env, (in_r, out_w, err_w))
    except BaseException:
        for fd in (in_w, out_r, err_r):
            os.close(fd)
        raise
    finally:
        for fd in (in_r, out_w, err_w):
            os.close(fd)
    stdout, stderr = _communicate(in_w, out_r, err_r, stdin)
    _, wait_status = os.waitpid(pid, 0)
    return Finished(os.waitstatus_to_exitcode(wait_status), stdout, stderr)


def _spawn(
    path: str, args: tuple[str, ...], env: Mapping[str, str], fds: tuple[int, int, int]
) -> int:
    actions = [(os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate(fds)]
    # A plugin just written by an installer can be "text file busy" for a moment.
    for attempt in range(_TEXT_BUSY_RETRIES):
        try:
            return os.posix_spawn(path, [path, *args], dict(env), file_actions=actions)
        except OSError as exc:
            if exc.errno != errno.ETXTBSY or attempt == _TEXT_BUSY_RETRIES - 1:
                raise
            time.sleep(_TEXT_BUSY_PAUSE)
    raise AssertionError("unreachable")


def _communicate(in_w: int, out_r: int, err_r: int, stdin: bytes) -> tuple[bytes, bytes]:
    """Write stdin and read both outputs at once, so no pipe can fill up and block."""
    collected: dict[int, list[bytes]] = {out_r: [], err_r: []}
    poller = select.poll()
    poller.register(out_r, select.POLLIN)
    poller.register(err_r, select.POLLIN)
    pending = memoryview(stdin)
    if pending:
        os.set_blocking(in_w, False)
        poller.register(in_w, select.POLLOUT)
    else:
        os.close(in_w)
    open_fds = {out_r, err_r} | ({in_w} if pending else set())
    while open_fds:
        for fd, _ in poller.poll():
            if fd == in_w:
                pending = _write_some(in_w, pending)
                if not pending:
                    poller.unregister(in_w)
                    os.close(in_w)
                    open_fds.discard(in_w)
                continue
            chunk = os.read(fd, _CHUNK)
            if chunk:
                collected[fd].append(chunk)
            else:
                poller.unregister(fd)
                os.close(fd)
                open_fds.discard(fd)
    return b"".join(collected[out_r]), b"".join(collected[err_r])


def _write_some(fd: int, pending: memoryview) -> memoryview:
    try:
        written = os.write(fd, pending)
    except BlockingIOError:
        return pending
    except BrokenPipeError:
        # The plugin exited without reading all its input; its output says why.
        return pending[:0]
    return pending[written:]
