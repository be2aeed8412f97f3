"""Selection against the real apiserver: NADs and a pod made with kubectl, planned via the API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from multinic.cni.errors import IsolationError, NetworkNotFoundError
from multinic.kube.api import ApiSource
from multinic.kube.objects import NETWORKS_ANNOTATION
from multinic.meta.config import MetaConfig
from multinic.meta.plan import plan_pod, pod_request
from tests.e2e.kube.test_api_source import nad, pod
from tests.support.kube import KubeCluster

MACVLAN = {"cniVersion": "1.0.0", "name": "data", "type": "macvlan", "master": "eth1"}


@pytest.fixture
def source(kube_cluster: KubeCluster) -> Iterator[ApiSource]:
    api = ApiSource.connect(kube_cluster.kubeconfig)
    yield api
    api.close()


def test_a_pod_and_its_nads_from_the_api_become_a_plan(
    kube_cluster: KubeCluster, source: ApiSource, tmp_path: Path
) -> None:
    (tmp_path / "10-podnet.conflist").write_text(
        '{"cniVersion": "1.0.0", "name": "podnet", "plugins": [{"type": "bridge"}]}'
    )
    with kube_cluster.namespace("plan") as namespace:
        annotation = f"data@n3, {namespace}/ghost"
        kube_cluster.apply(
            nad("data", namespace, {"config": json.dumps(MACVLAN)}),
            *pod("upf-0", namespace, "node-plan", {NETWORKS_ANNOTATION: annotation}),
        )
        uid = source.get_pod(namespace, "upf-0").uid
        args = (("K8S_POD_NAMESPACE", namespace), ("K8S_POD_NAME", "upf-0"), ("K8S_POD_UID", uid))
        meta = MetaConfig("podnet", conf_dir=tmp_path)

        with pytest.raises(NetworkNotFoundError, match=rf"network {namespace}/ghost not found"):
            plan_pod(meta, source, pod_request(args, "eth0"))

        kube_cluster.kubectl(
            "annotate", "pod", "upf-0", "-n", namespace, "--overwrite",
            f"{NETWORKS_ANNOTATION}=data@n3, default/shared",
        )  # fmt: skip
        kube_cluster.apply(nad("shared", "default", {"config": json.dumps(MACVLAN)}))
        try:
            got = plan_pod(meta, source, pod_request(args, "eth0"))
            assert [(a.network, a.interface) for a in got.attachments] == [
                ("podnet", "eth0"),
                (f"{namespace}/data", "n3"),
                ("default/shared", "net2"),
            ]
            assert json.loads(got.attachments[1].config)["plugins"] == [MACVLAN]
            isolated = meta._replace(namespace_isolation=True, global_namespaces=())
            with pytest.raises(IsolationError, match=r"forbids network default/shared"):
                plan_pod(isolated, source, pod_request(args, "eth0"))
        finally:
            kube_cluster.kubectl("delete", "net-attach-def", "shared", "-n", "default")
