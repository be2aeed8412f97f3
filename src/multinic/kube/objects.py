"""What every source gives: a pod's identity and annotations, a NAD's config, the interface.

The annotation names and the NetworkAttachmentDefinition kind follow the
Network Plumbing WG's de-facto standard, so objects written for Multus work
unchanged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Protocol

#: The pod's selection of secondary networks (comma form or JSON list).
NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"
#: Written by the meta plugin after ADD: one entry per attachment.
NETWORK_STATUS_ANNOTATION = "k8s.v1.cni.cncf.io/network-status"
#: Multus' per-pod override of the cluster (primary) network.
DEFAULT_NETWORK_ANNOTATION = "v1.multus-cni.io/default-network"

NAD_GROUP = "k8s.cni.cncf.io"
NAD_VERSION = "v1"
NAD_API_VERSION = f"{NAD_GROUP}/{NAD_VERSION}"
NAD_KIND = "NetworkAttachmentDefinition"
NAD_PLURAL = "network-attachment-definitions"

#: RFC 1123 label (a namespace's name): lower-case alphanumerics and '-', 63 at most.
DNS_LABEL_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS_LABEL_MAX = 63
#: RFC 1123 subdomain (a pod's or a NAD's name): labels joined by '.', 253 at most.
DNS_SUBDOMAIN_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
DNS_SUBDOMAIN_MAX = 253


class Pod(NamedTuple):
    """The parts of a Pod object the meta plugin reads."""

    namespace: str
    name: str
    uid: str
    node_name: str
    annotations: Mapping[str, str]


class NodeInfo(NamedTuple):
    """The parts of a Node object the primary network reads."""

    name: str
    #: InternalIP addresses first, then the others, as the Node's status lists them.
    addresses: tuple[str, ...]
    #: ``spec.podCIDRs`` (kube-controller-manager's node IPAM): IPv4 first when dual-stack.
    pod_cidrs: tuple[str, ...]


class KubeSource(Protocol):
    """Where pods and NetworkAttachmentDefinitions come from, and the status goes to."""

    def get_pod(self, namespace: str, name: str) -> Pod:
        """The pod; :class:`~multinic.cni.errors.PodNotFoundError` when there is none."""
        ...

    def get_network_config(self, namespace: str, name: str) -> str | None:
        """A NAD's ``spec.config`` ("" when it has none), or None when there is no such NAD."""
        ...

    def set_network_status(
        self, namespace: str, name: str, status: Sequence[Mapping[str, Any]], uid: str = ""
    ) -> None:
        """Write the pod's network-status annotation (a merge: other annotations stay).

        With ``uid``, a pod of that name with another uid (deleted and created
        again) is not written, and the call fails with PodNotFoundError.
        """
        ...


def namespace_problem(name: str) -> str:
    """Why ``name`` cannot be a namespace's name, or "" when it can."""
    if len(name) > DNS_LABEL_MAX:
        return f"longer than {DNS_LABEL_MAX} characters"
    if not DNS_LABEL_RE.fullmatch(name):
        return "not lower-case letters, digits and '-', starting and ending alphanumeric"
    return ""


def object_name_problem(name: str) -> str:
    """Why ``name`` cannot be a pod's or a NAD's name, or "" when it can."""
    if len(name) > DNS_SUBDOMAIN_MAX:
        return f"longer than {DNS_SUBDOMAIN_MAX} characters"
    if not DNS_SUBDOMAIN_RE.fullmatch(name):
        return "not lower-case letters, digits, '-' and '.', starting and ending alphanumeric"
    return ""


def encode_network_status(status: Sequence[Mapping[str, Any]]) -> str:
    """The annotation's text: indented as Multus writes it, so people can read it."""
    return json.dumps(list(status), indent=4)
