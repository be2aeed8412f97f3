"""The machine's loopback ports a lab needs, inside every node namespace.

A lab's node daemons run in the nodes' network namespaces, where 127.0.0.1
is the namespace's own loopback: the lab's etcd members and an API server
listening on the machine's loopback (the test control plane, a kind
cluster) are out of their reach. This small relay listens on the same
ports of 127.0.0.1 inside each node namespace and forwards every
connection, byte for byte (TLS passes through untouched, so certificates and
the kubeconfig stay as they are), to that port in the namespace the relay
was started in.

Run by ``multinic lab up`` as a process of its own (``python -m
multinic.lab.relay``), its pid in the lab's state; ``lab down`` stops it.
It touches nothing but its listening sockets.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import threading
from pathlib import Path

from multinic import dataplane as dp

BUFFER = 65536


HOST = "127.0.0.1"


def listen_in(netns_path: str, port: int) -> socket.socket:
    """A listening socket bound to 127.0.0.1:``port`` inside the namespace at ``netns_path``."""

    def bind() -> socket.socket:
        sock = socket.socket(socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, port))
        sock.listen(64)
        return sock

    with dp.open_netns(netns_path) as ns:
        return dp.run_in_netns(ns, bind)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(BUFFER):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


def _relay(client: socket.socket, port: int) -> None:
    with client, contextlib.suppress(OSError), socket.create_connection((HOST, port)) as upstream:
        # Bytes go on as they come: a client's request is often two sends (headers,
        # body), and with Nagle the second waits ~40 ms for the first's delayed ACK.
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
        back.start()
        _pump(client, upstream)
        back.join()


def serve(listener: socket.socket, port: int) -> None:
    while True:
        client, _ = listener.accept()
        threading.Thread(target=_relay, args=(client, port), daemon=True).start()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m multinic.lab.relay")
    parser.add_argument("--port", type=int, action="append", required=True)
    parser.add_argument("--ready", type=Path, required=True, help="written once listening")
    parser.add_argument("netns", nargs="+", help="paths of the namespaces to listen in")
    args = parser.parse_args(argv)
    for path in args.netns:
        for port in args.port:
            listener = listen_in(path, port)
            threading.Thread(target=serve, args=(listener, port), daemon=True).start()
    args.ready.write_text("listening\n")
    threading.Event().wait()  # until SIGTERM


if __name__ == "__main__":
    main()
