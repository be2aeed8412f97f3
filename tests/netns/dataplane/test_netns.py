"""Namespaces opened by path; work done in them from threads we own."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from multinic.dataplane import (
    DataplaneError,
    Netns,
    NetnsNotFoundError,
    list_links,
    open_netns,
    run_in_netns,
)
from multinic.lab import netns as lab
from tests.netns.dataplane.conftest import Space, ip_names


def test_missing_namespace_is_an_error_and_nothing_is_created(tmp_path: object) -> None:
    missing = "/var/run/netns/mnt-dp-never-made"
    with pytest.raises(NetnsNotFoundError) as caught:
        open_netns(missing)
    assert caught.value.netns == missing
    assert missing in str(caught.value)
    assert not Path(missing).exists()
    assert "mnt-dp-never-made" not in lab.ip("netns", "list")


@pytest.mark.parametrize("path", ["/etc/hostname", "/proc/self/ns/mnt", "/var/run"])
def test_a_file_that_is_not_a_network_namespace_is_refused(path: str) -> None:
    with pytest.raises(NetnsNotFoundError, match="not a network namespace") as caught:
        open_netns(path)
    assert caught.value.netns == path


def test_netlink_socket_lives_in_the_namespace(pod: Space) -> None:
    lab.ip("link", "add", "mnt-a", "type", "veth", "peer", "name", "mnt-b", netns=pod.name)
    assert {link.name for link in list_links(pod.ns)} == ip_names(pod) == {"lo", "mnt-a", "mnt-b"}


def test_run_in_netns_runs_there_and_leaves_the_caller_where_it_was(pod: Space) -> None:
    before = Path("/proc/thread-self/ns/net").stat().st_ino

    def where() -> tuple[int, str]:
        return Path("/proc/thread-self/ns/net").stat().st_ino, threading.current_thread().name

    inode, thread = run_in_netns(pod.ns, where)
    assert inode == Path(pod.path).stat().st_ino
    assert thread != threading.current_thread().name
    assert Path("/proc/thread-self/ns/net").stat().st_ino == before


def test_run_in_netns_hands_errors_back(pod: Space) -> None:
    def fail() -> None:
        raise ValueError("inside")

    with pytest.raises(ValueError, match="inside"):
        run_in_netns(pod.ns, fail)


def test_close_releases_the_descriptor(pod: Space) -> None:
    ns = open_netns(pod.path)
    fd = ns.fd
    list_links(ns)
    ns.close()
    with pytest.raises(OSError):
        os.fstat(fd)


def test_entering_what_is_not_a_namespace_is_an_error_with_its_errno(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_text("")
    fd = os.open(plain, os.O_RDONLY | os.O_CLOEXEC)
    # Built directly: Netns.open refuses such a file before any setns is tried.
    with Netns(fd, "plain") as ns, pytest.raises(DataplaneError) as caught:
        run_in_netns(ns, lambda: None)
    assert caught.value.errno == errno.EINVAL
    assert caught.value.netns == "plain"


def test_entering_a_namespace_loads_neither_ctypes_nor_threading(pod: Space) -> None:
    # setns goes through the _ctypes C module and a _thread worker: the ctypes and
    # threading packages cost more start-up time than the whole switch (a fresh
    # interpreter, as a plugin executable is).
    probe = (
        "import sys, json, os; "
        "from multinic.dataplane import open_netns, run_in_netns; "
        f"ns = open_netns({pod.path!r}); "
        "inode = run_in_netns(ns, lambda: os.stat('/proc/thread-self/ns/net').st_ino); "
        "print(json.dumps([inode, sorted({'ctypes', 'threading'} & set(sys.modules))]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    inode, loaded = json.loads(done.stdout)
    assert inode == Path(pod.path).stat().st_ino
    assert loaded == []
