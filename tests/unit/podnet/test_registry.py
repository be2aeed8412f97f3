"""The node list in the cluster store (a real SQLite file): dual-stack nodes and their addresses."""

from __future__ import annotations

import json
from ipaddress import ip_address, ip_network
from pathlib import Path

import pytest

from multinic.ipam.sqlite_store import SQLiteStore
from multinic.ipam.store import deadline_after
from multinic.podnet.registry import StoreRegistry, nodes_key

DUAL = (ip_network("10.32.0.0/16"), ip_network("fd00:32::/48"))


@pytest.fixture
def registry(tmp_path: Path) -> StoreRegistry:
    db = str(tmp_path / "cluster.db")
    return StoreRegistry(lambda: SQLiteStore(db), "edge", DUAL, 24)


def test_a_dual_stack_node_gets_a_24_and_a_64_and_keeps_its_addresses(
    registry: StoreRegistry,
) -> None:
    me = registry.join("node-1", ip_address("10.10.1.11"), [ip_address("fd00:10::b")])

    assert me.pod_cidrs == (ip_network("10.32.0.0/24"), ip_network("fd00:32::/64"))
    assert me.address == ip_address("10.10.1.11")
    assert me.addresses == (ip_address("10.10.1.11"), ip_address("fd00:10::b"))
    assert me.underlay(6) == ip_address("fd00:10::b")
    assert registry.nodes() == [me]


def test_nodes_get_distinct_cidrs_of_both_families_and_keep_them_on_rejoin(
    registry: StoreRegistry,
) -> None:
    one = registry.join("node-1", ip_address("10.10.1.11"))
    two = registry.join("node-2", ip_address("10.10.1.12"))

    assert set(one.pod_cidrs).isdisjoint(two.pod_cidrs)
    assert [c.version for c in two.pod_cidrs] == [4, 6]
    again = registry.join("node-1", ip_address("10.10.1.11"), [ip_address("fd00:10::b")])
    assert again.pod_cidrs == one.pod_cidrs
    assert again.underlay(6) == ip_address("fd00:10::b")


def test_an_ipv4_only_node_has_no_ipv6_underlay(registry: StoreRegistry) -> None:
    me = registry.join("node-1", ip_address("10.10.1.11"))

    assert me.addresses == (me.address,) and me.underlay(6) is None


def test_an_entry_written_before_dual_stack_is_read(tmp_path: Path) -> None:
    db = str(tmp_path / "cluster.db")
    store = SQLiteStore(db)
    old = {"node-9": {"address": "10.10.1.19", "podCIDRs": ["10.32.9.0/24"]}}
    item = store.snapshot([nodes_key("edge")], deadline=deadline_after(5))[nodes_key("edge")]
    assert store.commit(
        {nodes_key("edge"): item.revision},
        {nodes_key("edge"): json.dumps(old).encode()},
        deadline=deadline_after(5),
    )
    store.close()

    [entry] = StoreRegistry(lambda: SQLiteStore(db), "edge", DUAL, 24).nodes()

    assert entry.addresses == (ip_address("10.10.1.19"),)
    assert entry.underlay(4) == ip_address("10.10.1.19") and entry.underlay(6) is None
