"""Two scratch namespaces per test: ``node`` (stands in for the host) and ``pod``.

Keeping the "host" side in a namespace of its own means a failing test cannot
leave links on the real host; deleting the namespaces removes everything.
Observations come from iproute2 (``ip -j``), not from the code under test.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import pytest

from multinic.dataplane import Netns, open_netns
from multinic.lab import netns as lab
from tests.netns.conftest import unique


class Space(NamedTuple):
    """A scratch namespace: its name for `ip -n`, its path and our open handle."""

    name: str
    path: str
    ns: Netns


def _space(prefix: str) -> Iterator[Space]:
    name = unique(prefix)
    with lab.scratch_netns(name) as path, open_netns(str(path)) as ns:
        yield Space(name, str(path), ns)


@pytest.fixture
def node() -> Iterator[Space]:
    yield from _space("mnt-dpnode-")


@pytest.fixture
def pod() -> Iterator[Space]:
    yield from _space("mnt-dppod-")


def ip_link(space: Space, ifname: str) -> dict[str, Any]:
    """`ip -j -d link show IFNAME` in the namespace."""
    [link] = lab.ip_json("-d", "link", "show", "dev", ifname, netns=space.name)
    return link


def ip_names(space: Space) -> set[str]:
    return lab.link_names(space.name)


def ip_addrs(space: Space, ifname: str) -> list[dict[str, Any]]:
    """addr_info entries of `ip -j addr show dev IFNAME`."""
    [link] = lab.ip_json("addr", "show", "dev", ifname, netns=space.name)
    addr_info: list[dict[str, Any]] = link.get("addr_info", [])
    return addr_info
