"""Real pods: kubelet and containerd call multinic (issue 14).

Pods are created with ``kubectl apply`` on a node of real parts
(tests/support/kubelet_node.py: containerd 1.6 + runc, kubelet 1.37,
``multinic node`` with podnet): containerd's libcni executes
``multinic-shim`` with the K8S_POD_* args, the daemon attaches the primary
(podnet's bridge on the Node's podCIDR) and the NADs the pod's annotation
asks for. What the tests look at is what a user sees: ``kubectl get pod -o
wide`` and ``-o yaml``, a ping from inside the pod (``ctr tasks exec`` in the
pod's container), and after ``kubectl delete pod`` the node's links, the
daemon's records and the IPAM reservations.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.kube import KubeCluster
from tests.support.kube_pods import (
    is_address,
    macvlan_nad,
    network_status,
    pod_manifest,
    service_account,
    wait_ready,
)
from tests.support.kubelet_node import KubeletNode

#: Secondary subnets (RFC 2544), only ever on links inside the node's namespace.
SUBNETS = ("198.18.190.0/24", "198.18.191.0/24")


@pytest.fixture
def namespace(kube_cluster: KubeCluster, kubelet_node: KubeletNode) -> Iterator[str]:
    """A namespace with two macvlan NADs; its pods are gone (from the node too) afterwards."""
    with kube_cluster.namespace("h14p") as ns:
        data_dir = str(kubelet_node.dirs["multinic"] / "ipam")
        kube_cluster.apply(
            service_account(ns),
            *(
                macvlan_nad(f"data-{i}", ns, kubelet_node.nics[i], SUBNETS[i], data_dir)
                for i in range(2)
            ),
        )
        try:
            yield ns
        finally:
            kube_cluster.kubectl(
                "delete", "pods", "--all", "-n", ns, "--timeout=120s", check=False, timeout=150
            )


def reservations(node: KubeletNode) -> list[str]:
    """Every address host-local holds on the node: the primary's and the NADs'."""
    root = node.dirs["multinic"]
    return sorted(
        str(p.relative_to(root)) for p in root.glob("**/*") if p.is_file() and is_address(p.name)
    )


def pod_links(node: KubeletNode) -> set[str]:
    """Links in the node beyond those it was made with and podnet's bridge (the pods' veths)."""
    own = {"lo", node.uplink, f"{node.uplink}p", node.bridge}
    own |= {*node.nics, *(f"{n}p" for n in node.nics)}
    return node.links() - own


def test_a_pod_gets_its_primary_and_secondaries_and_reaches_another_on_each(
    kube_cluster: KubeCluster, kubelet_node: KubeletNode, namespace: str
) -> None:
    node = kubelet_node
    # No nodeName: kube-scheduler places them.
    kube_cluster.apply(
        *(
            pod_manifest(p, namespace, node.name, "data-0, data-1", scheduled=True)
            for p in ("cnf-a", "cnf-b")
        )
    )

    wait_ready(kube_cluster, namespace, "cnf-a", "cnf-b")

    pod_cidr = ipaddress.ip_network(node.node_object()["spec"]["podCIDR"])
    wide = kube_cluster.kubectl("get", "pod", "cnf-a", "-n", namespace, "-o", "wide").stdout
    pod = json.loads(
        kube_cluster.kubectl("get", "pod", "cnf-a", "-n", namespace, "-o", "json").stdout
    )
    assert pod["spec"]["nodeName"] == node.name  # bound by the scheduler
    pod_ip = pod["status"]["podIP"]
    assert ipaddress.ip_address(pod_ip) in pod_cidr
    assert pod_ip in wide.split()
    statuses = {p: network_status(kube_cluster, namespace, p) for p in ("cnf-a", "cnf-b")}
    for status in statuses.values():
        assert [(s["name"], s["interface"], s.get("default", False)) for s in status] == [
            ("cluster", "eth0", True),
            (f"{namespace}/data-0", "net1", False),
            (f"{namespace}/data-1", "net2", False),
        ]
    assert statuses["cnf-a"][0]["ips"] == [pod_ip]
    inside = node.exec_in(namespace, "cnf-a", "ip", "-o", "-4", "addr")
    for entry in statuses["cnf-a"]:
        assert f"{entry['interface']}    inet {entry['ips'][0]}/" in inside.replace("\t", "    ")
    for index, entry in enumerate(statuses["cnf-b"]):
        subnet = ipaddress.ip_network(SUBNETS[index - 1]) if index else pod_cidr
        assert ipaddress.ip_address(entry["ips"][0]) in subnet
        node.exec_in(namespace, "cnf-a", "ping", "-c", "1", "-W", "5", entry["ips"][0])


def test_deleting_pods_leaves_no_link_record_or_reservation(
    kube_cluster: KubeCluster, kubelet_node: KubeletNode, namespace: str
) -> None:
    node = kubelet_node
    before = (pod_links(node), node.records(), reservations(node))
    kube_cluster.apply(pod_manifest("cnf-a", namespace, node.name, "data-0, data-1"))
    wait_ready(kube_cluster, namespace, "cnf-a")
    assert len(pod_links(node)) == len(before[0]) + 1  # the pod's host-side veth
    assert len(node.records()) == len(before[1]) + 1
    assert len(reservations(node)) == len(before[2]) + 3

    kube_cluster.kubectl("delete", "pod", "cnf-a", "-n", namespace, "--timeout=120s", timeout=150)

    node.wait_for(lambda: not node.sandboxes(namespace), "the pod's sandbox removed")
    assert (pod_links(node), node.records(), reservations(node)) == before


def test_pods_start_while_the_node_daemon_restarts(
    kube_cluster: KubeCluster, kubelet_node: KubeletNode, namespace: str
) -> None:
    """Kubelet retries the shim's code 11 while no daemon answers; nothing leaks."""
    node = kubelet_node
    before = (pod_links(node), node.records(), reservations(node))
    pods = [f"burst-{i}" for i in range(5)]
    node.stop_daemon()
    try:
        kube_cluster.apply(*(pod_manifest(p, namespace, node.name, "data-0") for p in pods))
        node.wait_for(lambda: _sandbox_failed(kube_cluster, namespace), "a failed sandbox")
    finally:
        node.start_daemon()

    wait_ready(kube_cluster, namespace, *pods)
    assert len(node.records()) == len(before[1]) + len(pods)
    kube_cluster.kubectl("delete", "pods", *pods, "-n", namespace, "--timeout=120s", timeout=150)
    node.wait_for(lambda: not node.sandboxes(namespace), "the pods' sandboxes removed")
    assert (pod_links(node), node.records(), reservations(node)) == before


def _sandbox_failed(cluster: KubeCluster, namespace: str) -> bool:
    """An event says kubelet failed to create a sandbox because of the shim's code 11."""
    events = json.loads(cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout)
    return any(
        e.get("reason") == "FailedCreatePodSandBox"
        and "multinic node daemon not available, try again later" in e.get("message", "")
        for e in events["items"]
    )


def test_the_node_is_made_of_what_it_says(kubelet_node: KubeletNode) -> None:
    """containerd 1.6 from Debian, kubelet 1.37 from its module, our conflist at 1.0.0."""
    info = kubelet_node.node_object()["status"]["nodeInfo"]
    assert info["containerRuntimeVersion"].startswith("containerd://1.6.")
    assert info["kubeletVersion"] == "v1.37.2"
    conflist = json.loads(Path(kubelet_node.dirs["cni-conf"], "00-multinic.conflist").read_text())
    assert conflist["cniVersion"] == "1.0.0"
    assert [p["type"] for p in conflist["plugins"]] == ["multinic-shim"]
