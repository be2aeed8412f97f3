"""The lab's objects in a real API server (``multinic lab up --kubeconfig``).

What a cluster admin and the kubelets would make: a namespace of the lab's
own (its name is the lab's), one Node per lab node (its InternalIP the node's
management address; a kubelet would register it just so), the
NetworkAttachmentDefinitions and the Pod objects bound to their nodes. The
controller-manager's node IPAM gives each Node its ``spec.podCIDRs``; the lab
waits for them before it starts the daemons, which then read Nodes, Pods and
NADs from the API.

Nothing runs on these Nodes (no kubelet): the node lifecycle controller marks
them not ready, and evicts their Pods once the default tolerations run out
(300 s after the node is found unreachable). ``lab down`` deletes every
object, Pods first with no grace period (no kubelet would ever confirm a
graceful deletion), and waits until the namespace is gone.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from multinic.cni.errors import CNIError
from multinic.kube.objects import NAD_GROUP, NAD_PLURAL, NAD_VERSION, NETWORK_STATUS_ANNOTATION
from multinic.kube.rest import RestClient, load_access
from multinic.lab.errors import KubeLabError

#: Seconds for the controller-manager to give every Node its pod CIDRs, and for a namespace
#: to be emptied and removed.
WAIT = 90.0
LAB_LABEL = "multinic.io/lab"


def _q(text: str) -> str:
    return quote(text, safe="")


class LabApi:
    """Create, read and delete the lab's objects (the kubeconfig's credentials)."""

    def __init__(self, kubeconfig: str) -> None:
        try:
            self.client = RestClient(load_access(kubeconfig), timeout=15.0)
        except CNIError as exc:
            raise KubeLabError(f"kubeconfig {kubeconfig}: {exc.msg} {exc.details}") from exc

    def close(self) -> None:
        self.client.close()

    def _call(self, method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        try:
            return self.client.request(method, path, body, deadline=time.monotonic() + 30, **kw)
        except CNIError as exc:
            raise KubeLabError(f"{method} {path}: {exc.msg}: {exc.details}") from exc

    def get(self, path: str) -> dict[str, Any] | None:
        status, answer = self._call("GET", path)
        if status == 404:
            return None
        self._ok("GET", path, status, answer)
        return dict(answer)

    def create(self, path: str, obj: dict[str, Any], *, exist_ok: bool = False) -> dict[str, Any]:
        status, answer = self._call("POST", path, obj)
        if status == 409 and exist_ok:
            return {}
        self._ok(f"create {obj.get('kind')} {obj['metadata']['name']} at", path, status, answer)
        return dict(answer)

    def merge_patch(self, path: str, patch: dict[str, Any]) -> None:
        status, answer = self._call(
            "PATCH", path, patch, content_type="application/merge-patch+json"
        )
        self._ok("PATCH", path, status, answer)

    def delete(self, path: str) -> None:
        """Delete now (no grace period); an absent object is fine."""
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0}
        status, answer = self._call("DELETE", path, body)
        if status != 404:
            self._ok("DELETE", path, status, answer)

    @staticmethod
    def _ok(what: str, path: str, status: int, answer: Any) -> None:
        if not 200 <= status < 300:
            message = answer.get("message", "") if isinstance(answer, dict) else ""
            raise KubeLabError(f"{what} {path}: the API server answered {status}: {message}")


# --- paths ---------------------------------------------------------------------------


def node_path(name: str = "") -> str:
    return f"/api/v1/nodes/{_q(name)}" if name else "/api/v1/nodes"


def namespace_path(name: str = "") -> str:
    return f"/api/v1/namespaces/{_q(name)}" if name else "/api/v1/namespaces"


def pod_path(namespace: str, name: str = "") -> str:
    base = f"{namespace_path(namespace)}/pods"
    return f"{base}/{_q(name)}" if name else base


def nad_path(namespace: str, name: str = "") -> str:
    base = f"/apis/{NAD_GROUP}/{NAD_VERSION}/namespaces/{_q(namespace)}/{NAD_PLURAL}"
    return f"{base}/{_q(name)}" if name else base


# --- the lab's objects ---------------------------------------------------------------


def node_object(lab: str, name: str, address: str) -> dict[str, Any]:
    """A Node as a kubelet registers it: labelled with the lab, its InternalIP set."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {LAB_LABEL: lab}},
        "status": {"addresses": [{"type": "InternalIP", "address": address}]},
    }


def register_node(api: LabApi, lab: str, name: str, address: str) -> None:
    """Create the Node; its status again through the status subresource (whether the
    server kept it from the create depends on its version)."""
    node = node_object(lab, name, address)
    api.create(node_path(), node)
    api.merge_patch(f"{node_path(name)}/status", {"status": node["status"]})


def pod_cidrs(api: LabApi, name: str) -> list[str]:
    node = api.get(node_path(name)) or {}
    spec = node.get("spec") or {}
    return list(spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else []))


def wait_pod_cidrs(
    api: LabApi, names: Iterable[str], timeout: float = WAIT
) -> dict[str, list[str]]:
    """Every Node's pod CIDRs, once the controller-manager has allocated them."""
    found: dict[str, list[str]] = {}
    deadline = time.monotonic() + timeout
    for name in names:
        while not (cidrs := pod_cidrs(api, name)):
            if time.monotonic() > deadline:
                raise KubeLabError(
                    f"Node {name} got no spec.podCIDRs in {timeout:.0f} s: is "
                    "kube-controller-manager running with --allocate-node-cidrs?"
                )
            time.sleep(0.2)
        found[name] = cidrs
    return found


def create_namespace(api: LabApi, namespace: str) -> None:
    """The namespace and its default service account (the pod admission wants it, and the
    controller that makes it may not have yet)."""
    api.create(namespace_path(), {"apiVersion": "v1", "kind": "Namespace",
                                  "metadata": {"name": namespace}})  # fmt: skip
    account = {"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": "default", "namespace": namespace}}  # fmt: skip
    api.create(f"{namespace_path(namespace)}/serviceaccounts", account, exist_ok=True)


def create_objects(
    api: LabApi, namespace: str, nads: Iterable[dict[str, Any]], pods: Iterable[dict[str, Any]]
) -> dict[str, str]:
    """The NADs and Pods; each pod's uid (the runtime passes it in CNI_ARGS)."""
    for nad in nads:
        api.create(nad_path(namespace), nad)
    uids = {}
    for pod in pods:
        made = api.create(pod_path(namespace), pod)
        uids[pod["metadata"]["name"]] = str(made["metadata"]["uid"])
    return uids


def remove_all(api: LabApi, namespace: str, nodes: Iterable[str], timeout: float = WAIT) -> None:
    """Pods (no grace), the namespace (and so its NADs), the Nodes; until the namespace is gone."""
    listed = api.get(pod_path(namespace)) or {}
    for pod in listed.get("items") or []:
        api.delete(pod_path(namespace, pod["metadata"]["name"]))
    api.delete(namespace_path(namespace))
    for name in nodes:
        api.delete(node_path(name))
    deadline = time.monotonic() + timeout
    while api.get(namespace_path(namespace)) is not None:
        if time.monotonic() > deadline:
            raise KubeLabError(f"namespace {namespace} still there after {timeout:.0f} s")
        time.sleep(0.2)


def network_status(api: LabApi, namespace: str, pod: str) -> str | None:
    """The pod's network-status annotation as the meta plugin wrote it."""
    found = api.get(pod_path(namespace, pod)) or {}
    annotations = (found.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(NETWORK_STATUS_ANNOTATION)
    return value if isinstance(value, str) else None
