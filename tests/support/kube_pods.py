"""Pods and NADs for a real node (tests/support/kubelet_node.py), made and read with kubectl."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from tests.support.kube import KubeCluster
from tests.support.kubelet_node import BUSYBOX_IMAGE

NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"
STATUS_ANNOTATION = "k8s.v1.cni.cncf.io/network-status"
#: The container sleeps until SIGTERM, so a delete does not wait out a grace period.
SLEEPER = ("/bin/sh", "-c", "trap 'exit 0' TERM; sleep 86400 & wait")


def pod_manifest(
    name: str, namespace: str, node: str, networks: str = "", *, scheduled: bool = False
) -> dict[str, Any]:
    """A busybox pod on ``node`` asking for ``networks`` (comma form).

    Bound with ``nodeName``, or with ``scheduled`` placed by kube-scheduler through
    a node selector (other tests' Node objects, without a kubelet, must not get it).
    """
    annotations = {NETWORKS_ANNOTATION: networks} if networks else {}
    placement = (
        {"nodeSelector": {"kubernetes.io/hostname": node}} if scheduled else {"nodeName": node}
    )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
        "spec": {
            **placement,
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 5,
            "containers": [
                {
                    "name": "main",
                    "image": BUSYBOX_IMAGE,
                    "imagePullPolicy": "Never",
                    "command": list(SLEEPER),
                }
            ],
        },
    }


def is_address(name: str) -> bool:
    """Whether a file's name is an IP address (host-local's reservation files)."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def service_account(namespace: str) -> dict[str, Any]:
    """The namespace's default ServiceAccount: admission wants it before the controller makes it."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "default", "namespace": namespace},
    }


def macvlan_nad(
    name: str, namespace: str, master: str, subnet: str, data_dir: str
) -> dict[str, Any]:
    """A NAD for a macvlan secondary on ``master`` with multinic-host-local on ``subnet``."""
    config = {
        "cniVersion": "1.1.0",
        "name": name,
        "type": "multinic-macvlan",
        "master": master,
        "mode": "bridge",
        "ipam": {
            "type": "multinic-host-local",
            "ranges": [[{"subnet": subnet}]],
            "dataDir": data_dir,
        },
    }
    return {
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"config": json.dumps(config)},
    }


def wait_ready(cluster: KubeCluster, namespace: str, *pods: str, timeout: int = 180) -> None:
    """Until every pod is Ready (Running, its container started), or fail with their states."""
    done = cluster.kubectl(
        "wait", "--for=condition=Ready", f"--timeout={timeout}s", "-n", namespace,
        *(f"pod/{p}" for p in pods), check=False, timeout=timeout + 30,
    )  # fmt: skip
    if done.returncode != 0:
        states = cluster.kubectl("get", "pods", "-n", namespace, "-o", "wide", check=False).stdout
        events = cluster.kubectl("get", "events", "-n", namespace, check=False).stdout
        raise AssertionError(f"pods not ready: {done.stderr}\n{states}\n{events[-4000:]}")


def network_status(cluster: KubeCluster, namespace: str, pod: str) -> list[dict[str, Any]]:
    """The pod's network-status annotation, read from ``kubectl get -o yaml`` as a user would."""
    import yaml

    obj = yaml.safe_load(cluster.kubectl("get", "pod", pod, "-n", namespace, "-o", "yaml").stdout)
    status: list[dict[str, Any]] = json.loads(obj["metadata"]["annotations"][STATUS_ANNOTATION])
    return status
