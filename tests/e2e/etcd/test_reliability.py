"""multinic-ipam on a real three-member etcd cluster while members die.

* 10 nodes (processes) add 100 attachments each while the etcd leader is
  killed and restarted: two members keep the quorum, so every ADD succeeds
  within its deadline (retrying through the election), no address is held
  twice, and after DEL of everything the pool is empty.
* Every member down: ADD (the installed executable) answers code 11 within its
  deadline and leaves nothing behind.
* A plugin process SIGKILLed just before or just after its commit: no
  duplicate, and GC reclaims what the killed process left.
"""

from __future__ import annotations

import contextlib
import functools
import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from multinic.cni.errors import ErrorCode
from multinic.ipam.etcd_store import EtcdStore
from multinic.plugins.install import install_plugins
from tests.support import node_workers
from tests.support.etcd_cluster import EtcdCluster
from tests.support.ipam_state import StoreState
from tests.support.node_workers import Worker

NETWORK = "e2e-net"
PREFIX = "/e2e/"
#: A per-request timeout (seconds) that a leader election outlasts.
ELECTION_OUTLASTS = 0.2


def network_config(cluster: EtcdCluster, deadline: float = 20.0, **ipam: Any) -> dict[str, Any]:
    return {
        "cniVersion": "1.1.0",
        "name": NETWORK,
        "type": "macvlan",
        "ipam": {
            "type": "multinic-ipam",
            "range": "10.100.0.0/16",
            "store": {
                "type": "etcd",
                "endpoints": cluster.endpoints,
                "prefix": PREFIX,
                "timeout": 1.0,
                "deadline": deadline,
            },
            **ipam,
        },
    }


WORKER_MODULE = "tests.e2e.etcd.node_worker"

#: One worker per node, stopped when the ExitStack closes (tests.support.node_workers).
start_workers = functools.partial(node_workers.start_workers, module=WORKER_MODULE)


def total_lines(workers: list[Worker]) -> int:
    return sum(len(w.lines()) for w in workers)


def wait_for_lines(workers: list[Worker], count: int) -> None:
    while total_lines(workers) < count:
        if all(w.process.poll() is not None for w in workers):
            return
        time.sleep(0.05)


class State(StoreState):
    """Everything multinic-ipam keeps in etcd, read back for the checks."""

    def __init__(self, cluster: EtcdCluster) -> None:
        store = EtcdStore(cluster.endpoints, prefix=PREFIX)
        try:
            super().__init__(store)
        finally:
            store.close()


def test_ten_nodes_add_while_the_leader_dies_and_returns(
    etcd_cluster: EtcdCluster, tmp_path: Path
) -> None:
    config = network_config(etcd_cluster)
    # Shorter than the election after the kill (at least the 500 ms election timeout
    # EtcdCluster starts members with): requests in flight then find no member
    # answering, so the ADDs must retry.
    config["ipam"]["store"]["timeout"] = ELECTION_OUTLASTS
    containers = {f"node{n}": [f"n{n}-c{i}" for i in range(100)] for n in range(10)}
    with contextlib.ExitStack() as stack:
        workers = start_workers(stack, tmp_path, config, "ADD", containers)
        wait_for_lines(workers, 250)
        victim = etcd_cluster.leader()
        etcd_cluster.kill(victim)
        killed_at = total_lines(workers)
        wait_for_lines(workers, killed_at + 250)
        etcd_cluster.restart(victim)
        for worker in workers:
            assert worker.wait() == 0
        etcd_cluster.wait_healthy(etcd_cluster.members)
    assert killed_at < 1000, "the member died after the run, not during it"
    outcomes = [line for w in workers for line in w.lines()]
    assert len(outcomes) == 1000
    failed = [o for o in outcomes if o["status"] != 0]
    assert all(o["code"] == ErrorCode.TRY_AGAIN_LATER for o in failed), failed[:5]
    # Two of three members stay up: a new leader is elected in about a second, well
    # inside each ADD's deadline. An ADD that still answered code 11 gave up early
    # (e.g. at the first "leader changed") instead of retrying.
    assert failed == [], f"{len(failed)} of 1000 ADDs failed: {failed[:5]}"
    succeeded = {o["cid"]: o["ips"] for o in outcomes if o["status"] == 0}
    addresses = [a for ips in succeeded.values() for a in ips]
    assert len(addresses) == len(set(addresses)), "an address was handed out twice"

    state = State(etcd_cluster)
    state.assert_consistent()
    held = state.handle_addresses()
    for cid, ips in succeeded.items():
        assert [f"{a}/16" for a in held[cid]] == ips  # what the runtime got is what is held

    # The runtime DELs every attachment, failed ADDs included.
    with contextlib.ExitStack() as stack:
        deleters = start_workers(stack, tmp_path, config, "DEL", containers)
        for worker in deleters:
            assert worker.wait() == 0
    assert all(line["status"] == 0 for w in deleters for line in w.lines())
    empty = State(etcd_cluster)
    assert empty.handle_addresses() == {} and empty.block_addresses() == []


def test_all_members_down_add_answers_code_11_within_its_deadline(
    etcd_cluster: EtcdCluster, tmp_path: Path
) -> None:
    bin_dir = tmp_path / "bin"
    install_plugins(str(bin_dir))
    deadline, timeout = 3.0, 1.0
    config = network_config(etcd_cluster, deadline=deadline)

    def add(cid: str) -> tuple[int, dict[str, Any], float]:
        env = {
            "CNI_COMMAND": "ADD",
            "CNI_CONTAINERID": cid,
            "CNI_NETNS": "/var/run/netns/x",
            "CNI_IFNAME": "net1",
            "CNI_PATH": str(bin_dir),
        }
        start = time.monotonic()
        done = subprocess.run(
            [str(bin_dir / "multinic-ipam")],
            input=json.dumps(config).encode(),
            env=env,
            capture_output=True,
            timeout=120,
            check=False,
        )
        return done.returncode, json.loads(done.stdout), time.monotonic() - start

    status, result, _ = add("before")
    assert status == 0, result
    before = State(etcd_cluster)
    for member in etcd_cluster.members:
        etcd_cluster.kill(member)

    status, error, elapsed = add("while-down")
    assert status == 1 and error["code"] == ErrorCode.TRY_AGAIN_LATER, error
    assert "unavailable" in error["details"] or "no etcd member" in error["details"]
    # Not a speed threshold: the contract. The last attempt may start just before
    # the deadline and take one request timeout; interpreter start-up comes on top.
    assert elapsed < deadline + timeout + 5.0

    for member in etcd_cluster.members:
        etcd_cluster.restart(member)
    etcd_cluster.wait_healthy(etcd_cluster.members)
    after = State(etcd_cluster)
    assert after.nodes == before.nodes and after.pools == before.pools


@pytest.mark.parametrize("when", ["before-commit", "after-commit"])
def test_a_plugin_killed_mid_allocation_leaves_no_duplicate_and_gc_reclaims(
    etcd_cluster: EtcdCluster, tmp_path: Path, when: str
) -> None:
    config = network_config(etcd_cluster)
    cids = [f"k{i}" for i in range(10)]
    with contextlib.ExitStack() as stack:
        (worker,) = start_workers(
            stack, tmp_path, config, "ADD", {"node0": cids}, kill_when=when, kill_at=5
        )
        assert worker.wait() == -9  # SIGKILL
    reported = [line["cid"] for line in worker.lines() if line["status"] == 0]
    assert reported == cids[:4]

    state = State(etcd_cluster)
    state.assert_consistent()
    leaked = sorted(set(state.handle_addresses()) - set(reported))
    assert leaked == (["k4"] if when == "after-commit" else [])

    # Another node keeps allocating meanwhile: nothing it gets is held already.
    with contextlib.ExitStack() as stack:
        (other,) = start_workers(stack, tmp_path, config, "ADD", {"node1": ["o0", "o1"]})
        assert other.wait() == 0
    State(etcd_cluster).assert_consistent()

    # The runtime's GC lists the attachments it knows; the killed one's is not among them.
    valid = [{"containerID": cid, "ifname": "net1"} for cid in [*reported, "o0", "o1"]]
    gc_config = {**config, "cni.dev/valid-attachments": valid}
    with contextlib.ExitStack() as stack:
        (collector,) = start_workers(stack, tmp_path, gc_config, "GC", {"node0": ["gc"]})
        assert collector.wait() == 0
    assert [line["status"] for line in collector.lines()] == [0]
    after = State(etcd_cluster)
    after.assert_consistent()
    assert sorted(after.handle_addresses()) == sorted([*reported, "o0", "o1"])


def test_a_frozen_member_costs_a_request_timeout_not_the_add(
    etcd_cluster: EtcdCluster, tmp_path: Path
) -> None:
    """SIGSTOP the member every client tries first: ADDs still succeed through the others."""
    config = network_config(etcd_cluster)
    config["ipam"]["store"]["timeout"] = 0.5
    frozen = etcd_cluster.members[0]
    assert frozen.process is not None
    frozen.process.send_signal(signal.SIGSTOP)
    try:
        with contextlib.ExitStack() as stack:
            workers = start_workers(
                stack, tmp_path, config, "ADD", {"node0": ["f0", "f1"], "node1": ["f2", "f3"]}
            )
            for worker in workers:
                assert worker.wait() == 0
    finally:
        frozen.process.send_signal(signal.SIGCONT)
    outcomes = [line for w in workers for line in w.lines()]
    assert [o["status"] for o in outcomes] == [0, 0, 0, 0], outcomes
    State(etcd_cluster).assert_consistent()
