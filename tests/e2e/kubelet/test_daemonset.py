"""The node daemon as users deploy it: deploy/'s DaemonSet, run by a real kubelet (issue 14).

The test node (tests/support/kubelet_node.py, without its host-process daemon)
gets multinic the way ``kubectl apply -f deploy/`` gives it to a cluster's
nodes: 00-namespace, 10-rbac, 20-node-config and 30-node-daemonset are applied
with kubectl; the image is the one scripts/build-image makes from this
checkout, imported into the node's containerd (no registry). Kubelet runs the
init container (the shim into the node's CNI bin dir) and ``multinic node`` in
the node's network namespace (hostNetwork), which reads pods and NADs and keeps
podnet's store as deploy/10-rbac.yaml's service account, with the token
kubelet projects: the in-cluster path, so the RBAC is checked for real.

What the test changes in the manifests, and why (deploy/'s defaults stay):

- every hostPath is one of the node's temp dirs, mounted in the container at
  that same path, and the ConfigMap's paths follow: the shim on the node
  connects to the socket path the daemon writes into the conflist, and the
  daemon opens the namespace path containerd hands the shim, so a path must
  mean the same inside and outside (as /run/multinic and /var/run/netns do on a
  real node);
- the ConfigMap's SET values: podBlock, serviceBlock (the fixture's), uplink
  (the node's); ``cluster`` (podnet's store document) is this test's own, so
  nothing else in the run shares it; cniVersion 1.0.0 (containerd 1.6);
- the image reference: the tag built here;
- KUBERNETES_SERVICE_HOST/PORT in the container's env: kubelet sets them to the
  ``kubernetes`` Service's ClusterIP and 443, which nothing routes here (no
  kube-proxy); 127.0.0.1 and the apiserver's port reach it through the node's
  loopback relay (the apiserver's certificate names 127.0.0.1);
- a nodeSelector for this node: other Node objects of the run have no kubelet.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import deploy
from tests.support.kube import ROOT, SERVICE_CIDR, KubeCluster
from tests.support.kube_pods import (
    is_address,
    macvlan_nad,
    network_status,
    pod_manifest,
    wait_ready,
)
from tests.support.kube_pods import service_account as default_account
from tests.support.kubelet_node import RUNTIME_CNI_VERSION, KubeletNode

pytestmark = [pytest.mark.e2e, pytest.mark.kube]

PREFIX = "h14ds"
SUBNET = "198.18.192.0/24"
#: podnet's /16 for this node's pods (RFC 6598 space, nothing else here uses it).
POD_BLOCK = "100.80.0.0/16"
#: deploy/crds' kinds: podnet's store document and whatever else it writes.
STORE_KINDS = (
    "ipampools", "ipamnodeblocks", "ipamreservations", "ipamaddressclaims", "ipamtransactions",
    "ipamdocuments",
)  # fmt: skip
SELECTOR = "app.kubernetes.io/name=multinic-node"


def build_image(tag: str, archive: Path) -> None:
    """scripts/build-image into a podman storage of its own (removed after), as an archive."""
    with tempfile.TemporaryDirectory(prefix=f"{PREFIX}-podman-") as base:
        (Path(base) / "tmp").mkdir()
        (Path(base) / "storage.conf").write_text(
            f'[storage]\ndriver = "vfs"\ngraphroot = "{base}/root"\nrunroot = "{base}/run"\n'
        )
        (Path(base) / "containers.conf").write_text(
            f'[engine]\nevents_logger = "none"\nlock_type = "file"\ntmp_dir = "{base}/tmp"\n'
        )
        env = {
            "PATH": os.environ["PATH"],
            "HOME": base,
            "TMPDIR": f"{base}/tmp",
            "CONTAINERS_CONF": f"{base}/containers.conf",
            "CONTAINERS_STORAGE_CONF": f"{base}/storage.conf",
            # pip's wheel cache of the machine, not the empty HOME's.
            "PIP_CACHE_DIR": str(Path(os.environ.get("HOME", "/root")) / ".cache" / "pip"),
        }
        done = subprocess.run(
            [str(ROOT / "scripts" / "build-image"), "--tag", tag, "--output", str(archive)],
            env=env, capture_output=True, text=True, timeout=900, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr


class NodePaths:
    """deploy/'s host paths, each mapped to a dir of the test node (the same inside)."""

    def __init__(self, node: KubeletNode) -> None:
        host = node.base / "host"
        self.mapping = {
            "/opt/cni/bin": node.dirs["cni-bin"],
            "/etc/cni/net.d": node.dirs["cni-conf"],
            "/var/run/netns": node.netns_dir,
            "/run/multinic": host / "run" / "multinic",
            "/var/lib/multinic": host / "var" / "lib" / "multinic",
            "/var/lib/cni": host / "var" / "lib" / "cni",
        }

    def __call__(self, path: str) -> str:
        """``path`` on the test node: under the mapped dir of its longest mapped prefix."""
        for prefix in sorted(self.mapping, key=len, reverse=True):
            if path == prefix or path.startswith(f"{prefix}/"):
                return str(self.mapping[prefix]) + path[len(prefix) :]
        raise AssertionError(f"{path} is under none of the DaemonSet's host paths")


def node_config(node: KubeletNode, paths: NodePaths, cluster_doc: str) -> dict[str, Any]:
    """deploy/20-node-config.yaml's ConfigMap for this node."""
    configmap = deploy.the_one(deploy.CONFIG_FILE, "ConfigMap")
    config = yaml.safe_load(configmap["data"]["node.yaml"])
    for key in ("confDir", "cniConfigDir", "binDir", "socketPath", "stateDir"):
        config[key] = paths(config[key])
    config["cniVersion"] = RUNTIME_CNI_VERSION
    podnet = config["podnet"]
    podnet["dataDir"] = paths(podnet["dataDir"])
    podnet |= {"podBlock": POD_BLOCK, "serviceBlock": SERVICE_CIDR, "uplink": node.uplink}
    podnet["cluster"] = cluster_doc
    configmap["data"]["node.yaml"] = yaml.safe_dump(config)
    return configmap


def node_daemonset(node: KubeletNode, paths: NodePaths, image: str) -> dict[str, Any]:
    """deploy/30-node-daemonset.yaml's DaemonSet for this node."""
    ds = deploy.daemonset()
    spec = ds["spec"]["template"]["spec"]
    spec["nodeSelector"] = {"kubernetes.io/hostname": node.name}
    mount_paths = {}
    for volume in spec["volumes"]:
        if "hostPath" in volume:
            mount_paths[volume["name"]] = volume["hostPath"]["path"] = paths(
                volume["hostPath"]["path"]
            )
    for container in spec["initContainers"] + spec["containers"]:
        container["image"] = image
        container["command"] = [
            paths(a) if a == "/opt/cni/bin" else a for a in container["command"]
        ]
        for mount in container["volumeMounts"]:
            mount["mountPath"] = mount_paths.get(mount["name"], mount["mountPath"])
    daemon = next(c for c in spec["containers"] if c["name"] == "node")
    daemon["env"] += [
        {"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"},
        {"name": "KUBERNETES_SERVICE_PORT", "value": str(node.cluster.port)},
    ]
    return ds


def store_objects(cluster: KubeCluster) -> set[str]:
    """Every ipam.multinic.io object (podnet's store) in the cluster, as kind/ns/name."""
    found = set()
    for kind in STORE_KINDS:
        listed = cluster.kubectl("get", f"{kind}.ipam.multinic.io", "-A", "-o", "json").stdout
        for item in json.loads(listed)["items"]:
            meta = item["metadata"]
            found.add(f"{kind}/{meta.get('namespace', '')}/{meta['name']}")
    return found


@pytest.fixture(scope="module")
def node(kube_cluster: KubeCluster) -> Iterator[KubeletNode]:
    with KubeletNode(kube_cluster, host_daemon=False) as made:
        yield made


@pytest.fixture
def deployed(kube_cluster: KubeCluster, node: KubeletNode) -> Iterator[NodePaths]:
    """deploy/ applied with kubectl for this node; the DaemonSet's pod Ready, the node Ready.

    Afterwards the DaemonSet is deleted and its pod gone, and so are the objects
    podnet made in the store and the ones deploy/ made that were not there before.
    """
    paths = NodePaths(node)
    tag = f"localhost/{PREFIX}-node:{secrets.token_hex(4)}"
    archive = node.dirs["images"] / "multinic-node.tar"
    build_image(tag, archive)
    node.ctr("images", "import", "--snapshotter=native", str(archive))
    store_before = store_objects(kube_cluster)
    selector = f"--selector={SELECTOR}"
    with deploy.node_identity(kube_cluster) as (namespace, _):
        config = node_config(node, paths, f"{PREFIX}-{secrets.token_hex(3)}")
        try:
            kube_cluster.apply(config, node_daemonset(node, paths, tag))
            rollout = kube_cluster.kubectl(
                "rollout", "status", "daemonset/multinic-node", "-n", namespace,
                "--timeout=180s", check=False, timeout=210,
            )  # fmt: skip
            if rollout.returncode != 0:
                described = kube_cluster.kubectl(
                    "describe", "pods", selector, "-n", namespace, check=False
                ).stdout
                raise AssertionError(f"{rollout.stderr}\n{described[-4000:]}\n{node.logs()}")
            node.wait_for(node.ready, "the Node Ready (our conflist written)")
            yield paths
        finally:
            with contextlib.suppress(subprocess.SubprocessError, RuntimeError):
                kube_cluster.kubectl(
                    "delete", "daemonset", "multinic-node", "-n", namespace, "--wait=true",
                    "--timeout=120s", check=False, timeout=150,
                )  # fmt: skip
                kube_cluster.kubectl(
                    "wait", "--for=delete", "pod", selector, "-n", namespace, "--timeout=120s",
                    check=False, timeout=150,
                )  # fmt: skip
                name = config["metadata"]["name"]
                kube_cluster.kubectl("delete", "configmap", name, "-n", namespace, check=False)
            for made in sorted(store_objects(kube_cluster) - store_before):
                kind, ns, name = made.split("/")
                scope = ["-n", ns] if ns else []
                kube_cluster.kubectl("delete", f"{kind}.ipam.multinic.io", name, *scope,
                                     check=False)  # fmt: skip
            left = store_objects(kube_cluster) - store_before
            assert not left, f"podnet's store objects left: {left}"


def daemon_process(node: KubeletNode) -> int:
    """The pid of the DaemonSet's ``node`` container's process, from containerd."""
    for cid in node.ctr("containers", "list", "--quiet").split():
        labels = json.loads(node.ctr("containers", "info", cid, missing_ok=True) or "{}")
        labels = labels.get("Labels", {})
        if (
            labels.get("io.kubernetes.pod.namespace") == "multinic-system"
            and labels.get("io.kubernetes.container.name") == "node"
        ):
            for line in node.ctr("tasks", "list").splitlines():
                task, pid, status = line.split()
                if task == cid and status == "RUNNING":
                    return int(pid)
    raise AssertionError(f"no running node container of the DaemonSet\n{node.ctr('tasks', 'list')}")


def reservations(root: Path) -> list[str]:
    return sorted(str(p) for p in root.glob("**/*") if p.is_file() and is_address(p.name))


def test_a_pod_gets_its_networks_from_the_daemonsets_daemon_and_leaves_nothing(
    kube_cluster: KubeCluster, node: KubeletNode, deployed: NodePaths
) -> None:
    paths = deployed
    daemon = json.loads(
        kube_cluster.kubectl(
            "get", "pods", "-n", "multinic-system", f"--selector={SELECTOR}", "-o", "json"
        ).stdout
    )["items"]
    assert [(p["spec"]["nodeName"], p["status"]["phase"]) for p in daemon] == [
        (node.name, "Running")
    ]
    # The in-cluster path: no kubeconfig in the ConfigMap, the projected token, the env.
    assert "kubeconfig" not in yaml.safe_load(
        kube_cluster.get_object("configmap", "multinic-node-config", "multinic-system")["data"][
            "node.yaml"
        ]
    )
    pid = daemon_process(node)
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert b"KUBERNETES_SERVICE_HOST=127.0.0.1" in environ
    account = Path(f"/proc/{pid}/root/var/run/secrets/kubernetes.io/serviceaccount")
    assert (account / "namespace").read_text() == "multinic-system"
    # The shim the init container copied from the image: static, unlike a host build.
    linked = subprocess.run(
        ["ldd", paths("/opt/cni/bin/multinic-shim")], capture_output=True, text=True, check=False
    )
    assert "not a dynamic executable" in linked.stdout + linked.stderr
    state = Path(paths("/var/lib/multinic"))
    records = Path(paths("/var/lib/multinic/meta")) / "records"
    with kube_cluster.namespace(PREFIX) as ns:
        data_dir = str(state / "ipam")  # in the daemon's mounts: it runs host-local there
        kube_cluster.apply(
            default_account(ns), macvlan_nad("data-0", ns, node.nics[0], SUBNET, data_dir)
        )
        links_before = node.links()
        kube_cluster.apply(pod_manifest("cnf", ns, node.name, "data-0"))
        try:
            wait_ready(kube_cluster, ns, "cnf")
            status = network_status(kube_cluster, ns, "cnf")
            assert [(s["name"], s["interface"]) for s in status] == [
                ("cluster", "eth0"),
                (f"{ns}/data-0", "net1"),
            ]
            assert ipaddress.ip_address(status[0]["ips"][0]) in ipaddress.ip_network(POD_BLOCK)
            assert ipaddress.ip_address(status[1]["ips"][0]) in ipaddress.ip_network(SUBNET)
            inside = node.exec_in(ns, "cnf", "ip", "-o", "-4", "addr").replace("\t", "    ")
            for entry in status:
                assert f"{entry['interface']}    inet {entry['ips'][0]}/" in inside
            assert len(list(records.glob("*.json"))) == 1
            assert len(reservations(state)) == 2  # the primary's and data-0's
        finally:
            kube_cluster.kubectl(
                "delete", "pod", "cnf", "-n", ns, "--timeout=120s", check=False, timeout=150
            )
        node.wait_for(lambda: not node.sandboxes(ns), "the pod's sandbox removed")
        assert node.links() == links_before
        assert list(records.glob("*.json")) == []
        assert reservations(state) == []
