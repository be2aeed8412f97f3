"""A Kubernetes node of real parts on this machine: containerd + runc, kubelet, multinic node.

:class:`KubeletNode` joins a :class:`~tests.support.kube.KubeCluster` as a
real node:

- a network namespace stands in for the node's host network: its uplink (the
  node's InternalIP) and two data NICs (the macvlan masters of secondary
  networks) are veths in it. containerd, kubelet and ``multinic node`` all run
  in it (``nsenter --net``, nothing else is unshared), so the pod bridge, the
  pods' host-side links, kubelet's iptables chains and the daemon's nftables
  table land there, never in this machine's namespace. A
  :class:`~tests.support.relay.LoopbackRelay` makes the test apiserver's
  127.0.0.1 port reachable from it;
- containerd (Debian's 1.6, its CRI plugin, runc) with its root, state,
  sockets, runc root and the pods' network namespaces under the node's
  directory; its CNI bin and config dirs are the ones the daemon installs
  into and writes (no /etc/cni, /opt/cni); images imported from archives made
  here (busybox-static; no registry);
- kubelet 1.37 (built from its module) registered as ``system:node:<name>``,
  its cgroups under a cgroup root of its own, its root, logs and certificates
  under the node's directory;
- ``multinic node`` with the config a DaemonSet gives it: the primary network
  from ``multinic.podnet`` on the Node's podCIDR, secondaries from NADs; or,
  with ``host_daemon=False``, none: the test deploys deploy/'s DaemonSet and
  this kubelet runs it (tests/e2e/kubelet/test_daemonset.py).

:meth:`KubeletNode.stop` removes everything however the tests ended: the
processes (and the containers the shims still run), every mount under the
node's directory, the cgroups, the namespace with all links in it, the files.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from multinic.lab import netns as lab
from multinic.lab.control_plane import component_flags
from multinic.plugins.install import install_plugins
from tests.support import host_sweep, third_party
from tests.support.etcd_cluster import free_port
from tests.support.kube import KubeCluster, Process
from tests.support.lifecycle import StartedWith
from tests.support.oci_image import write_image_archive
from tests.support.relay import LoopbackRelay
from tests.support.runtime_leftovers import RuntimeLeftovers

#: Names of everything a node makes start with this (namespaces, links, cgroups, dirs).
PREFIX = "h14p"
PAUSE_IMAGE = "localhost/multinic-test/pause:1"
BUSYBOX_IMAGE = "localhost/multinic-test/busybox:1"
BUSYBOX_APPLETS = ("sh", "ip", "ping", "sleep", "cat", "ls", "true", "hostname", "wget")
#: The sandbox's process: sleeps, reaps (PID 1 of the pod), ends on SIGTERM.
PAUSE_COMMAND = ("/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 86400 & wait; done")
#: containerd 1.6 vendors libcni 1.1, which reads results up to CNI 1.0.0.
RUNTIME_CNI_VERSION = "1.0.0"
START_TIMEOUT = 120.0


def _containerd_config(node: KubeletNode) -> str:
    d = node.dirs
    return f"""version = 2
root = "{d["containerd"]}/root"
state = "{d["containerd"]}/state"
disabled_plugins = ["io.containerd.internal.v1.tracing", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.overlayfs"]
[grpc]
  address = "{node.containerd_socket}"
[ttrpc]
  address = "{node.containerd_socket}.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{d["containerd"]}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  netns_mounts_under_state_dir = true
  # Even root may not lower its oom_score_adj on this machine ("Permission denied"
  # from runc for the sandbox's -998): keep containers' at or above containerd's.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{d["containerd"]}/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{d["cni-bin"]}"
    conf_dir = "{d["cni-conf"]}"
"""


class KubeletNode(StartedWith):
    """One node of ``cluster``; use as a context manager (or call :meth:`stop`)."""

    def __init__(self, cluster: KubeCluster, *, host_daemon: bool = True) -> None:
        """With ``host_daemon`` false no ``multinic node`` runs beside kubelet: the test
        deploys it (tests/e2e/kubelet/test_daemonset.py), and the node is not waited
        Ready (it is not, until a CNI config exists)."""
        token = secrets.token_hex(3)
        self.cluster = cluster
        self.host_daemon = host_daemon
        self.name = f"{PREFIX}-node-{token}"
        self.netns = f"{PREFIX}-node-{token}"
        self.cgroup_root = f"{PREFIX}-{token}"
        self.uplink = f"{PREFIX}u{token}"
        self.nics = [f"{PREFIX}d{i}{token}" for i in range(2)]
        self.bridge = f"{PREFIX}b{token}"
        # Short: unix socket paths are limited to 107 bytes.
        self.base = Path(tempfile.mkdtemp(prefix=f"{PREFIX}-", dir="/tmp"))
        self.dirs = {
            name: self.base / name
            for name in ("containerd", "cni-bin", "cni-conf", "kubelet", "multinic", "images")
        }
        self.containerd_socket = self.dirs["containerd"] / "containerd.sock"
        #: Where containerd's CRI mounts pods' network namespaces (netns_mounts_under_state_dir).
        self.netns_dir = self.dirs["containerd"] / "state" / "io.containerd.grpc.v1.cri" / "netns"
        self.daemon_socket = self.dirs["multinic"] / "run" / "cni.sock"
        self.node_ip = f"198.18.{180 + secrets.randbelow(10)}.{2 + secrets.randbelow(250)}"
        self.processes: dict[str, Process] = {}
        self.relay: LoopbackRelay | None = None
        self.leftovers = RuntimeLeftovers()
        self.started_in = 0.0

    # -- start -------------------------------------------------------------------

    def start(self) -> None:
        began = time.monotonic()
        for directory in self.dirs.values():
            directory.mkdir(parents=True)
        self._make_network()
        self.relay = LoopbackRelay(lab.netns_path(self.netns), self.cluster.port)
        if self.host_daemon:  # else the DaemonSet's init container installs the shim
            install_plugins(str(self.dirs["cni-bin"]))
        # containerd's CRI brings every sandbox's lo up with the `loopback` plugin from its
        # bin dir, as a node's /opt/cni/bin has it from the CNI plugins package.
        loopback = third_party.reference_plugins() / "loopback"
        (self.dirs["cni-bin"] / "loopback").symlink_to(loopback)
        if not self.host_daemon:
            self._share_netns_dir()
        self._start_containerd()
        self._import_images()
        host_sweep.make_cgroup(self.cgroup_root)
        self._start_kubelet()
        self._start_scheduler()
        self.wait_for(self._has_pod_cidr, "the Node object with a podCIDR")
        if self.host_daemon:
            self.start_daemon()
            self.wait_for(self.ready, "the Node Ready")
        self.started_in = time.monotonic() - began

    def _make_network(self) -> None:
        lab.create_netns(self.netns)
        for link in (self.uplink, *self.nics):
            peer = ("peer", "name", f"{link}p")
            lab.ip("link", "add", link, "type", "veth", *peer, netns=self.netns)
            lab.ip("link", "set", link, "up", netns=self.netns)
            lab.ip("link", "set", f"{link}p", "up", netns=self.netns)
        lab.ip("addr", "add", f"{self.node_ip}/24", "dev", self.uplink, netns=self.netns)

    def _share_netns_dir(self) -> None:
        """The pods' namespace mounts dir as a shared mount, as under systemd (/ shared).

        A container mounting it with HostToContainer propagation (the DaemonSet's
        /var/run/netns) sees namespaces made after it started only if it is; this
        machine's / is private, and containerd's CRI refuses the mount otherwise
        ("not a shared or slave mount"). :meth:`stop` unmounts it with the rest.
        """
        self.netns_dir.mkdir(parents=True)
        subprocess.run(["mount", "--bind", str(self.netns_dir), str(self.netns_dir)], check=True)
        subprocess.run(["mount", "--make-shared", str(self.netns_dir)], check=True)

    def _in_node(self, *command: str) -> list[str]:
        return ["nsenter", f"--net={lab.netns_path(self.netns)}", "--", *command]

    def _spawn(self, name: str, command: list[str]) -> Process:
        process = Process(name, self._in_node(*command), self.base / f"{name}.log")
        self.processes[name] = process
        return process

    def _start_containerd(self) -> None:
        config = self.dirs["containerd"] / "config.toml"
        config.write_text(_containerd_config(self))
        self._spawn("containerd", ["containerd", "--config", str(config)])
        self.wait_for(self.containerd_socket.exists, "containerd's socket")

    def ctr(self, *args: str, missing_ok: bool = False) -> str:
        """``ctr`` in the CRI's namespace; with ``missing_ok`` an object gone meanwhile is ""."""
        done = subprocess.run(
            ["ctr", f"--address={self.containerd_socket}", "--namespace=k8s.io", *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if missing_ok and done.returncode != 0 and "not found" in done.stderr:
            return ""
        if done.returncode != 0:
            raise RuntimeError(f"ctr {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def _import_images(self) -> None:
        busybox = Path("/bin/busybox")
        links = {f"bin/{applet}": "busybox" for applet in BUSYBOX_APPLETS}
        for name, entrypoint in ((PAUSE_IMAGE, PAUSE_COMMAND), (BUSYBOX_IMAGE, ("/bin/sh",))):
            archive = self.dirs["images"] / f"{name.rsplit('/', 1)[1]}.tar"
            write_image_archive(archive, name, {"bin/busybox": busybox}, links, entrypoint)
            self.ctr("images", "import", "--snapshotter=native", str(archive))

    def _kubelet_config(self) -> dict[str, Any]:
        evict = {"memory.available": "50Mi", "nodefs.available": "1%", "imagefs.available": "1%"}
        return {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": "127.0.0.1",
            "port": free_port(),
            "readOnlyPort": 0,
            "healthzPort": 0,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": False},
                "x509": {"clientCAFile": str(self.cluster.ca.cert)},
            },
            "authorization": {"mode": "AlwaysAllow"},
            "containerRuntimeEndpoint": f"unix://{self.containerd_socket}",
            # This machine mounts cgroup v1 (hybrid), which 1.37 refuses by default;
            # containerd 1.6 has no RuntimeConfig RPC, so kubelet uses this driver.
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": f"/{self.cgroup_root}",
            "cgroupsPerQOS": True,
            "enforceNodeAllocatable": ["pods"],
            "failSwapOn": False,
            "podLogsDir": str(self.dirs["kubelet"] / "pods"),
            "resolvConf": "/etc/resolv.conf",
            "evictionHard": evict,
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "serializeImagePulls": False,
            "nodeStatusUpdateFrequency": "2s",
            "registerNode": True,
        }

    def _start_kubelet(self) -> None:
        directory = self.dirs["kubelet"]
        kubeconfig = self.cluster.user_kubeconfig(f"system:node:{self.name}", ("system:nodes",))
        config = directory / "config.json"  # JSON is YAML
        config.write_text(json.dumps(self._kubelet_config(), indent=2))
        self._spawn(
            "kubelet",
            [
                str(third_party.binary("kubelet")),
                f"--config={config}",
                f"--kubeconfig={kubeconfig}",
                f"--root-dir={directory / 'root'}",
                f"--cert-dir={directory / 'pki'}",
                f"--hostname-override={self.name}",
                f"--node-ip={self.node_ip}",
                "--v=2",
            ],
        )

    def _start_scheduler(self) -> None:
        """kube-scheduler, for pods without ``nodeName``."""
        kubeconfig = self.cluster.user_kubeconfig("system:kube-scheduler")
        self._spawn(
            "kube-scheduler",
            [
                str(third_party.binary("kube-scheduler")),
                *component_flags(kubeconfig),
            ],
        )

    def daemon_config(self) -> dict[str, Any]:
        """What the DaemonSet's ConfigMap gives ``multinic node``, with this node's paths."""
        d = self.dirs["multinic"]
        kubeconfig = str(self.cluster.kubeconfig)
        return {
            "clusterNetwork": "cluster",
            "confDir": str(d / "net.d"),
            "cniConfigDir": str(self.dirs["cni-conf"]),
            "cniVersion": RUNTIME_CNI_VERSION,
            "kubeconfig": kubeconfig,
            "socketPath": str(self.daemon_socket),
            "stateDir": str(d / "state"),
            "binDir": [str(self.dirs["cni-bin"]), str(third_party.reference_plugins())],
            "healthAddress": f"127.0.0.1:{free_port()}",
            "podnet": {
                "nodeName": self.name,
                "kubeconfig": kubeconfig,
                "uplink": self.uplink,
                "mode": "host-gw",
                "bridge": self.bridge,
                "dataDir": str(d / "podnet"),
                "serviceBlock": "100.64.0.0/20",
            },
        }

    def start_daemon(self) -> None:
        config = self.dirs["multinic"] / "node.json"
        config.write_text(json.dumps(self.daemon_config(), indent=2))
        multinic = Path(sys.executable).with_name("multinic")
        self._spawn("multinic-node", [str(multinic), "node", f"--config={config}"])
        conflist = self.dirs["cni-conf"] / "00-multinic.conflist"
        self.wait_for(lambda: self.daemon_socket.exists() and conflist.exists(), "multinic node")

    def stop_daemon(self) -> None:
        self.processes.pop("multinic-node").stop()

    # -- state -------------------------------------------------------------------

    def node_object(self) -> dict[str, Any]:
        return self.cluster.get_object("node", self.name)

    def _has_pod_cidr(self) -> bool:
        done = self.cluster.kubectl("get", "node", self.name, "-o", "json", check=False)
        return done.returncode == 0 and bool(json.loads(done.stdout)["spec"].get("podCIDR"))

    def ready(self) -> bool:
        conditions = self.node_object()["status"].get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def wait_for(self, check: Any, what: str, timeout: float = START_TIMEOUT) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self._check_alive()
            if check():
                return
            time.sleep(0.2)
        raise RuntimeError(f"{what} not there after {timeout:.0f} s\n{self.logs()}")

    def _check_alive(self) -> None:
        for process in self.processes.values():
            if not process.alive():
                raise RuntimeError(f"{process.name} exited:\n{process.log_tail()}")

    def logs(self, size: int = 2500) -> str:
        return "\n".join(f"--- {p.name}\n{p.log_tail(size)}" for p in self.processes.values())

    def _containers(self, kind: str, namespace: str, pod: str | None = None) -> list[str]:
        """containerd's ``sandbox`` or ``container`` containers of a pod or a namespace."""
        found = []
        for cid in self.ctr("containers", "list", "--quiet").split():
            info = self.ctr("containers", "info", cid, missing_ok=True)  # removed meanwhile
            labels = json.loads(info or "{}").get("Labels", {})
            if (
                labels.get("io.cri-containerd.kind") == kind
                and labels.get("io.kubernetes.pod.namespace") == namespace
                and pod in (None, labels.get("io.kubernetes.pod.name"))
            ):
                found.append(cid)
        return found

    def sandboxes(self, namespace: str) -> list[str]:
        return self._containers("sandbox", namespace)

    def container_of(self, namespace: str, pod: str) -> str:
        """The id of the pod's (one) app container."""
        found = self._containers("container", namespace, pod)
        if len(found) != 1:
            raise RuntimeError(f"pod {namespace}/{pod} has containers {found}, not one")
        return found[0]

    def exec_in(self, namespace: str, pod: str, *command: str) -> str:
        """Run ``command`` in the pod's container (``ctr tasks exec``); its output.

        The exec's fifos go under the node's directory (ctr's default is
        /run/containerd/fifo, which it leaves behind).
        """
        return self.ctr(
            "tasks", "exec", f"--exec-id=t{secrets.token_hex(4)}",
            f"--fifo-dir={self.dirs['containerd'] / 'fifo'}",
            self.container_of(namespace, pod), *command,
        )  # fmt: skip

    def links(self) -> set[str]:
        return lab.link_names(self.netns)

    def records(self) -> list[str]:
        return sorted(p.name for p in (self.dirs["multinic"] / "state" / "records").glob("*.json"))

    # -- stop ------------------------------------------------------------------

    def stop(self) -> list[str]:
        """Remove everything this node made; what could not be removed (empty: all gone)."""
        problems: list[str] = []
        container_ids = self.container_ids()
        for name in ("kube-scheduler", "kubelet", "multinic-node", "containerd"):
            if name in self.processes:
                self.processes.pop(name).stop()
        left = host_sweep.kill_all(host_sweep.processes_naming(str(self.base)))
        left += host_sweep.kill_all(host_sweep.processes_in_cgroup(self.cgroup_root))
        problems += [f"process {pid}" for pid in left]
        problems += [f"mount {m}" for m in host_sweep.unmount_all(self.base)]
        problems += [f"cgroup {c}" for c in host_sweep.remove_cgroup(self.cgroup_root)]
        if self.relay is not None:
            self.relay.close()
        lab.delete_netns(self.netns)
        # The Node goes too, as when a node is removed from a cluster: another test
        # node's podnet would otherwise take it for a peer to route to.
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self.cluster.kubectl("delete", "node", self.name, "--ignore-not-found", check=False)
        self.leftovers.remove(self.containerd_socket, container_ids, self.base)
        problems += self.leftovers.left(self.containerd_socket, container_ids, self.base)
        shutil.rmtree(self.base, ignore_errors=True)
        return problems + ([f"file {self.base}"] if self.base.exists() else [])

    def container_ids(self) -> list[str]:
        """Every container containerd has (when it still answers; else none)."""
        if "containerd" not in self.processes or not self.processes["containerd"].alive():
            return []
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            return self.ctr("containers", "list", "--quiet").split()
        return []

    def __exit__(self, *exc: object) -> None:
        problems = self.stop()
        if problems:
            raise RuntimeError(f"test node {self.name} left: {problems}")
