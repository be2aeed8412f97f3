"""scripts/build-image: the node image the DaemonSet runs is built here, without a registry,
and does what deploy/30-node-daemonset.yaml asks of it.

The image is built into the harness's own podman storage (its CONTAINERS_* environment),
so nothing lands in the machine's; its dependencies come from PyPI as wheels. Then, as
the DaemonSet would: the init container's command puts a static multinic-shim into a
directory (the host's /opt/cni/bin), and the daemon runs in the image on a config like
the ConfigMap's, and that shim, run on this host with a bare environment, reaches it
through the socket's directory mounted at the same path.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import tarfile
import time
from pathlib import Path

from multinic import __version__
from tests.e2e.podman.harness import PodmanHost
from tests.support.kube import ROOT

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


def test_the_built_image_installs_a_static_shim_that_reaches_its_daemon(
    podman: PodmanHost, tmp_path: Path
) -> None:
    tag = f"localhost/h14deploy-node:{secrets.token_hex(4)}"
    archive = tmp_path / "node.tar"
    build(podman, tag, archive)
    try:
        assert run(podman, tag, "--version").strip() == f"multinic, version {__version__}"
        with tarfile.open(archive) as tar:  # a docker-archive: what `ctr images import` reads
            manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        assert manifest[0]["RepoTags"] == [tag]

        # The init container's command (deploy/30-node-daemonset.yaml), into the "host" dir.
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        run(podman, tag, "install-plugins", "--only", "multinic-shim", str(bin_dir),
            volumes=(f"{bin_dir}:{bin_dir}",))  # fmt: skip
        assert [p.name for p in bin_dir.iterdir()] == ["multinic-shim"]
        assert b"ELF" in (bin_dir / "multinic-shim").read_bytes()[:4]
        assert (
            "statically linked"
            in subprocess.run(
                ["file", str(bin_dir / "multinic-shim")], capture_output=True, text=True, check=True
            ).stdout
        )

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
    finally:
        podman.podman("rmi", "-f", tag, check=False)
