"""A test node stopped with a pod still running leaves nothing on this machine.

As when a test fails half-way: no pod is deleted first, so the shim and the
containers still run, containerd's mounts and the pod's namespace are still
there when :meth:`KubeletNode.stop` starts.
"""

from __future__ import annotations

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
            node.wait_for(lambda: node.leftovers.log_links(node.base), "kubelet's log link")
            ids = node.container_ids()
            # The shim's socket and libcni's cache entries (the sandbox never torn down).
            assert len(node.leftovers.left(node.containerd_socket, ids, node.base)) >= 3
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
        assert node.leftovers.left(node.containerd_socket, ids, node.base) == []
