"""The meta plugin end to end against the real apiserver, driven as a runtime drives it.

NADs and Pod objects are made through the API (the pod bound to a node name,
no kubelet); the node daemon runs the meta plugin with the API source, in a
scratch node namespace where the primary's bridge and the secondaries' data
NICs live; the installed ``multinic-shim`` is executed with the CNI_ARGS a
runtime passes (K8S_POD_NAMESPACE, K8S_POD_NAME, K8S_POD_UID). Interfaces
are checked in the pod's namespace, network-status is read back from the API.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from multinic.kube.objects import NETWORKS_ANNOTATION
from multinic.lab import netns as lab
from multinic.meta.config import MetaConfig
from multinic.meta.selector import build_meta_plugin, open_source
from multinic.node.daemon import DaemonSettings, NodeDaemon
from multinic.plugins.inprocess import InProcessExecutor
from multinic.plugins.install import install_plugins
from tests.e2e.kube.test_api_source import nad, pod
from tests.netns.conftest import REFERENCE_PLUGIN_DIR, unique
from tests.support.etcd_cluster import free_port
from tests.support.kube import KubeCluster
from tests.support.lower_plugins import CheckedNode, checked_node, on_node
from tests.support.shim import run_shim

STATUS_ANNOTATION = "k8s.v1.cni.cncf.io/network-status"


class OnNodeExecutor(InProcessExecutor):
    """Plugin calls enter the scratch node's namespace; the daemon itself stays here.

    As on a real node, where the daemon runs with the host's network (and
    reaches the apiserver on this loopback) and the node is the host.
    """

    def call(self, *args: Any) -> bytes:
        return on_node(lambda: super(OnNodeExecutor, self).call(*args))


class MetaNode:
    """A node: its namespace, CNI dirs, two data NICs, and a daemon serving the meta plugin."""

    def __init__(self, checked: CheckedNode, root: Path, cluster: KubeCluster) -> None:
        self.root, self.cluster, self.checked = root, cluster, checked
        self.name = unique("node-")
        self.bin = root / "bin"
        install_plugins(str(self.bin))
        self.bridge = unique("mnkb")
        self.nics = [unique("mnkd") for _ in range(2)]
        for nic in self.nics:
            lab.ip(
                "link", "add", nic, "type", "veth", "peer", "name", f"{nic}p", netns=checked.name
            )
            lab.ip("link", "set", nic, "up", netns=checked.name)
        checked.keep.update({self.bridge, *self.nics, *(f"{n}p" for n in self.nics)})
        self.conf_dir = root / "net.d"
        self.conf_dir.mkdir()
        (self.conf_dir / "10-cluster.conflist").write_text(json.dumps(self._cluster_network()))
        self.daemon: NodeDaemon | None = None

    def _cluster_network(self) -> dict[str, Any]:
        return {
            "cniVersion": "1.1.0",
            "name": "cluster",
            "plugins": [
                {
                    "type": "multinic-bridge",
                    "bridge": self.bridge,
                    "isGateway": True,
                    "ipam": self.ipam("198.18.70.0/24"),
                }
            ],
        }

    def ipam(self, subnet: str) -> dict[str, Any]:
        return {
            "type": "multinic-host-local",
            "ranges": [[{"subnet": subnet}]],
            "dataDir": str(self.root / "ipam"),
        }

    def macvlan_nad(self, name: str, namespace: str, nic: int, subnet: str) -> dict[str, Any]:
        config = {
            "cniVersion": "1.1.0",
            "name": name,
            "type": "multinic-macvlan",
            "master": self.nics[nic],
            "mode": "bridge",
            "ipam": self.ipam(subnet),
        }
        return nad(name, namespace, {"config": json.dumps(config)})

    def start(self, **meta: Any) -> NodeDaemon:
        config = MetaConfig(
            "cluster", conf_dir=self.conf_dir, kubeconfig=self.cluster.kubeconfig, **meta
        )
        plugin = build_meta_plugin(
            config,
            open_source(config),
            self.root / "meta",
            (REFERENCE_PLUGIN_DIR,),
            OnNodeExecutor(),
        )
        settings = DaemonSettings(
            socket_path=self.root / "run" / "cni.sock",
            cni_conf_dir=self.root / "runtime-net.d",
            health_port=free_port(),
        )
        daemon = NodeDaemon(plugin, settings)
        daemon.start()
        assert daemon.wait_ready(10)
        self.daemon = daemon
        return daemon

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()
            self.daemon = None

    def shim(
        self, command: str, netns: str, cid: str, namespace: str, name: str, uid: str
    ) -> tuple[int, Any]:
        args = (
            f"IgnoreUnknown=1;K8S_POD_NAMESPACE={namespace};K8S_POD_NAME={name};"
            f"K8S_POD_INFRA_CONTAINER_ID={cid};K8S_POD_UID={uid}"
        )
        socket_path = self.root / "run" / "cni.sock"
        done = run_shim(self.bin, socket_path, command, lab.netns_path(netns), cid, args)
        return done.returncode, json.loads(done.stdout) if done.stdout.strip() else None

    def reservations(self) -> list[str]:
        return sorted(p.name for p in (self.root / "ipam").glob("*/198.18.*"))


@pytest.fixture
def node(kube_cluster: KubeCluster, tmp_path: Path, pod_ns: str) -> Iterator[MetaNode]:
    del pod_ns  # made first, so the node (and its check) ends before the pod goes
    with checked_node() as checked:
        node = MetaNode(checked, tmp_path, kube_cluster)
        try:
            yield node
        finally:
            node.stop()


@pytest.fixture
def pod_ns() -> Iterator[str]:
    name = unique("mnt-pod-")
    with lab.scratch_netns(name):
        yield name


def make_pod(cluster: KubeCluster, namespace: str, node: str, annotation: str | None) -> str:
    annotations = {NETWORKS_ANNOTATION: annotation} if annotation is not None else {}
    cluster.apply(*pod("cnf-0", namespace, node, annotations))
    return str(cluster.get_object("pod", "cnf-0", namespace)["metadata"]["uid"])


def test_a_pod_gets_its_networks_status_and_a_del_without_its_nad(
    kube_cluster: KubeCluster, node: MetaNode, pod_ns: str
) -> None:
    node.start()
    with kube_cluster.namespace("meta") as ns:
        kube_cluster.apply(
            node.macvlan_nad("data-a", ns, 0, "198.18.71.0/24"),
            node.macvlan_nad("data-b", ns, 1, "198.18.72.0/24"),
        )
        uid = make_pod(kube_cluster, ns, node.name, "data-a, data-b@n6")

        code, result = node.shim("ADD", pod_ns, "cid-a", ns, "cnf-0", uid)

        assert code == 0, result
        assert lab.link_names(pod_ns) - {"lo"} == {"eth0", "net1", "n6"}
        assert [ip["address"] for ip in result["ips"]] == lab.addresses("eth0", pod_ns)
        annotations = kube_cluster.get_object("pod", "cnf-0", ns)["metadata"]["annotations"]
        status = json.loads(annotations[STATUS_ANNOTATION])
        assert [(s["name"], s["interface"], s["default"]) for s in status] == [
            ("cluster", "eth0", True),
            (f"{ns}/data-a", "net1", False),
            (f"{ns}/data-b", "n6", False),
        ]
        for entry in status:
            assert entry["ips"] == [
                a.split("/")[0] for a in lab.addresses(entry["interface"], pod_ns)
            ]
        assert node.shim("CHECK", pod_ns, "cid-a", ns, "cnf-0", uid)[0] == 0

        # The NAD and then the pod object go before the runtime's DEL: DEL still works.
        kube_cluster.kubectl("delete", "net-attach-def", "data-a", "-n", ns)
        kube_cluster.kubectl("delete", "pod", "cnf-0", "-n", ns, "--wait=false")
        assert node.shim("DEL", pod_ns, "cid-a", ns, "cnf-0", uid)[0] == 0
        assert node.shim("DEL", pod_ns, "cid-a", ns, "cnf-0", uid)[0] == 0
    assert lab.link_names(pod_ns) - {"lo"} == set()
    assert node.reservations() == []


@pytest.mark.parametrize(
    ("annotation", "code", "words"),
    [
        ("data-a,,", 7, "invalid annotation k8s.v1.cni.cncf.io/networks"),
        ('[{"name": "data-a", "interface": 5}]', 7, "k8s.v1.cni.cncf.io/networks"),
        ("ghost", 7, "ghost not found"),
    ],
)
def test_a_bad_selection_is_a_cni_error_naming_the_pod_and_nothing_attaches(
    kube_cluster: KubeCluster, node: MetaNode, pod_ns: str, annotation: str, code: int, words: str
) -> None:
    node.start()
    with kube_cluster.namespace("bad") as ns:
        kube_cluster.apply(node.macvlan_nad("data-a", ns, 0, "198.18.73.0/24"))
        uid = make_pod(kube_cluster, ns, node.name, annotation)

        got, error = node.shim("ADD", pod_ns, "cid-bad", ns, "cnf-0", uid)

        assert got == 1
        assert error["code"] == code
        assert words in f"{error['msg']} {error.get('details', '')}"
        if "annotation" in words:
            assert f"{ns}/cnf-0" in error["msg"]
    assert lab.link_names(pod_ns) - {"lo"} == set()
    assert node.reservations() == []
    assert list((node.root / "meta" / "records").glob("*.json")) == []


def test_namespace_isolation_refuses_another_namespaces_nad(
    kube_cluster: KubeCluster, node: MetaNode, pod_ns: str
) -> None:
    node.start(namespace_isolation=True, global_namespaces=())
    with kube_cluster.namespace("iso") as ns, kube_cluster.namespace("other") as other:
        kube_cluster.apply(node.macvlan_nad("data-a", other, 0, "198.18.74.0/24"))
        uid = make_pod(kube_cluster, ns, node.name, f"{other}/data-a")

        got, error = node.shim("ADD", pod_ns, "cid-iso", ns, "cnf-0", uid)

    assert got == 1 and error["code"] == 7
    assert f"{other}/data-a" in f"{error['msg']} {error.get('details', '')}"
    assert lab.link_names(pod_ns) - {"lo"} == set()


def test_del_works_with_the_api_server_stopped(tmp_path: Path, pod_ns: str) -> None:
    """A cluster of this test's own, stopped between ADD and DEL (Multus #920, #1372)."""
    with KubeCluster(tmp_path / "own") as own, checked_node() as checked:
        node = MetaNode(checked, tmp_path / "node", own)
        try:
            node.start()
            ns = "down"  # the cluster goes with the test: nothing to delete afterwards
            own.kubectl("create", "namespace", ns)
            own.apply(node.macvlan_nad("data-a", ns, 0, "198.18.75.0/24"))
            uid = make_pod(own, ns, node.name, "data-a")
            assert node.shim("ADD", pod_ns, "cid-down", ns, "cnf-0", uid)[0] == 0
            assert lab.link_names(pod_ns) - {"lo"} == {"eth0", "net1"}
            for process in own.processes:
                process.stop()  # the apiserver and controller-manager are gone

            code, error = node.shim("DEL", pod_ns, "cid-down", ns, "cnf-0", uid)

            assert code == 0, error
            assert lab.link_names(pod_ns) - {"lo"} == set()
            assert node.reservations() == []
        finally:
            node.stop()
