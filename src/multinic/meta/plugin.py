"""The meta plugin as a CNI plugin object: what the node daemon and ``multinic-meta`` run.

ADD asks a :class:`Selector` which delegates the pod gets (its annotations and
NetworkAttachmentDefinitions, or a standalone directory), attaches them all
(:mod:`multinic.meta.attach`), reports the pod's network-status through the
selector, and returns the primary's result. DEL, CHECK and GC work from the
node's records alone, so they never wait for, or fail on, the API server.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, Protocol

from multinic.cni.config import Attachment
from multinic.cni.errors import CNIError
from multinic.cni.skel import Request
from multinic.cni.types import Result
from multinic.cni.version import SUPPORTED_VERSIONS
from multinic.meta.attach import Attacher
from multinic.meta.records import PodAttachment, PodRef


class Selector(Protocol):
    """Decides a pod's delegates and publishes what they became."""

    def delegates(self, request: Request, pod: PodRef) -> Sequence[PodAttachment]:
        """The pod's attachments, the primary first."""

    def report(self, pod: PodRef, network_status: list[dict[str, Any]]) -> None:
        """Publish the pod's network-status (its annotation, in a cluster)."""

    def status(self) -> None:
        """Raise a CNI error when pods cannot be attached now (STATUS)."""


class MetaPlugin:
    """``skel.Plugin`` over a selector and an attacher."""

    name = "multinic-meta"
    supported_versions = SUPPORTED_VERSIONS

    def __init__(self, selector: Selector, attacher: Attacher) -> None:
        self.selector = selector
        self.attacher = attacher

    def add(self, request: Request) -> Result:
        pod = pod_of(request)
        delegates = self.selector.delegates(request, pod)
        attached = self.attacher.add(pod, request.container_id, request.netns, delegates)
        try:
            self.selector.report(pod, attached.network_status)
        except CNIError as err:
            # The pod is attached and works; failing its ADD over the status
            # annotation would tear it down and retry for nothing (as Multus,
            # which logs it). Whoever reads the annotation sees it missing.
            print(
                f"multinic-meta: network-status of {pod.namespace}/{pod.name}: {err}",
                file=sys.stderr,
            )
        return attached.result

    def delete(self, request: Request) -> None:
        self.attacher.delete(request.container_id)

    def check(self, request: Request) -> None:
        self.attacher.check(request.container_id)

    def status(self, request: Request) -> None:
        del request
        self.selector.status()

    def gc(self, request: Request) -> None:
        """Detach every recorded container the runtime no longer lists as valid."""
        valid = request.config.valid_attachments
        if valid is None:
            return  # no list: the runtime did not say what is valid, so nothing is stale
        self.attacher.collect_garbage(keep=_container_ids(valid))


def pod_of(request: Request) -> PodRef:
    """The Kubernetes pod the runtime named in CNI_ARGS (empty outside Kubernetes)."""
    args = dict(request.args)
    return PodRef(
        args.get("K8S_POD_NAMESPACE", ""), args.get("K8S_POD_NAME", ""), args.get("K8S_POD_UID", "")
    )


def _container_ids(valid: Sequence[Attachment]) -> frozenset[str]:
    return frozenset(a.container_id for a in valid)
