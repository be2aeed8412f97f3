"""127.0.0.1:PORT inside a scratch node namespace, relayed to this machine's loopback.

The test apiserver listens on this machine's loopback, which a node namespace
does not share; a process running in the node (a CNI daemon, Multus) reaches
it through :class:`LoopbackRelay` with the kubeconfig unchanged.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path

from multinic.lab.relay import listen_in


class LoopbackRelay:
    """127.0.0.1:``port`` inside network namespace ``netns``, forwarded to 127.0.0.1:``port`` here.

    The test apiserver listens on this machine's loopback, which a scratch node
    namespace does not share. A socket belongs to the namespace it was created
    in, so the listener is created by a thread that entered ``netns`` and every
    upstream connection by a thread here: the bytes (TLS, untouched) cross over
    in this process. Clients keep the apiserver's address and certificate
    (issued for 127.0.0.1) as they are.
    """

    def __init__(self, netns: Path, port: int) -> None:
        self.port = port
        self.connections = 0
        self._listener = listen_in(str(netns), port)
        self._listener.settimeout(0.2)
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._thread = threading.Thread(target=self._serve, name="loopback-relay", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            except OSError:
                conn.close()
                continue
            conn.settimeout(None)
            upstream.settimeout(None)
            # Bytes are forwarded as they come, a client's one request often in two
            # sends (headers, body): with Nagle the second waits for the first's
            # delayed ACK, ~40 ms a request that a direct connection does not pay.
            for sock in (conn, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self.connections += 1
                self._open.update((conn, upstream))
            pair = [conn, upstream]
            for src, dst in ((conn, upstream), (upstream, conn)):
                threading.Thread(
                    target=self._pump, args=(src, dst, pair), name="relay-pump", daemon=True
                ).start()

    def _pump(self, src: socket.socket, dst: socket.socket, pair: list[socket.socket]) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        # One side ended: end both (the other pump's recv returns), the last one closes.
        for sock in pair:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        with self._lock:
            if src in self._open:
                self._open.discard(src)
                self._open.discard(dst)
                return
        src.close()
        dst.close()

    def close(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self._listener.close()
        with self._lock:
            left = list(self._open)
            self._open.clear()
        for sock in left:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
