"""The lab against the test control plane (etcd, kube-apiserver, kube-controller-manager).

The shared ``kube_cluster`` allocates Node pod CIDRs from CLUSTER_CIDR, so
the lab is given that as its pod block. Every object the lab makes carries
its name (namespace, Node names), so other tests' objects never meet it.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest

from multinic.lab import cluster, kube, run
from multinic.lab import netns as nsutil
from multinic.lab.state import LabState
from multinic.lab.topology import STATE_ROOT, LabLayout, NodeLayout
from tests.e2e.lab.helpers import (
    block_nodes,
    eventually,
    failed,
    fdb,
    processes_under,
    routes,
)
from tests.support.kube import CLUSTER_CIDR, NODE_CIDR_MASK, KubeCluster
from tests.support.labs import leftovers

pytestmark = [pytest.mark.e2e, pytest.mark.kube]


def _up(kube_cluster: KubeCluster, name: str, **spec: Any) -> LabLayout:
    return run.up(
        run.LabSpec(name=name, kubeconfig=kube_cluster.kubeconfig, pod_block=CLUSTER_CIDR, **spec)
    ).layout


def _lab_nodes(kube_cluster: KubeCluster, name: str) -> list[dict[str, Any]]:
    listed = kube_cluster.kubectl("get", "nodes", "-l", f"{kube.LAB_LABEL}={name}", "-o", "json")
    items: list[dict[str, Any]] = json.loads(listed.stdout)["items"]
    return items


def _vtep_neighbours(node: NodeLayout) -> list[dict[str, Any]]:
    shown = nsutil.ip_json("neigh", "show", "dev", "mnvx0", netns=node.netns)
    return [n for n in shown if "PERMANENT" in n.get("state", [])]


def _namespace_exists(kube_cluster: KubeCluster, name: str) -> bool:
    done = kube_cluster.kubectl("get", "namespace", name, check=False)
    return done.returncode == 0


def test_lab_on_the_api_server_and_down_leaves_nothing(
    kube_cluster: KubeCluster, lab_name: str
) -> None:
    layout = _up(kube_cluster, lab_name, nodes=3, pods=2, secondaries=2)

    nodes = {n["metadata"]["name"]: n for n in _lab_nodes(kube_cluster, lab_name)}
    assert set(nodes) == {n.name for n in layout.nodes}
    status = {n["name"]: n for n in run.status(lab_name)["lab"]["nodes"]}
    for node in layout.nodes:
        # The daemon's pod CIDR is the one the controller-manager allocated to its Node.
        allocated = nodes[node.name]["spec"]["podCIDRs"]
        assert status[node.name]["podCIDRs"] == allocated
        cidr = ipaddress.ip_network(allocated[0])
        assert cidr.prefixlen == NODE_CIDR_MASK
        assert cidr.subnet_of(ipaddress.ip_network(CLUSTER_CIDR))  # type: ignore[arg-type]
    assert failed(lab_name) == []  # every pod has its addresses in its Pod's network-status
    pod = kube_cluster.get_object("pod", "pod-1-1", namespace=lab_name)
    written = json.loads(pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"])
    assert [entry["interface"] for entry in written] == ["eth0", "net1", "net2"]
    assert block_nodes(lab_name) == {n.name for n in layout.nodes}
    state = LabState.load(lab_name)
    assert state is not None and set(state.data["helpers"]) == {"relay"}

    run.down(lab_name)

    assert leftovers(lab_name) == []
    assert processes_under(STATE_ROOT / lab_name) == []
    assert _lab_nodes(kube_cluster, lab_name) == []
    assert not _namespace_exists(kube_cluster, lab_name)


def test_nodes_deleted_and_added_in_the_api_change_the_others_routes(
    kube_cluster: KubeCluster, lab_name: str
) -> None:
    layout = _up(kube_cluster, lab_name, nodes=3, pods=1, secondaries=1, overlay="vxlan")
    first, second, third = layout.nodes
    assert failed(lab_name) == []
    assert {e["dst"] for e in fdb(first)} == {str(second.address.ip), str(third.address.ip)}

    kube_cluster.kubectl("delete", "node", third.name)  # as an admin would: nothing else

    gone = str(third.address.ip)
    for node in (first, second):
        assert eventually(lambda n=node: gone not in {e["dst"] for e in fdb(n)})
        assert eventually(lambda n=node: len(routes(n)) == 1)
        assert eventually(lambda n=node: len(_vtep_neighbours(n)) == 1), (
            cluster.LabPaths(layout.root).log(node.name).read_text()
        )

    # The Node comes back (a kubelet registering again): the others route to it again.
    api = kube.LabApi(str(kube_cluster.kubeconfig))
    try:
        kube.register_node(api, lab_name, third.name, str(third.address.ip))
        cidr = kube.wait_pod_cidrs(api, [third.name])[third.name][0]
    finally:
        api.close()
    for node in (first, second):
        assert eventually(lambda n=node: gone in {e["dst"] for e in fdb(n)})
        assert eventually(lambda n=node: cidr in {r["dst"] for r in routes(n)})


def test_lab_with_a_control_plane_of_its_own(lab_name: str) -> None:
    """``--kube``: etcd, apiserver and controller-manager run by the lab, CIDRs from the plan."""
    layout = run.up(run.LabSpec(name=lab_name, nodes=2, pods=2, secondaries=1, kube=True)).layout
    state = LabState.load(lab_name)
    assert state is not None
    assert {"kube-etcd-m0", "kube-apiserver", "kube-controller-manager", "relay"} == set(
        state.data["helpers"]
    )
    block = ipaddress.ip_network(layout.pod_block[0])
    for node in run.status(lab_name)["lab"]["nodes"]:
        assert ipaddress.ip_network(node["podCIDRs"][0]).subnet_of(block)  # type: ignore[arg-type]
    assert failed(lab_name) == []

    run.down(lab_name)

    assert leftovers(lab_name) == []
    assert processes_under(STATE_ROOT / lab_name) == []
