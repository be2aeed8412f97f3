"""Plugin tests leave the machine's nftables as they found it, and their node as they found it.

The bridge, ptp, tuning and sbr tests run the plugin's host side in a scratch
node namespace (:func:`plugin_node`); the session check below still watches
the real host's tables, in case a plugin call ever escapes the node.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import NamedTuple

import pytest

from multinic.lab import netns as lab
from multinic.plugins.nftables import TABLE
from tests.support.lower_plugins import scratch_node

FAMILIES = ("inet", "bridge")


def _rule_count(family: str, netns: str | None = None) -> int | None:
    """Rules in multinic's ``family`` table (in ``netns``); None when the table does not exist."""
    where = ["ip", "netns", "exec", netns] if netns else []
    done = subprocess.run(
        [*where, "nft", "-j", "list", "table", family, TABLE], capture_output=True, check=False
    )
    if done.returncode != 0:
        return None
    items = json.loads(done.stdout or b"{}").get("nftables", [])
    return sum(1 for item in items if "rule" in item)


@pytest.fixture(scope="session", autouse=True)
def multinic_nft_tables_removed() -> Iterator[None]:
    """The bridge and ptp plugins create table ``multinic`` (they never delete it: it is
    shared by every attachment). Their tests run them in node namespaces, so the host
    should never get one; a table this session created on the host is removed, and one
    still holding rules is a leak some DEL missed, and fails the session."""
    if shutil.which("nft") is None:
        yield
        return
    existed = {family for family in FAMILIES if _rule_count(family) is not None}
    yield
    leaked = []
    for family in set(FAMILIES) - existed:
        rules = _rule_count(family)
        if rules is None:
            continue
        if rules:
            leaked.append(f"{family} {TABLE}: {rules} rule(s)")
        subprocess.run(["nft", "delete", "table", family, TABLE], check=False)
    assert not leaked, f"nftables rules left behind: {leaked}"


class PluginNode(NamedTuple):
    """The scratch node a test's plugin runs in; ``keep`` names the links it may end with."""

    name: str
    keep: set[str]


def _links_left(netns: str, keep: set[str], patience: float = 3.0) -> set[str]:
    # The kernel removes a veth asynchronously when its peer's namespace goes
    # (a test that deletes its pod before DEL), so give it a moment.
    deadline = time.monotonic() + patience
    while (left := lab.link_names(netns) - keep) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


@pytest.fixture
def plugin_node(request: pytest.FixtureRequest) -> Iterator[PluginNode]:
    """A scratch node namespace the test's plugin calls run in (see ``on_node``).

    After the test, while its pods still exist (they are set up before the node,
    so they go after it), the node must hold no link beyond loopback and those
    the test put in ``keep`` (a host veth DEL forgot fails here), and no rule in
    multinic's nftables tables (a masquerade or spoof-check rule DEL forgot).
    Deleting the namespace then removes everything else.
    """
    for name in ("pod", "pod2"):
        if name in request.fixturenames:
            request.getfixturevalue(name)
    with scratch_node() as node:
        under_test = PluginNode(node.name, {"lo"})
        yield under_test
        leaked = sorted(_links_left(node.name, under_test.keep))
        details = lab.ip("-d", "link", "show", netns=node.name) if leaked else ""
        rules = {f: n for f in FAMILIES if (n := _rule_count(f, node.name))}
        assert not leaked and not rules, (
            f"left behind in the node: links {leaked}, nftables rules {rules}\n{details}"
        )
