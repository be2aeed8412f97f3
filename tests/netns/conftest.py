"""Fixtures for tests that run real plugins in real namespaces (root)."""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from multinic.cni.runtime import Runtime
from multinic.lab import netns as lab
from tests.support import third_party

if TYPE_CHECKING:
    from tests.support.lower_plugins import CheckedNode

#: The CNI reference plugins (containernetworking/plugins, all of them in one
#: dir), built from their Go module by scripts/build-third-party (`make test`
#: builds them first); importing this fails with that command when they are missing.
REFERENCE_PLUGIN_DIR = third_party.directory("cni-plugins")


def unique(prefix: str) -> str:
    """A name no other test (or concurrent run) uses; short enough for a link name."""
    return f"{prefix}{secrets.token_hex(4)}"


@pytest.fixture
def reference_plugins() -> Path:
    if not (REFERENCE_PLUGIN_DIR / "bridge").exists():
        pytest.fail(f"reference plugins missing in {REFERENCE_PLUGIN_DIR}: run make third-party")
    return REFERENCE_PLUGIN_DIR


@pytest.fixture
def runtime(reference_plugins: Path, tmp_path: Path) -> Runtime:
    return Runtime([reference_plugins], cache_dir=tmp_path / "cache")


@contextlib.contextmanager
def _scratch_pod() -> Iterator[str]:
    name = unique("mnt-pod-")
    with lab.scratch_netns(name):
        yield name


@pytest.fixture
def pod() -> Iterator[str]:
    """A fresh named namespace standing in for a pod, removed after the test."""
    with _scratch_pod() as name:
        yield name


@pytest.fixture
def pod2() -> Iterator[str]:
    """A second pod, for tests about two attachments."""
    with _scratch_pod() as name:
        yield name


def links_of_this_run(before: set[str], owned: list[str]) -> set[str]:
    """New host links this run answers for; those of other runs on the machine are not.

    Ours: a name the test registered, a port of a link it registered, or a veth
    whose peer lives in a scratch namespace this process has open (a pod's host
    end). Other test runs may add host links at the same time; they are theirs
    to check and remove.
    """
    ids = {
        entry["id"]: entry["name"]
        for entry in lab.ip_json("netns", "list")
        if entry.get("id") is not None
    }
    mine = lab.scratch_namespaces()
    return {
        link["ifname"]
        for link in lab.ip_json("link", "show")
        if link["ifname"] not in before
        and (
            link["ifname"] in owned
            or link.get("master") in owned
            or ids.get(link.get("link_netnsid")) in mine
        )
    }


def _still_there(suspects: set[str], patience: float = 3.0) -> set[str]:
    # The kernel removes some links asynchronously: the host end of a veth whose
    # pod end lived in a deleted namespace can outlive `ip netns delete` for a
    # moment, and so can the port of a link that was just deleted.
    deadline = time.monotonic() + patience
    while (left := suspects & lab.link_names()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def _describe(name: str) -> str:
    try:
        return lab.ip("-d", "link", "show", name)
    except lab.LabError as exc:  # gone since: the kernel was only slow
        return f"{name}: {exc}\n"


@pytest.fixture
def host_links() -> Iterator[list[str]]:
    """Host link names a test registers; removed after it, whatever happened.

    Also asserts the test left no *other* link of its own behind (a plugin's
    host-side veth that DEL should have removed, for example).
    """
    before = lab.link_names()
    owned: list[str] = []
    yield owned
    remove_host_links(before, owned)


def remove_host_links(before: set[str], owned: list[str]) -> None:
    """Delete the registered links, then fail on (and delete) this run's other new links.

    A veth pair the test registered one end of goes with that end.
    """
    suspects = links_of_this_run(before, owned) - set(owned)
    for name in owned:
        lab.delete_link(name)
    leaked = _still_there(suspects)
    details = [_describe(name) for name in sorted(leaked)]
    for name in leaked:
        lab.delete_link(name)
    assert not leaked, f"host links left behind: {sorted(leaked)}\n" + "".join(details)


@pytest.fixture
def plugin_node(request: pytest.FixtureRequest) -> Iterator[CheckedNode]:
    """A scratch node namespace the test's plugin calls run in (see ``on_node``).

    After the test, while its pods still exist (they are set up before the node,
    so they go after it), the node must hold no link beyond loopback and those
    the test put in ``keep`` (a host veth DEL forgot fails here), and no rule in
    multinic's nftables tables (a masquerade or spoof-check rule DEL forgot).
    Deleting the namespace then removes everything else.
    """
    from tests.support.lower_plugins import checked_node  # it imports this module

    for name in ("pod", "pod2"):
        if name in request.fixturenames:
            request.getfixturevalue(name)
    with checked_node() as node:
        yield node
