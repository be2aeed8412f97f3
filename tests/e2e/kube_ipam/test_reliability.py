"""multinic-ipam on the Kubernetes store, as a runtime runs it, while things die.

* 10 nodes (processes) x 100 ADDs, each the installed executable, as the node
  daemon's service account with only deploy/10-rbac.yaml's rights: no address
  twice, and after DEL of everything the pool is empty.
* The API server SIGKILLed and restarted in the middle of a run (a control
  plane of the test's own): every ADD succeeds or answers code 11, none twice,
  and after CNI GC nothing is held but what the successes got.
* A plugin process SIGKILLed just before or just after its commit: no
  duplicate, and GC reclaims what the killed process committed.
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
from pathlib import Path
from typing import Any

import pytest

from multinic.cni.errors import ErrorCode
from multinic.ipam.kube_store import KubeStore
from multinic.ipam.store import deadline_after
from multinic.plugins.install import install_plugins
from tests.e2e.kube_ipam.conftest import delete_scope
from tests.support import node_workers
from tests.support.ipam_state import StoreState
from tests.support.kube import ROOT, KubeCluster
from tests.support.node_workers import Worker

NETWORK = "kube-e2e-net"
#: The node daemon's identity, as deploy/10-rbac.yaml names it.
NODE_USER = "system:serviceaccount:multinic-system:multinic-node"


def network_config(kubeconfig: Path, scope: str, deadline: float = 60.0) -> dict[str, Any]:
    return {
        "cniVersion": "1.1.0",
        "name": NETWORK,
        "type": "macvlan",
        "ipam": {
            "type": "multinic-ipam",
            "range": "10.100.0.0/16",
            "store": {
                "type": "kubernetes",
                "kubeconfig": str(kubeconfig),
                "scope": scope,
                "timeout": 2.0,
                "deadline": deadline,
            },
        },
    }


def node_kubeconfig(cluster: KubeCluster) -> Path:
    """A kubeconfig that is the node daemon's service account, with deploy/10-rbac.yaml applied."""
    deploy = ROOT / "deploy"
    cluster.kubectl(
        "apply", "-f", str(deploy / "00-namespace.yaml"), "-f", str(deploy / "10-rbac.yaml")
    )
    return cluster.user_kubeconfig(NODE_USER, ("system:serviceaccounts",))


WORKER_MODULE = "tests.e2e.kube_ipam.node_worker"

#: One worker per node, stopped when the ExitStack closes (tests.support.node_workers).
start_workers = functools.partial(node_workers.start_workers, module=WORKER_MODULE)


def run_workers(tmp_path: Path, config: dict[str, Any], command: str, **kw: Any) -> list[Worker]:
    with contextlib.ExitStack() as stack:
        workers = start_workers(stack, tmp_path, config, command, **kw)
        for worker in workers:
            worker.wait()
    return workers


def outcomes(workers: list[Worker]) -> list[dict[str, Any]]:
    return [line for w in workers for line in w.lines()]


class State(StoreState):
    """Everything the store holds for the scope, read back (settling any lock) for the checks."""

    def __init__(self, cluster: KubeCluster, scope: str) -> None:
        store = KubeStore.connect(str(cluster.kubeconfig), timeout=5.0, scope=scope)
        store.clock = lambda: 1e12  # past every lock's expiry: settle what the dead left
        try:
            super().__init__(store)
            store.sweep(deadline=deadline_after(60))
        finally:
            store.close()


def locked_objects(cluster: KubeCluster, scope: str) -> list[str]:
    from tests.e2e.kube_ipam.conftest import KINDS

    listed = cluster.kubectl("get", KINDS, "-l", f"ipam.multinic.io/scope={scope}", "-o", "json")
    items = json.loads(listed.stdout)["items"]
    return [i["metadata"]["name"] for i in items if i.get("spec", {}).get("lock")]


def test_ten_nodes_add_as_executables_and_del_leaves_the_pool_empty(
    kube_cluster: KubeCluster, scope: str, tmp_path: Path
) -> None:
    bin_dir = tmp_path / "bin"
    install_plugins(str(bin_dir))
    config = network_config(node_kubeconfig(kube_cluster), scope)
    containers = {f"node{n}": [f"n{n}-c{i}" for i in range(100)] for n in range(10)}
    workers = run_workers(tmp_path, config, "ADD", containers=containers, bin_dir=str(bin_dir))
    added = outcomes(workers)
    assert len(added) == 1000
    failed = [o for o in added if o["status"] != 0]
    assert failed == [], f"{len(failed)} of 1000 ADDs failed: {failed[:5]}"
    addresses = [a for o in added for a in o["ips"]]
    assert len(addresses) == len(set(addresses)) == 1000, "an address was handed out twice"
    state = State(kube_cluster, scope)
    state.assert_consistent()
    held = state.handle_addresses()
    assert {cid: [f"{a}/16" for a in ips] for cid, ips in held.items()} == {
        o["cid"]: o["ips"] for o in added
    }
    # What kubectl shows a person: each node's blocks, used of capacity.
    shown = kube_cluster.kubectl("get", "ipamnodeblocks", "-l", f"ipam.multinic.io/scope={scope}")
    assert "USED" in shown.stdout and "CAPACITY" in shown.stdout and "node3" in shown.stdout

    deleted = run_workers(tmp_path, config, "DEL", containers=containers, bin_dir=str(bin_dir))
    assert [o for o in outcomes(deleted) if o["status"] != 0] == []
    empty = State(kube_cluster, scope)
    assert empty.handle_addresses() == {} and empty.block_addresses() == []
    assert locked_objects(kube_cluster, scope) == []


def test_the_apiserver_killed_and_restarted_mid_run(tmp_path: Path) -> None:
    with KubeCluster(tmp_path / "own-kube") as cluster:
        bin_dir = tmp_path / "bin"
        install_plugins(str(bin_dir))
        config = network_config(cluster.kubeconfig, "restart", deadline=8.0)
        containers = {f"node{n}": [f"n{n}-c{i}" for i in range(30)] for n in range(10)}
        with contextlib.ExitStack() as stack:
            workers = start_workers(
                stack, tmp_path, config, "ADD", containers, bin_dir=str(bin_dir)
            )
            while sum(len(w.lines()) for w in workers) < 60:
                time.sleep(0.05)
            cluster.kill("kube-apiserver")
            killed_at = sum(len(w.lines()) for w in workers)
            time.sleep(4.0)
            cluster.restart("kube-apiserver")
            for worker in workers:
                assert worker.wait() == 0
        assert killed_at < 300, "the API server died after the run, not during it"
        added = outcomes(workers)
        assert len(added) == 300
        odd = [o for o in added if o["status"] != 0 and o["code"] != ErrorCode.TRY_AGAIN_LATER]
        assert odd == [], odd[:5]
        succeeded = {o["cid"]: o["ips"] for o in added if o["status"] == 0}
        addresses = [a for ips in succeeded.values() for a in ips]
        assert len(addresses) == len(set(addresses)), "an address was handed out twice"
        assert len(succeeded) > 150, "most ADDs run while the API server is up"

        # The runtime's GC: only the attachments whose ADD succeeded are valid.
        valid = [{"containerID": cid, "ifname": "net1"} for cid in succeeded]
        gc_config = {**config, "cni.dev/valid-attachments": valid}
        run_workers(tmp_path, gc_config, "GC", containers={"node0": ["gc"]})
        state = State(cluster, "restart")
        state.assert_consistent()
        held = state.handle_addresses()
        assert sorted(held) == sorted(succeeded), "something leaked (or was lost)"
        for cid, ips in succeeded.items():
            assert [f"{a}/16" for a in held[cid]] == ips
        assert locked_objects(cluster, "restart") == []


@pytest.mark.parametrize("when", ["before-commit", "after-commit"])
def test_a_plugin_killed_mid_allocation_leaves_no_duplicate_and_gc_reclaims(
    kube_cluster: KubeCluster, scope: str, tmp_path: Path, when: str
) -> None:
    config = network_config(kube_cluster.kubeconfig, scope)
    cids = [f"k{i}" for i in range(10)]
    with contextlib.ExitStack() as stack:
        (worker,) = start_workers(
            stack, tmp_path, config, "ADD", {"node0": cids}, kill_when=when, kill_cid="k4"
        )
        assert worker.wait() == -9  # SIGKILL
    reported = [line["cid"] for line in worker.lines() if line["status"] == 0]
    assert reported == cids[:4]
    state = State(kube_cluster, scope)
    state.assert_consistent()
    leaked = sorted(set(state.handle_addresses()) - set(reported))
    assert leaked == (["k4"] if when == "after-commit" else [])

    run_workers(tmp_path, config, "ADD", containers={"node1": ["o0", "o1"]})
    State(kube_cluster, scope).assert_consistent()

    valid = [{"containerID": cid, "ifname": "net1"} for cid in [*reported, "o0", "o1"]]
    gc_config = {**config, "cni.dev/valid-attachments": valid}
    (collector,) = run_workers(tmp_path, gc_config, "GC", containers={"node0": ["gc"]})
    assert [line["status"] for line in collector.lines()] == [0]
    after = State(kube_cluster, scope)
    after.assert_consistent()
    assert sorted(after.handle_addresses()) == sorted([*reported, "o0", "o1"])
    delete_scope(kube_cluster, scope)
