"""multinic.kube.api against the real control plane: NADs, pods, network-status, failures.

Objects are created through the API (kubectl, as an operator would); the source
under test reads them and writes the status back; kubectl reads that again.
"""

from __future__ import annotations

import json
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from multinic.cni.errors import (
    ErrorCode,
    InvalidConfigError,
    KubeRequestError,
    KubeUnavailableError,
    PodNotFoundError,
)
from multinic.kube.api import ApiSource
from multinic.kube.objects import NETWORK_STATUS_ANNOTATION, NETWORKS_ANNOTATION
from tests.support.etcd_cluster import free_port
from tests.support.kube import KubeCluster

MACVLAN = {"cniVersion": "1.0.0", "name": "data", "type": "macvlan", "master": "eth1"}
STATUS = [
    {"name": "kindnet", "interface": "eth0", "ips": ["10.32.0.7"], "default": True},
    {"name": "ns/data", "interface": "net1", "ips": ["10.100.1.5"], "mac": "02:00:00:00:00:01"},
]


def nad(name: str, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def pod(name: str, namespace: str, node: str, annotations: dict[str, str]) -> list[dict[str, Any]]:
    """A pod bound to ``node`` (no kubelet needed), with the namespace's service account
    (the admission plugin wants it; the controller may not have made it yet)."""
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "default", "namespace": namespace},
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
            "spec": {
                "nodeName": node,
                "automountServiceAccountToken": False,
                "containers": [{"name": "app", "image": "busybox"}],
            },
        },
    ]


@pytest.fixture
def source(kube_cluster: KubeCluster) -> Iterator[ApiSource]:
    api = ApiSource.connect(kube_cluster.kubeconfig)
    yield api
    api.close()


@pytest.fixture
def namespace(kube_cluster: KubeCluster) -> Iterator[str]:
    with kube_cluster.namespace("meta") as name:
        yield name


@pytest.fixture
def node(kube_cluster: KubeCluster) -> Iterator[str]:
    """A Node object for pods to be bound to (the pod GC removes pods of missing nodes)."""
    name = f"node-{secrets.token_hex(4)}"
    kube_cluster.apply({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
    yield name
    kube_cluster.kubectl("delete", "node", name, "--ignore-not-found", check=False)


def test_reads_nads_created_through_the_api(
    kube_cluster: KubeCluster, source: ApiSource, namespace: str
) -> None:
    kube_cluster.apply(
        nad("data", namespace, {"config": json.dumps(MACVLAN)}),
        nad("from-file", namespace, {}),
    )

    assert json.loads(source.get_network_config(namespace, "data") or "") == MACVLAN
    assert source.get_network_config(namespace, "from-file") == ""
    assert source.get_network_config(namespace, "absent") is None
    assert source.get_network_config("no-such-namespace", "data") is None
    assert source.get_network_config(namespace, "../x") is None  # never a URL path


def test_reads_a_pod_created_through_the_api(
    kube_cluster: KubeCluster, source: ApiSource, namespace: str, node: str
) -> None:
    kube_cluster.apply(*pod("upf-0", namespace, node, {NETWORKS_ANNOTATION: "data@n3"}))
    uid = kube_cluster.get_object("pod", "upf-0", namespace)["metadata"]["uid"]

    got = source.get_pod(namespace, "upf-0")

    assert (got.namespace, got.name, got.uid, got.node_name) == (namespace, "upf-0", uid, node)
    assert got.annotations[NETWORKS_ANNOTATION] == "data@n3"
    stored = kube_cluster.get_object("pod", "upf-0", namespace)["metadata"]["annotations"]
    assert got.annotations == stored  # kubectl's last-applied-configuration too


def test_a_missing_pod_is_a_clear_error(source: ApiSource, namespace: str) -> None:
    with pytest.raises(PodNotFoundError, match=rf"no pod {namespace}/gone") as caught:
        source.get_pod(namespace, "gone")
    assert caught.value.code == ErrorCode.UNKNOWN_CONTAINER
    with pytest.raises(PodNotFoundError):
        source.set_network_status(namespace, "gone", STATUS)


def test_writes_network_status_and_keeps_other_annotations(
    kube_cluster: KubeCluster, source: ApiSource, namespace: str, node: str
) -> None:
    kube_cluster.apply(*pod("upf-0", namespace, node, {NETWORKS_ANNOTATION: "data"}))
    uid = source.get_pod(namespace, "upf-0").uid

    source.set_network_status(namespace, "upf-0", STATUS[:1], uid=uid)
    source.set_network_status(namespace, "upf-0", STATUS, uid=uid)  # a second write replaces

    annotations = kube_cluster.get_object("pod", "upf-0", namespace)["metadata"]["annotations"]
    assert json.loads(annotations[NETWORK_STATUS_ANNOTATION]) == STATUS
    assert annotations[NETWORKS_ANNOTATION] == "data"
    assert source.get_pod(namespace, "upf-0").annotations == annotations


def test_status_is_not_written_to_a_pod_with_another_uid(
    kube_cluster: KubeCluster, source: ApiSource, namespace: str, node: str
) -> None:
    """The pod was deleted and created again under the same name: the status is not its."""
    kube_cluster.apply(*pod("upf-0", namespace, node, {}))

    with pytest.raises(PodNotFoundError, match=r"with uid 0000"):
        source.set_network_status(namespace, "upf-0", STATUS, uid="0000")

    annotations = kube_cluster.get_object("pod", "upf-0", namespace)["metadata"]["annotations"]
    assert NETWORK_STATUS_ANNOTATION not in annotations


def kubeconfig_to(kube_cluster: KubeCluster, server: str, path: Path) -> Path:
    config = json.loads(kube_cluster.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = server
    path.write_text(json.dumps(config))
    return path


def test_api_server_unreachable_is_try_again_later(
    kube_cluster: KubeCluster, tmp_path: Path
) -> None:
    closed = kubeconfig_to(kube_cluster, f"https://127.0.0.1:{free_port()}", tmp_path / "kc")
    api = ApiSource.connect(closed)

    for call in (
        lambda: api.get_pod("default", "upf-0"),
        lambda: api.get_network_config("default", "data"),
        lambda: api.set_network_status("default", "upf-0", STATUS),
    ):
        with pytest.raises(KubeUnavailableError, match=r"unreachable") as caught:
            call()
        assert caught.value.code == ErrorCode.TRY_AGAIN_LATER
        assert "127.0.0.1" in caught.value.details


def test_api_server_that_does_not_answer_times_out_as_try_again_later(
    kube_cluster: KubeCluster, tmp_path: Path
) -> None:
    with socket.socket() as silent:  # accepts connections, never speaks TLS
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        path = kubeconfig_to(kube_cluster, f"https://127.0.0.1:{port}", tmp_path / "kc")
        api = ApiSource.connect(path, timeout=0.5)

        with pytest.raises(KubeUnavailableError, match=r"unreachable") as caught:
            api.get_pod("default", "upf-0")
    assert "Timeout" in caught.value.details


def test_a_refused_request_is_an_io_failure_with_the_reason(kube_cluster: KubeCluster) -> None:
    api = ApiSource.connect(kube_cluster.user_kubeconfig(f"nobody-{secrets.token_hex(2)}"))

    with pytest.raises(KubeRequestError, match=r"refused to get pod default/upf-0") as caught:
        api.get_pod("default", "upf-0")
    assert caught.value.code == ErrorCode.IO_FAILURE
    assert "403" in caught.value.details


def test_a_missing_kubeconfig_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfigError, match=r"kubeconfig"):
        ApiSource.connect(tmp_path / "absent")
