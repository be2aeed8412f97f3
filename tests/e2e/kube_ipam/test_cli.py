"""``multinic ipam --kubeconfig``: ls, usage, show, release, gc (--pods) on the Kubernetes store."""

from __future__ import annotations

import json
import time
from typing import Any

from click.testing import CliRunner, Result

from multinic.cli.main import cli
from tests.support.kube import KubeCluster
from tests.unit.ipam_cluster.test_plugin import run

POOL = "_/10.60.0.0-24"


def config(cluster: KubeCluster, scope: str) -> dict[str, Any]:
    return {
        "cniVersion": "1.1.0",
        "name": "cli-net",
        "type": "macvlan",
        "ipam": {
            "type": "multinic-ipam",
            "range": "10.60.0.0/24",
            "block_prefix_v4": 28,
            "node_name": "node-a",
            "store": {"type": "kubernetes", "kubeconfig": str(cluster.kubeconfig), "scope": scope},
        },
    }


def ipam(cluster: KubeCluster, scope: str, *args: str) -> Result:
    return CliRunner().invoke(
        cli, ["ipam", "--kubeconfig", str(cluster.kubeconfig), "--scope", scope, *args]
    )


def pod(namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"nodeName": "node-a", "containers": [{"name": "c", "image": "busybox"}]},
    }


def create_pod(cluster: KubeCluster, namespace: str, name: str) -> str:
    """Create a pod (it stays Pending: no node runs it) and return its UID.

    The namespace's default service account, which admission requires, is made
    by the controller-manager shortly after the namespace: wait for it.
    """
    end = time.monotonic() + 60
    while cluster.kubectl(
        "get", "serviceaccount", "default", "-n", namespace, check=False
    ).returncode:
        assert time.monotonic() < end, "no default service account"
        time.sleep(0.2)
    cluster.apply(pod(namespace, name))
    return str(cluster.get_object("pod", name, namespace)["metadata"]["uid"])


def test_inspect_release_and_gc_on_the_kubernetes_store(
    kube_cluster: KubeCluster, scope: str
) -> None:
    conf = config(kube_cluster, scope)
    with kube_cluster.namespace("ipam-cli") as ns:
        uid = create_pod(kube_cluster, ns, "alive")
        pods = {"c0": ("alive", uid), "c1": ("gone", "x"), "c2": ("alive", "other-uid")}
        for cid, (name, pod_uid) in [*pods.items(), ("c3", ("alive", uid))]:
            args = f"K8S_POD_NAMESPACE={ns};K8S_POD_NAME={name};K8S_POD_UID={pod_uid}"
            status, out = run("ADD", conf, cid=cid, args=args)
            assert status == 0, out

        done = ipam(kube_cluster, scope, "ls", "--json")
        assert done.exit_code == 0, done.output
        (summary,) = json.loads(done.output)
        assert summary["pool"] == POOL and summary["used"] == 4 and summary["nodes"] == ["node-a"]
        assert "4/254" in ipam(kube_cluster, scope, "usage").output
        shown = json.loads(ipam(kube_cluster, scope, "show", POOL, "--json").output)
        assert [a["containerID"] for a in shown["addresses"]] == ["c0", "c1", "c2", "c3"]

        released = ipam(kube_cluster, scope, "release", "cli-net", "c3", "net1")
        assert released.exit_code == 0 and "released 10.60.0.4" in released.output

        # The pod named "gone" does not exist; c2's pod was replaced (another uid).
        time.sleep(0.1)
        dry = ipam(kube_cluster, scope, "gc", "--pods", "--grace", "0.05", "--dry-run", "--json")
        assert dry.exit_code == 0, dry.output
        assert sorted(json.loads(dry.output)["released"]) == [
            "cli-net c1/net1",
            "cli-net c2/net1",
        ]
        young = ipam(kube_cluster, scope, "gc", "--pods", "--json")  # default grace: 300 s
        assert json.loads(young.output)["released"] == []
        collected = ipam(kube_cluster, scope, "gc", "--pods", "--grace", "0.05", "--json")
        assert collected.exit_code == 0, collected.output
        left = json.loads(ipam(kube_cluster, scope, "show", POOL, "--json").output)
        assert [a["containerID"] for a in left["addresses"]] == ["c0"]

    both = CliRunner().invoke(cli, ["ipam", "--kubeconfig", "/x", "--etcd", "h:1", "ls"])
    assert both.exit_code == 2 and "mutually exclusive" in both.output
    missing = CliRunner().invoke(cli, ["ipam", "--kubeconfig", "/nonexistent", "ls"])
    assert missing.exit_code == 1 and "kubeconfig" in missing.output
    assert "Traceback" not in missing.output


def test_the_node_reconciler_releases_what_gone_pods_hold(
    kube_cluster: KubeCluster, scope: str
) -> None:
    from multinic.node.ipam_reconciler import IpamReconciler, ReconcileSettings

    conf = config(kube_cluster, scope)
    with kube_cluster.namespace("ipam-rec") as ns:
        uid = create_pod(kube_cluster, ns, "alive")
        for cid, name in (("r0", "alive"), ("r1", "gone")):
            args = f"K8S_POD_NAMESPACE={ns};K8S_POD_NAME={name};K8S_POD_UID={uid}"
            assert run("ADD", conf, cid=cid, args=args)[0] == 0
        settings = ReconcileSettings(str(kube_cluster.kubeconfig), scope, interval=0.2, grace=60)
        reconciler = IpamReconciler(settings)
        assert reconciler.run_once() == []  # younger than the grace period
        reconciler = IpamReconciler(settings._replace(grace=0.01))
        reconciler.start()
        try:
            end = time.monotonic() + 30
            while reconciler.released < 1 and time.monotonic() < end:
                time.sleep(0.1)
        finally:
            reconciler.stop()
        assert reconciler.released == 1 and reconciler.last_error == ""
        left = json.loads(ipam(kube_cluster, scope, "show", POOL, "--json").output)
        assert [a["containerID"] for a in left["addresses"]] == ["r0"]
