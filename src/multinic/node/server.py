"""The daemon's CNI socket: each connection is one CNI call, answered by a plugin object.

The shim (``multinic.shim``) sends one line of JSON (the call's CNI_*
environment) followed by the config bytes and closes its sending side; the
answer is one line with the exit status followed by the plugin's stdout,
exactly what the plugin would have printed as an executable (``skel.run``), so
codes and results pass through unchanged.

Bounded, so a burst of pods cannot take the node down (Multus #1346): at most
``workers`` calls run at once and the rest wait as unread connections; a
request larger than ``MAX_REQUEST`` is refused. Calls for one container are
answered one at a time (the runtime may DEL while an ADD is still running);
calls for different containers run in parallel.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from multinic.cni import jsontext, skel
from multinic.cni.errors import CNIError, DecodingError, InvalidEnvironmentError
from multinic.cni.version import LATEST_VERSION
from multinic.node.metrics import Metrics

#: A config plus prevResult is a few KiB; anything near this is not a CNI call.
MAX_REQUEST = 4 * 1024 * 1024
#: How long a connected client may take to send its request.
READ_TIMEOUT = 30.0


class ContainerLocks:
    """One lock per container id, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    @contextlib.contextmanager
    def held(self, container_id: str) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.get(container_id, (threading.Lock(), 0))
            self._locks[container_id] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[container_id]
                if users == 1:
                    del self._locks[container_id]
                else:
                    self._locks[container_id] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


class CniServer:
    """Serves ``plugin`` on the unix socket at ``socket_path`` (root only: mode 0600)."""

    def __init__(
        self, plugin: skel.Plugin, socket_path: Path, metrics: Metrics, workers: int = 16
    ) -> None:
        self.plugin = plugin
        self.socket_path = socket_path
        self.metrics = metrics
        self.locks = ContainerLocks()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cni")
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None

    def start(self) -> None:
        """Bind the socket (replacing a stale one a dead daemon left) and start accepting."""
        self.socket_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)  # the socket is born 0600: no window where others connect
        try:
            listener.bind(str(self.socket_path))
        finally:
            os.umask(old_umask)
        listener.listen(512)
        self._listener = listener
        self._acceptor = threading.Thread(
            target=self._accept, args=(listener,), name="cni-accept", daemon=True
        )
        self._acceptor.start()

    def stop(self) -> None:
        """Stop accepting, let the calls in progress finish, remove the socket."""
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
        if self._acceptor is not None:
            self._acceptor.join(timeout=5)
        self._pool.shutdown(wait=True)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # the listener was closed: stop() is under way
            try:
                self._pool.submit(self._serve, conn)
            except RuntimeError:  # the pool is shutting down
                conn.close()
                return

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            started = time.monotonic()
            self.metrics.in_flight.inc()
            verb = "unknown"
            try:
                env, stdin = _read_request(conn)
                verb = env.get("CNI_COMMAND", "") or "unknown"
                with self.locks.held(env.get("CNI_CONTAINERID", "")):
                    status, out = skel.run(self.plugin, env, stdin)
            except CNIError as err:
                status, out = 1, _error_bytes(err)
            finally:
                self.metrics.in_flight.dec()
            self.metrics.observe(verb, _result_label(status, out), time.monotonic() - started)
            with contextlib.suppress(OSError):  # the shim gave up waiting: nothing to tell
                conn.sendall(f"{status}\n".encode() + out)


def _read_request(conn: socket.socket) -> tuple[dict[str, str], bytes]:
    conn.settimeout(READ_TIMEOUT)
    chunks: list[bytes] = []
    size = 0
    try:
        while chunk := conn.recv(65536):
            size += len(chunk)
            if size > MAX_REQUEST:
                raise DecodingError("request too large", f"more than {MAX_REQUEST} bytes")
            chunks.append(chunk)
    except OSError as exc:
        raise InvalidEnvironmentError("incomplete request from the shim", str(exc)) from exc
    header, _, stdin = b"".join(chunks).partition(b"\n")
    try:
        env = jsontext.loads(header).get("env")  # type: ignore[attr-defined]
    except (ValueError, AttributeError) as exc:
        raise DecodingError("malformed request from the shim", str(exc)) from exc
    if not isinstance(env, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in env.items()
    ):
        raise DecodingError("malformed request from the shim", "env is not a string map")
    return env, stdin


def _error_bytes(err: CNIError) -> bytes:
    return json.dumps(err.to_dict(LATEST_VERSION)).encode() + b"\n"


def _result_label(status: int, out: bytes) -> str:
    """``ok``, or the CNI error code the call answered with."""
    if status == 0:
        return "ok"
    try:
        return str(json.loads(out).get("code", "unknown"))
    except (ValueError, AttributeError):
        return "unknown"
