"""The meta plugin put together: selection by plan, attachment, records, status reporting.

:class:`PlannedSelector` is the :class:`~multinic.meta.plugin.Selector` of a
real node: a pod's delegates come from :func:`~multinic.meta.plan.plan_pod`
(its annotations and NetworkAttachmentDefinitions through a KubeSource),
its network-status goes back through the same source, and STATUS asks the
cluster network's delegates. :func:`build_meta_plugin` wires a MetaPlugin from
the meta config, for the node daemon and the thin executable alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from multinic.cni.invoke import PluginExecutor
from multinic.cni.runtime import Runtime
from multinic.cni.skel import Request
from multinic.kube.objects import KubeSource
from multinic.meta.attach import Attacher
from multinic.meta.config import MetaConfig
from multinic.meta.delegates import reference_delegate
from multinic.meta.plan import plan_pod, pod_request
from multinic.meta.plugin import MetaPlugin
from multinic.meta.records import PodAttachment, PodRef, RecordStore

#: Where the delegates' own result cache goes (the runtime above us keeps its own).
CACHE_SUBDIR = "cache"


class PlannedSelector:
    """A pod's delegates by plan; its status written back through ``source``."""

    def __init__(self, config: MetaConfig, source: KubeSource, runtime: Runtime) -> None:
        self.config = config
        self.source = source
        self.runtime = runtime

    def delegates(self, request: Request, pod: PodRef) -> Sequence[PodAttachment]:
        del pod  # the plan reads the same CNI_ARGS, and checks the uid against the pod
        plan = plan_pod(self.config, self.source, pod_request(request.args, request.ifname))
        return [
            PodAttachment(
                name=a.network,
                ifname=a.interface,
                config=a.config,
                cni_args=a.cni_args,
                capability_args=a.capability_args,
                default=a.default_route,
                gateways=a.gateways,
            )
            for a in plan.attachments
        ]

    def report(self, pod: PodRef, network_status: list[dict[str, Any]]) -> None:
        self.source.set_network_status(pod.namespace, pod.name, network_status, uid=pod.uid)

    def status(self) -> None:
        """STATUS of the cluster network's delegates: can a pod be attached now?"""
        primary = reference_delegate(
            self.source,
            self.config.cluster_network,
            self.config.multus_namespace,
            self.config.conf_dir,
        )
        self.runtime.status(primary.netlist)


def open_source(config: MetaConfig) -> KubeSource:
    """The objects directory when configured (single hosts, the lab), else the API server."""
    if config.objects_dir is not None:
        from multinic.kube.directory import DirectorySource

        return DirectorySource(config.objects_dir)
    # Here, not at the top: the client library costs a quarter second to import,
    # which only a process that talks to the API server should pay.
    from multinic.kube.api import ApiSource

    return ApiSource.connect(config.kubeconfig)


def build_meta_plugin(
    config: MetaConfig,
    source: KubeSource,
    state_dir: Path,
    plugin_path: Sequence[Path],
    executor: PluginExecutor,
) -> MetaPlugin:
    """A MetaPlugin whose records and delegate cache live under ``state_dir``."""
    runtime = Runtime(plugin_path, cache_dir=state_dir / CACHE_SUBDIR, executor=executor)
    attacher = Attacher(runtime, RecordStore(state_dir))
    return MetaPlugin(PlannedSelector(config, source, runtime), attacher)
