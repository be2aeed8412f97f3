"""The lab on a 3-member etcd of its own (``multinic lab up --store etcd``)."""

from __future__ import annotations

import json
import time

import pytest

from multinic.lab import cluster, run
from multinic.lab.state import LabState
from multinic.lab.topology import STATE_ROOT
from multinic.podnet.registry import nodes_key
from tests.e2e.lab.helpers import block_nodes, failed, processes_under
from tests.support.labs import leftovers

pytestmark = pytest.mark.e2e


def test_lab_on_etcd_and_down_stops_its_members(lab_name: str) -> None:
    layout = run.up(run.LabSpec(name=lab_name, nodes=2, pods=2, secondaries=1, store="etcd")).layout

    store = cluster.LabPaths(layout.root).backend.store
    assert store["type"] == "etcd" and len(store["endpoints"]) == 3
    assert not (layout.root / "cluster.db").exists()  # nothing went to SQLite
    state = LabState.load(lab_name)
    assert state is not None
    assert set(state.data["helpers"]) == {"etcd-m0", "etcd-m1", "etcd-m2", "relay"}
    assert failed(lab_name) == []
    # Both IPAMs are in etcd: the nodes' pod CIDRs and the secondary's blocks.
    etcd = run.open_lab_store(cluster.LabPaths(layout.root))
    try:
        key = nodes_key(layout.cluster)
        registered = etcd.snapshot([key], deadline=time.monotonic() + 30)[key].value
    finally:
        etcd.close()
    assert set(json.loads(registered or b"{}")) == {n.name for n in layout.nodes}
    assert block_nodes(lab_name) == {n.name for n in layout.nodes}
    assert set(run.held(lab_name)["n3"]) == {f"{lab_name}-{p}/net1" for _, p in layout.all_pods()}

    run.down(lab_name)

    assert leftovers(lab_name) == []
    assert processes_under(STATE_ROOT / lab_name) == []
