"""Nodes and their pod CIDRs from the API server, and a watch that says when they changed.

The primary network (:mod:`multinic.podnet`) lists Nodes for their addresses
and ``spec.podCIDRs`` and then watches from the list's resourceVersion: the
first event after it (a Node added, changed or deleted) ends the wait, so a
node that leaves loses its routes on the others at once rather than at the
next resync. The standard-library client (:mod:`multinic.kube.rest`) serves
both: one GET, and one streamed GET per wait that is closed after its first
event or after ``timeout`` seconds, so a wait never outlives its caller's
interest.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from multinic.cni.errors import KubeRequestError
from multinic.kube.objects import NodeInfo
from multinic.kube.rest import RestClient, load_access

NODES_PATH = "/api/v1/nodes"
#: Seconds one list may take.
LIST_TIMEOUT = 10.0


def node_info(obj: dict[str, Any]) -> NodeInfo:
    """A Node object's name, addresses (InternalIP first) and pod CIDRs."""
    spec = obj.get("spec") or {}
    cidrs = tuple(spec.get("podCIDRs") or ())
    if not cidrs and spec.get("podCIDR"):
        cidrs = (spec["podCIDR"],)
    listed = (obj.get("status") or {}).get("addresses") or []
    ordered = sorted(listed, key=lambda a: a.get("type") != "InternalIP")
    name = (obj.get("metadata") or {}).get("name") or ""
    return NodeInfo(str(name), tuple(str(a["address"]) for a in ordered), cidrs)


class NodeWatch:
    """Lists Nodes and waits for the next change after the last list."""

    def __init__(self, client: RestClient) -> None:
        self.client = client
        #: The resourceVersion of the last list: where the next watch starts.
        self.version = ""

    @classmethod
    def connect(cls, kubeconfig: Path | None) -> NodeWatch:
        """For the cluster ``kubeconfig`` names (the pod's service account for None)."""
        return cls(RestClient(load_access(None if kubeconfig is None else str(kubeconfig))))

    def list_nodes(self) -> list[NodeInfo]:
        status, answer = self.client.request(
            "GET", NODES_PATH, deadline=time.monotonic() + LIST_TIMEOUT
        )
        if status != 200:
            raise KubeRequestError(
                "Kubernetes API server refused to list nodes",
                f"{self.client.access.server} answered {status}: {answer.get('message', '')}",
            )
        self.version = str((answer.get("metadata") or {}).get("resourceVersion") or "")
        return [node_info(item) for item in answer.get("items") or []]

    def wait_for_change(self, timeout: float) -> bool:
        """Up to ``timeout`` seconds for an event after the last list; whether one came.

        An expired version (410 Gone, as an ERROR event) counts as a change: the
        caller lists again and the watch restarts from there.
        """
        if not self.version:
            return False
        query = urlencode(
            {
                "watch": "1",
                "resourceVersion": self.version,
                "timeoutSeconds": str(max(1, math.ceil(timeout))),
                "allowWatchBookmarks": "false",
            }
        )
        return self.client.first_event(f"{NODES_PATH}?{query}", timeout=timeout) is not None

    def interrupt(self) -> None:
        """End a :meth:`wait_for_change` of another thread now."""
        self.client.interrupt()

    def close(self) -> None:
        self.client.close()
