"""Loopback TCP ports for the servers a lab (or the test suite) starts.

A port is chosen here and bound later by another process (etcd, kube-apiserver),
so it must stay free in between. One from the kernel's ephemeral range (what
``bind(0)`` hands out) can be taken meanwhile as the local port of any outgoing
connection; the test suite saw etcd fail with "bind: address already in use"
that way. So ports come from just below ``ip_local_port_range``, where the kernel
never assigns one by itself and only explicit binds compete, at random, checked
free by a bind, and never twice from one process.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

from multinic.lab.errors import LabError

#: How many ports below the ephemeral range are candidates.
SPAN = 12000
#: The lowest candidate: below it are well-known and registered services' ports.
FLOOR = 10000
_EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")

_given: set[int] = set()


def free_port() -> int:
    """A loopback TCP port free now that the kernel will not hand to a connection."""
    low = _ephemeral_start()
    candidates = range(max(FLOOR, low - SPAN), low)
    if len(candidates) < 100:  # an unusual ephemeral range: let the kernel choose
        return _bindable(0)
    for _ in range(200):
        port = random.choice(candidates)  # noqa: S311 - spreading picks, not a secret
        if port in _given:
            continue
        try:
            _bindable(port)
        except OSError:
            continue
        _given.add(port)
        return port
    raise LabError(f"no free loopback port in {candidates.start}-{candidates.stop - 1}")


def _ephemeral_start() -> int:
    try:
        return int(_EPHEMERAL.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _bindable(port: int) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))
        return int(sock.getsockname()[1])
