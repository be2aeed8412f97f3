"""Loopback ports for the servers the lab and the tests start (multinic.lab.ports)."""

from __future__ import annotations

import socket

import pytest

from multinic.lab import ports


def test_ports_come_from_below_the_ephemeral_range_free_and_never_twice() -> None:
    low = ports._ephemeral_start()
    given = [ports.free_port() for _ in range(50)]
    assert len(set(given)) == 50
    assert all(max(ports.FLOOR, low - ports.SPAN) <= p < low for p in given)
    for port in given:  # each is bindable now, as its server will bind it
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", port))


def test_a_port_in_use_or_given_before_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        given = ports.free_port()
        fresh = next(p for p in range(ports.FLOOR, ports.FLOOR + 100) if p not in (given, taken))
        picks = iter([taken, given, fresh])
        monkeypatch.setattr(ports.random, "choice", lambda _: next(picks))
        assert ports.free_port() == fresh
