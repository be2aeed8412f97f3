"""The test control plane is real: kubectl, our NAD CRD, and node IPAM all work.

Every test makes objects of its own (a namespace, a uniquely named Node) and
removes them, so the tests share one control plane without sharing state.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.kube import CLUSTER_CIDR, NODE_CIDR_MASK, KubeCluster

MACVLAN_CONFIG = {
    "cniVersion": "1.1.0",
    "name": "data-n3",
    "type": "multinic-macvlan",
    "master": "eth1",
    "ipam": {"type": "multinic-ipam", "range": "10.100.1.0/24"},
}


def nad(name: str, namespace: str, config: object) -> dict[str, object]:
    return {
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"config": config},
    }


def test_nad_is_created_read_and_deleted_through_the_api(kube_cluster: KubeCluster) -> None:
    with kube_cluster.namespace() as namespace:
        config = json.dumps(MACVLAN_CONFIG)
        kube_cluster.apply(nad("data-n3", namespace, config))

        stored = kube_cluster.get_object("network-attachment-definitions", "data-n3", namespace)
        assert stored["apiVersion"] == "k8s.cni.cncf.io/v1"
        assert json.loads(stored["spec"]["config"]) == MACVLAN_CONFIG
        # The short name users type, and the table kubectl prints.
        listed = kube_cluster.kubectl("get", "net-attach-def", "-n", namespace).stdout
        assert listed.split()[:2] == ["NAME", "AGE"]
        assert "data-n3" in listed

        kube_cluster.kubectl("delete", "net-attach-def", "data-n3", "-n", namespace)
        gone = kube_cluster.kubectl(
            "get", "net-attach-def", "data-n3", "-n", namespace, check=False
        )
        assert gone.returncode != 0
        assert "NotFound" in gone.stderr


def test_crd_schema_refuses_a_config_that_is_not_a_string(kube_cluster: KubeCluster) -> None:
    with kube_cluster.namespace() as namespace:
        with pytest.raises(RuntimeError, match=r"spec\.config"):
            kube_cluster.apply(nad("bad", namespace, MACVLAN_CONFIG))
        gone = kube_cluster.kubectl("get", "net-attach-def", "bad", "-n", namespace, check=False)
        assert "NotFound" in gone.stderr


@pytest.fixture
def node_names(kube_cluster: KubeCluster) -> Iterator[list[str]]:
    """Names for Node objects this test creates; every one is deleted afterwards."""
    names = [f"node-{secrets.token_hex(4)}" for _ in range(2)]
    yield names
    kube_cluster.kubectl("delete", "node", *names, "--ignore-not-found", check=False)


def pod_cidr(kube_cluster: KubeCluster, node: str, timeout: float = 60.0) -> str:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        spec = kube_cluster.get_object("node", node).get("spec", {})
        if spec.get("podCIDR"):
            assert spec["podCIDRs"] == [spec["podCIDR"]]
            return str(spec["podCIDR"])
        time.sleep(0.2)
    raise AssertionError(f"node {node} got no podCIDR in {timeout}s: {kube_cluster.logs()}")


def test_controller_manager_gives_each_node_a_24_from_the_pod_block(
    kube_cluster: KubeCluster, node_names: list[str]
) -> None:
    kube_cluster.apply(
        *({"apiVersion": "v1", "kind": "Node", "metadata": {"name": n}} for n in node_names)
    )

    cidrs = [ipaddress.ip_network(pod_cidr(kube_cluster, n)) for n in node_names]

    block = ipaddress.ip_network(CLUSTER_CIDR)
    assert all(c.prefixlen == NODE_CIDR_MASK and c.subnet_of(block) for c in cidrs)  # type: ignore[arg-type]
    assert cidrs[0] != cidrs[1]


def test_a_stopped_cluster_leaves_no_process_and_no_files(tmp_path: Path) -> None:
    """The fixture's teardown, checked on a cluster of this test's own."""
    cluster = KubeCluster(tmp_path / "own")
    with cluster:
        children = [p.popen for p in cluster.processes] + [
            m.process for m in cluster.etcd.members if m.process is not None
        ]
        assert len(children) == 3
        assert cluster.get("/readyz")[0] == 200

    # Exited and reaped (a returncode is only set once waited for).
    assert all(child.returncode is not None for child in children)
    assert not (tmp_path / "own").exists()
