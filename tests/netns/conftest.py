"""Fixtures for tests that run real plugins in real namespaces (root)."""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from multinic.cni.runtime import Runtime
from multinic.lab import netns as lab

#: Debian's containernetworking-plugins; `make test` installs the package.
REFERENCE_PLUGIN_DIR = Path("/usr/lib/cni")


def unique(prefix: str) -> str:
    """A name no other test (or concurrent run) uses; short enough for a link name."""
    return f"{prefix}{secrets.token_hex(4)}"


@pytest.fixture
def reference_plugins() -> Path:
    if not (REFERENCE_PLUGIN_DIR / "bridge").exists():
        pytest.fail(f"reference plugins missing in {REFERENCE_PLUGIN_DIR}: run make system-deps")
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


def _new_links_settled(before: set[str], patience: float = 3.0) -> set[str]:
    # The kernel tears a deleted namespace down asynchronously: the host end of a
    # veth whose pod end lived there can outlive `ip netns delete` for a moment.
    deadline = time.monotonic() + patience
    while (new := lab.link_names() - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    return new


@pytest.fixture
def host_links() -> Iterator[list[str]]:
    """Host link names a test registers; removed after it, whatever happened.

    Also asserts the test left no *other* new host link behind (a plugin's
    host-side veth that DEL should have removed, for example).
    """
    before = lab.link_names()
    owned: list[str] = []
    yield owned
    for name in owned:
        lab.delete_link(name)
    leaked = _new_links_settled(before)
    for name in leaked:
        lab.delete_link(name)
    assert not leaked, f"host links left behind: {sorted(leaked)}"
