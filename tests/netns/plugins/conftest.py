"""Plugin tests leave the machine's nftables as they found it, and their node as they found it.

The bridge, ptp, tuning and sbr tests run the plugin's host side in a scratch
node namespace (``plugin_node``, tests/netns/conftest.py); the session check below still watches
the real host's tables, in case a plugin call ever escapes the node.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator

import pytest

from multinic.plugins.nftables import TABLE
from tests.support.lower_plugins import NFT_FAMILIES, CheckedNode, nft_rule_count

#: What the plugin_node fixture gives a test.
PluginNode = CheckedNode


@pytest.fixture(scope="session", autouse=True)
def multinic_nft_tables_removed() -> Iterator[None]:
    """The bridge and ptp plugins create table ``multinic`` (they never delete it: it is
    shared by every attachment). Their tests run them in node namespaces, so the host
    should never get one; a table this session created on the host is removed, and one
    still holding rules is a leak some DEL missed, and fails the session."""
    if shutil.which("nft") is None:
        yield
        return
    existed = {family for family in NFT_FAMILIES if nft_rule_count(family) is not None}
    yield
    leaked = []
    for family in set(NFT_FAMILIES) - existed:
        rules = nft_rule_count(family)
        if rules is None:
            continue
        if rules:
            leaked.append(f"{family} {TABLE}: {rules} rule(s)")
        subprocess.run(["nft", "delete", "table", family, TABLE], check=False)
    assert not leaked, f"nftables rules left behind: {leaked}"
