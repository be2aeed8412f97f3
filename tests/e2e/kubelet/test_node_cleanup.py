"""A test node stopped with a pod still running leaves nothing on this machine.

As when a test fails half-way: no pod is deleted first, so the shim and the
containers still run, containerd's mounts and the pod's namespace are still
there when :meth:`KubeletNode.stop` starts.
"""

from __future__ import annotations

from pathlib import Path

from multinic.lab import netns as lab
from tests.support import host_sweep
from tests.support.kube import KubeCluster
from tests.support.kube_pods import pod_manifest, service_account, wait_ready
from tests.support.kubelet_node import KubeletNode


def test_a_node_stopped_with_a_running_pod_leaves_nothing(kube_cluster: KubeCluster) -> None:
    node = KubeletNode(kube_cluster)
    with kube_cluster.namespace("h14p") as ns:
        try:
            node.start()
            kube_cluster.apply(service_account(ns), pod_manifest("left", ns, node.name))
            wait_ready(kube_cluster, ns, "left")
            # kubelet's /var/log/containers/<pod>_<ns>_<container>-<id>.log, made after the start
            node.wait_for(lambda: log_links(node), "kubelet's log link")
            # One shim per sandbox: the socket named after the sandbox's id is there.
            shim_sockets = node.shim_sockets()
            assert any(path.exists() for path in shim_sockets)
            assert host_sweep.processes_in_cgroup(node.cgroup_root)
            assert host_sweep.mounts_under(node.base)
        finally:
            problems = node.stop()

        assert problems == []
        assert kube_cluster.kubectl("get", "node", node.name, check=False).returncode != 0
        assert host_sweep.processes_naming(str(node.base)) == []
        assert host_sweep.processes_in_cgroup(node.cgroup_root) == []
        assert host_sweep.mounts_under(node.base) == []
        assert host_sweep.cgroup_dirs(node.cgroup_root) == []
        assert not node.base.exists()
        assert not lab.netns_path(node.netns).exists()
        assert not any(path.exists() for path in shim_sockets)
        assert log_links(node) == []


def log_links(node: KubeletNode) -> list[Path]:
    """kubelet's legacy log links (a fixed path) that point into the node's directory."""
    logs = Path("/var/log/containers")
    links = logs.glob("*.log") if logs.is_dir() else []
    return [link for link in links if str(link.readlink()).startswith(str(node.base))]
