"""scripts/build-image: the node image the DaemonSet runs is built here, without a registry,
and does what deploy/30-node-daemonset.yaml asks of it.

The image is built into the harness's own podman storage (its CONTAINERS_* environment),
so nothing lands in the machine's; its dependencies come from PyPI as wheels. Then, as
the DaemonSet would: the init container's command puts a static multinic-shim into a
directory (the host's /opt/cni/bin), and the daemon runs in the image on a config like
the ConfigMap's, and that shim, run on this host with a bare environment, reaches it
through the socket's directory mounted at the same path. Last, the daemon runs in the
image on the ConfigMap's own node.yaml with the DaemonSet's mounts, reaching the test
API server as the pod's service account (in-cluster: KUBERNETES_SERVICE_HOST and a
token of deploy/10-rbac.yaml's account), and a pod's ADD and DEL go through it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from multinic import __version__
from multinic.lab.netns import NETNS_DIR, create_netns, delete_netns
from tests.e2e.kube.test_api_source import pod
from tests.e2e.podman.harness import PodmanHost
from tests.support.deploy import daemonset, node_identity, node_yaml, service_account
from tests.support.etcd_cluster import free_port
from tests.support.kube import ROOT, KubeCluster
from tests.support.shim import run_shim

STATUS_ANNOTATION = "k8s.v1.cni.cncf.io/network-status"
#: A primary network that touches only the pod's namespace (the daemon runs in this
#: machine's network namespace in the in-cluster test).
LOOPBACK_CLUSTER_NETWORK = {
    "cniVersion": "1.1.0",
    "name": "cluster",
    "plugins": [{"type": "multinic-loopback"}],
}

BUILD_IMAGE = ROOT / "scripts" / "build-image"
#: The primary network the daemon's STATUS asks (clusterNetwork: cluster).
CLUSTER_NETWORK = {
    "cniVersion": "1.1.0",
    "name": "cluster",
    "plugins": [
        {
            "type": "multinic-bridge",
            "bridge": "h14dpl0",
            "ipam": {"type": "multinic-host-local", "ranges": [[{"subnet": "10.99.0.0/24"}]]},
        }
    ],
}


def build(podman: PodmanHost, tag: str, output: Path) -> None:
    env = {
        **podman.env,
        # pip's wheel cache of the machine, not the harness's empty HOME.
        "PIP_CACHE_DIR": str(Path(os.environ.get("HOME", "/root")) / ".cache" / "pip"),
    }
    done = subprocess.run(
        [str(BUILD_IMAGE), "--tag", tag, "--output", str(output)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == tag


def run(podman: PodmanHost, image: str, *args: str, volumes: tuple[str, ...] = ()) -> str:
    mounts = [flag for volume in volumes for flag in ("-v", volume)]
    return podman.podman("run", "--rm", *podman.container_flags("none"), *mounts, image, *args)


def shim(path: Path, command: str, socket: Path) -> subprocess.CompletedProcess[str]:
    """The shim as a runtime runs it: a bare environment, the config on stdin."""
    config = {"cniVersion": "1.1.0", "name": "multinic", "type": "multinic-shim"}
    config |= {"socketPath": str(socket), "connectTimeout": 1}
    return subprocess.run(
        [str(path)],
        input=json.dumps(config),
        env={"CNI_COMMAND": command, "CNI_PATH": "/nonexistent"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def node_image(podman: PodmanHost, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """scripts/build-image's image in the harness's storage; its docker-archive is checked."""
    tag = f"localhost/h14deploy-node:{secrets.token_hex(4)}"
    archive = tmp_path_factory.mktemp("image") / "node.tar"
    build(podman, tag, archive)
    try:
        with tarfile.open(archive) as tar:  # a docker-archive: what `ctr images import` reads
            manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        assert manifest[0]["RepoTags"] == [tag]
        archive.unlink()
        yield tag
    finally:
        podman.podman("rmi", "-f", tag, check=False)


def test_the_built_image_installs_a_static_shim_that_reaches_its_daemon(
    podman: PodmanHost, node_image: str, tmp_path: Path
) -> None:
    tag = node_image
    assert run(podman, tag, "--version").strip() == f"multinic, version {__version__}"

    # The init container's command (deploy/30-node-daemonset.yaml), into the "host" dir.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    run(podman, tag, "install-plugins", "--only", "multinic-shim", str(bin_dir),
        volumes=(f"{bin_dir}:{bin_dir}",))  # fmt: skip
    assert [p.name for p in bin_dir.iterdir()] == ["multinic-shim"]
    assert b"ELF" in (bin_dir / "multinic-shim").read_bytes()[:4]
    # Static: the host's C library may be another version than the image's.
    linked = subprocess.run(
        ["ldd", str(bin_dir / "multinic-shim")], capture_output=True, text=True, check=False
    )
    assert "not a dynamic executable" in linked.stdout + linked.stderr

    # No daemon yet: the shim answers code 11, as kubelet expects.
    socket = tmp_path / "run" / "cni.sock"
    waiting = shim(bin_dir / "multinic-shim", "STATUS", socket)
    assert waiting.returncode == 1 and json.loads(waiting.stdout)["code"] == 11

    # The daemon in the image, the socket's directory mounted at the same path.
    (tmp_path / "objects").mkdir()
    (tmp_path / "net.d").mkdir()
    (tmp_path / "net.d" / "10-cluster.conflist").write_text(json.dumps(CLUSTER_NETWORK))
    (tmp_path / "node.yaml").write_text(
        f"clusterNetwork: cluster\nobjectsDir: {tmp_path}/objects\n"
        f"confDir: {tmp_path}/net.d\nsocketPath: {socket}\nstateDir: {tmp_path}/state\n"
    )
    name = f"h14deploy-daemon-{secrets.token_hex(4)}"
    podman.podman(
        "run", "-d", "--name", name, *podman.container_flags("none"),
        "-v", f"{tmp_path}:{tmp_path}", tag, "node", "--config", str(tmp_path / "node.yaml"),
    )  # fmt: skip
    try:
        conflist = tmp_path / "net.d" / "00-multinic.conflist"
        deadline = time.monotonic() + 60
        while not conflist.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert conflist.exists(), podman.podman("logs", name, check=False)
        # STATUS reads the config (VERSION would not: the shim's default socket).
        answer = shim(bin_dir / "multinic-shim", "STATUS", socket)
        assert (answer.returncode, answer.stdout) == (0, ""), answer.stderr
    finally:
        podman.podman("rm", "-f", "-t", "10", name, check=False)


def podman_here(podman: PodmanHost, *args: str) -> str:
    """podman in the harness's storage, but in this (the machine's) network namespace:
    the daemon reaches the test API server on this loopback, as a DaemonSet pod with
    hostNetwork reaches the API server from the node's."""
    done = subprocess.run(
        ["podman", *args], env=podman.env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def daemonset_mounts(host: Path, config_dir: Path) -> list[str]:
    """The node container's volumes as deploy/30-node-daemonset.yaml has them, each host
    path under ``host`` except the pod namespaces' (the machine's /run/netns, read-only
    in effect: the test makes its one namespace there)."""
    spec = daemonset()["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    flags = []
    node = next(c for c in spec["containers"] if c["name"] == "node")
    for mount in node["volumeMounts"]:
        volume = volumes[mount["name"]]
        if "configMap" in volume:
            source = config_dir
        elif volume["hostPath"]["path"] == "/var/run/netns":
            source = Path("/run/netns")
        else:
            source = host / volume["hostPath"]["path"].lstrip("/")
            source.mkdir(parents=True, exist_ok=True)
        options = ["ro"] if mount.get("readOnly") else []
        if mount.get("mountPropagation") == "HostToContainer":
            options.append("rslave")
        suffix = f":{','.join(options)}" if options else ""
        flags += ["-v", f"{source}:{mount['mountPath']}{suffix}"]
    return flags


def service_account_dir(cluster: KubeCluster, directory: Path) -> Path:
    """What kubelet mounts at /var/run/secrets/kubernetes.io/serviceaccount."""
    namespace, name = service_account()
    directory.mkdir()
    token = cluster.kubectl("create", "token", name, "-n", namespace, "--duration=1h").stdout
    (directory / "token").write_text(token.strip())
    shutil.copy(cluster.ca.cert, directory / "ca.crt")
    (directory / "namespace").write_text(namespace)
    return directory


def the_configmaps_config(health_port: int) -> str:
    """node.yaml as shipped, without podnet (it would build the primary network in this
    machine's namespace) and with a health port no other run uses."""
    config = yaml.safe_load(node_yaml())
    del config["podnet"]
    config["healthAddress"] = f"127.0.0.1:{health_port}"
    return yaml.safe_dump(config)


def test_the_daemon_in_the_image_serves_a_pod_as_the_daemonsets_service_account(
    podman: PodmanHost, node_image: str, kube_cluster: KubeCluster, tmp_path: Path
) -> None:
    host = tmp_path / "host"
    bin_dir = host / "opt" / "cni" / "bin"
    bin_dir.mkdir(parents=True)
    run(podman, node_image, "install-plugins", "--only", "multinic-shim", str(bin_dir),
        volumes=(f"{bin_dir}:{bin_dir}",))  # fmt: skip
    conf_dir = host / "etc" / "cni" / "net.d"
    conf_dir.mkdir(parents=True)
    loopback = {
        "cniVersion": "1.1.0",
        "name": "cluster",
        "plugins": [{"type": "multinic-loopback"}],
    }
    (conf_dir / "10-cluster.conflist").write_text(json.dumps(loopback))
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / "node.yaml").write_text(the_configmaps_config(free_port()))
    containers = daemonset()["spec"]["template"]["spec"]["containers"]
    node = next(c for c in containers if c["name"] == "node")
    node_name = f"h14deploy-{secrets.token_hex(4)}"
    name = f"h14deploy-daemon-{secrets.token_hex(4)}"
    netns = f"h14deploy-pod-{secrets.token_hex(4)}"
    with node_identity(kube_cluster), kube_cluster.namespace("h14deploy") as namespace:
        account = service_account_dir(kube_cluster, tmp_path / "serviceaccount")
        kube_cluster.apply(*pod("web", namespace, node_name, {}))
        uid = kube_cluster.get_object("pod", "web", namespace)["metadata"]["uid"]
        podman_here(
            podman, "run", "-d", "--name", name, *podman.container_flags("host"), "--privileged",
            "-e", f"NODE_NAME={node_name}", "-e", "KUBERNETES_SERVICE_HOST=127.0.0.1",
            "-e", f"KUBERNETES_SERVICE_PORT={kube_cluster.port}",
            "-v", f"{account}:/var/run/secrets/kubernetes.io/serviceaccount:ro",
            *daemonset_mounts(host, config_dir),
            "--entrypoint", json.dumps(node["command"]), node_image,
        )  # fmt: skip
        try:
            create_netns(netns)
            serve_one_pod(host, kube_cluster, namespace, uid, netns, name, podman)
        finally:
            podman_here(podman, "rm", "-f", "-t", "10", name)
            delete_netns(netns)


def serve_one_pod(
    host: Path, cluster: KubeCluster, namespace: str, uid: str, netns: str, name: str,
    podman: PodmanHost,
) -> None:  # fmt: skip
    """ADD (the pod read and its network-status written as the service account), then DEL."""
    conflist = host / "etc" / "cni" / "net.d" / "00-multinic.conflist"
    deadline = time.monotonic() + 60
    while not conflist.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert conflist.exists(), podman_here(podman, "logs", name)
    socket = host / "run" / "multinic" / "cni.sock"
    cni_args = f"IgnoreUnknown=1;K8S_POD_NAMESPACE={namespace};K8S_POD_NAME=web;K8S_POD_UID={uid}"
    bin_dir = host / "opt" / "cni" / "bin"
    sandbox = f"h14deploy{secrets.token_hex(8)}"
    added = run_shim(bin_dir, socket, "ADD", NETNS_DIR / netns, sandbox, cni_args)
    assert added.returncode == 0, added.stdout + added.stderr
    status = cluster.get_object("pod", "web", namespace)["metadata"]["annotations"]
    assert json.loads(status[STATUS_ANNOTATION])[0]["name"] == "cluster"
    record = host / "var" / "lib" / "multinic" / "meta" / "records" / f"{sandbox}.json"
    assert record.exists()  # on the host: a restarted daemon can still DEL the pod
    deleted = run_shim(bin_dir, socket, "DEL", NETNS_DIR / netns, sandbox, cni_args)
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    assert not record.exists()
