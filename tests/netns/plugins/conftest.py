"""Plugin tests leave the machine's nftables as they found it."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from multinic.plugins.nftables import TABLE

FAMILIES = ("inet", "bridge")


def _rule_count(family: str) -> int | None:
    """Rules in multinic's ``family`` table; None when the table does not exist."""
    done = subprocess.run(
        ["nft", "-j", "list", "table", family, TABLE], capture_output=True, check=False
    )
    if done.returncode != 0:
        return None
    items = json.loads(done.stdout or b"{}").get("nftables", [])
    return sum(1 for item in items if "rule" in item)


@pytest.fixture(scope="session", autouse=True)
def multinic_nft_tables_removed() -> Iterator[None]:
    """The bridge and ptp plugins create table ``multinic`` (they never delete it: it is
    shared by every attachment). Tables this session created are removed once empty;
    one still holding rules is a leak some DEL missed, and fails the session."""
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
