"""The anchors, run for real against a test control plane: Whereabouts and Multus thick.

Our benchmarks compare multinic with the two programs it replaces. Both are built
from their Go modules at pinned versions (``scripts/build-third-party anchors``,
third_party/programs) and run here against a :class:`tests.support.kube.KubeCluster`:

* :class:`Whereabouts`: the ``whereabouts`` binary called as a CNI IPAM plugin,
  exactly as a meta plugin would, storing its pools as CRD objects in the test
  apiserver. Its CRDs are applied from the module cache (``doc/crds``) at run
  time; none of its files is in this repository.
* :class:`MultusThick`: ``multus-daemon`` running as a node's Multus would, and
  ``multus-shim`` called as the runtime calls it. The daemon runs in a scratch
  network namespace standing in for the node, so the delegates it executes
  (the reference bridge and host-local) put their bridges and host veths there,
  never on this machine. It reaches the apiserver (which listens on this
  machine's loopback) through :class:`LoopbackRelay`, and gets its Kubernetes
  identity through its own ``perNodeCertificate`` mode: it asks for a client
  certificate with a CertificateSigningRequest, which :class:`CsrApprover`
  approves (the job of Multus' ``cert-approver`` in a real cluster) and the
  controller-manager signs.

Everything either makes lives under a scratch directory and in scratch
namespaces, and is removed by ``close()``/``stop()`` (use them as context
managers), however the run ended.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.support import third_party  # noqa: E402
from tests.support.kube import KubeCluster  # noqa: E402
from tests.support.lifecycle import StartedWith  # noqa: E402
from tests.support.relay import LoopbackRelay  # noqa: E402

from multinic.lab import netns as lab  # noqa: E402

WHEREABOUTS_MODULE = "github.com/k8snetworkplumbingwg/whereabouts"
WHEREABOUTS_CRDS = (
    "whereabouts.cni.cncf.io_ippools.yaml",
    "whereabouts.cni.cncf.io_overlappingrangeipreservations.yaml",
    "whereabouts.cni.cncf.io_nodeslicepools.yaml",
)
#: Where Whereabouts keeps its objects: the namespace of the kubeconfig's
#: context, kube-system when (as in the admin kubeconfig) it names none.
WHEREABOUTS_NAMESPACE = "kube-system"

NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"
NETWORK_STATUS_ANNOTATION = "k8s.v1.cni.cncf.io/network-status"


class AnchorError(RuntimeError):
    """An anchor refused a call or did not come up; the message carries its output."""


def module_cache() -> Path:
    """Go's module cache (``go env GOMODCACHE``), where the anchors' sources are."""
    try:
        done = subprocess.run(
            ["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True, timeout=60
        )
        if done.stdout.strip():
            return Path(done.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return Path.home() / "go" / "pkg" / "mod"


def module_dir(module: str, version: str) -> Path:
    """A module's source in the cache; building it (``make anchors``) put it there."""
    where = module_cache() / f"{module}@{version}"
    if not where.is_dir():
        raise AnchorError(f"{module}@{version} is not in the module cache ({where}): make anchors")
    return where


def cni_args(**pairs: str) -> str:
    """CNI_ARGS: ``IgnoreUnknown=1;K=V;...`` (as kubelet's runtimes send it)."""
    return ";".join(["IgnoreUnknown=1", *(f"{k}={v}" for k, v in pairs.items())])


def run_plugin(
    binary: Path, env: dict[str, str], config: dict[str, Any], timeout: float = 120.0
) -> dict[str, Any]:
    """Exec a CNI plugin; its parsed stdout, or AnchorError with what it said."""
    done = subprocess.run(
        [str(binary)],
        input=json.dumps(config).encode(),
        env={"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), **env},
        capture_output=True,
        check=False,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise AnchorError(
            f"{binary.name} {env.get('CNI_COMMAND')} exited {done.returncode}: "
            f"{done.stdout.decode(errors='replace').strip()} "
            f"{done.stderr.decode(errors='replace').strip()}"
        )
    out = done.stdout.strip()
    result: dict[str, Any] = json.loads(out) if out else {}
    return result


# --- Whereabouts ----------------------------------------------------------------------


class Whereabouts:
    """The ``whereabouts`` IPAM plugin against ``cluster``, its files in a directory under ``work``.

    ``add``/``delete`` run the binary once each, as a meta plugin delegating IPAM
    would. Whereabouts v0.9 refuses to run without a "flat file" (its
    ``whereabouts.conf``; LoadIPAMConfig fails with ConfigFileNotFoundError when
    none of its fixed /etc paths holds one), so one is written under ``work``
    and named by ``configuration_path``; it holds only the kubeconfig.
    """

    CNI_VERSION = "1.0.0"

    def __init__(self, cluster: KubeCluster, work: Path) -> None:
        self.cluster = cluster
        self.work = work / f"whereabouts-{secrets.token_hex(3)}"
        self.work.mkdir(parents=True)
        self.binary = third_party.binary("whereabouts")
        self.version = third_party.version("whereabouts")
        self.flat_file = self.work / "whereabouts.conf"
        self.flat_file.write_text(
            json.dumps({"kubernetes": {"kubeconfig": str(cluster.kubeconfig)}}, indent=2)
        )
        self.log_file = self.work / "whereabouts.log"

    def close(self) -> None:
        """Remove its directory (the cluster's objects go with the cluster)."""
        shutil.rmtree(self.work, ignore_errors=True)

    def __enter__(self) -> Whereabouts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def crd_files(self) -> list[Path]:
        crds = module_dir(WHEREABOUTS_MODULE, self.version) / "doc" / "crds"
        return [crds / name for name in WHEREABOUTS_CRDS]

    def install_crds(self) -> None:
        """Apply its CRDs from the module cache and wait until they are served."""
        for crd in self.crd_files():
            self.cluster.kubectl("apply", "-f", str(crd))
        self.cluster.kubectl(
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/ippools.whereabouts.cni.cncf.io",
            "crd/overlappingrangeipreservations.whereabouts.cni.cncf.io",
            "crd/nodeslicepools.whereabouts.cni.cncf.io",
        )

    def config(self, ip_range: str, name: str = "anchors-whereabouts") -> dict[str, Any]:
        """A network whose IPAM is Whereabouts on ``ip_range`` (plugin type irrelevant here)."""
        return {
            "cniVersion": self.CNI_VERSION,
            "name": name,
            "type": "bridge",
            "ipam": {
                "type": "whereabouts",
                "range": ip_range,
                "kubernetes": {"kubeconfig": str(self.cluster.kubeconfig)},
                "configuration_path": str(self.flat_file),
                "log_file": str(self.log_file),
                "log_level": "error",
            },
        }

    def call(
        self,
        command: str,
        config: dict[str, Any],
        container_id: str,
        pod_namespace: str,
        pod_name: str,
        ifname: str = "eth0",
        netns: str | None = None,
    ) -> dict[str, Any]:
        """One CNI call. Whereabouts never opens CNI_NETNS; the spec still wants a path."""
        env = {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": container_id,
            "CNI_NETNS": netns or f"/var/run/netns/{container_id}",
            "CNI_IFNAME": ifname,
            "CNI_PATH": str(self.binary.parent),
            "CNI_ARGS": cni_args(K8S_POD_NAMESPACE=pod_namespace, K8S_POD_NAME=pod_name),
        }
        return run_plugin(self.binary, env, config)

    def add(
        self, config: dict[str, Any], container_id: str, pod_namespace: str, pod_name: str
    ) -> dict[str, Any]:
        return self.call("ADD", config, container_id, pod_namespace, pod_name)

    def delete(
        self, config: dict[str, Any], container_id: str, pod_namespace: str, pod_name: str
    ) -> None:
        self.call("DEL", config, container_id, pod_namespace, pod_name)

    def pools(self) -> list[dict[str, Any]]:
        """Every IPPool object, as the apiserver has it."""
        listed = self.cluster.kubectl("get", "ippools", "-n", WHEREABOUTS_NAMESPACE, "-o", "json")
        items: list[dict[str, Any]] = json.loads(listed.stdout)["items"]
        return items

    def allocations(self, ip_range: str) -> dict[str, dict[str, Any]]:
        """The range's pool allocations (offset -> {id, podref, ifname}); {} when no pool."""
        for pool in self.pools():
            if pool["spec"]["range"] == ip_range:
                found: dict[str, dict[str, Any]] = pool["spec"].get("allocations") or {}
                return found
        return {}

    def reservations(self) -> list[dict[str, Any]]:
        """OverlappingRangeIPReservation objects (one per address in use, by default)."""
        listed = self.cluster.kubectl(
            "get", "overlappingrangeipreservations", "-n", WHEREABOUTS_NAMESPACE, "-o", "json"
        )
        items: list[dict[str, Any]] = json.loads(listed.stdout)["items"]
        return items


# --- approving Multus' certificate requests -------------------------------------------


def _csr_names_subject(request_b64: str, common_name: str) -> bool:
    """Whether a CSR's (base64 PEM) request carries ``common_name`` in its subject."""
    pem = base64.b64decode(request_b64).decode(errors="replace")
    body = "".join(line for line in pem.splitlines() if line and not line.startswith("-----"))
    return common_name.encode() in base64.b64decode(body)


class CsrApprover:
    """Approves pending CertificateSigningRequests for ``common_name`` while it runs.

    What Multus' ``cert-approver`` does in a real cluster for ``perNodeCertificate``
    (the controller-manager then signs the request with the cluster CA, which
    the apiserver trusts for clients). Polls the API as the admin every ``interval``.
    """

    def __init__(self, cluster: KubeCluster, common_name: str, interval: float = 0.25) -> None:
        self.cluster = cluster
        self.common_name = common_name
        self.interval = interval
        self.approved: list[str] = []
        self.errors: list[str] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="csr-approver", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                self._approve_pending()
            except Exception as exc:  # reported by whoever waits for the certificate
                self.errors.append(repr(exc))

    def _approve_pending(self) -> None:
        status, body = self.cluster.get("/apis/certificates.k8s.io/v1/certificatesigningrequests")
        if status != 200:
            return
        for csr in json.loads(body).get("items", []):
            name = csr["metadata"]["name"]
            decided = {c.get("type") for c in csr.get("status", {}).get("conditions") or []}
            if name in self.approved or decided & {"Approved", "Denied", "Failed"}:
                continue
            if _csr_names_subject(csr["spec"]["request"], self.common_name):
                self.cluster.kubectl("certificate", "approve", name)
                self.approved.append(name)

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=10)


# --- Multus thick ---------------------------------------------------------------------

#: What Multus' daemon needs from the API, as its deployment
#: (deployments/multus-daemonset-thick.yml, ClusterRole ``multus``) grants it.
MULTUS_RULES: list[dict[str, Any]] = [
    {"apiGroups": ["k8s.cni.cncf.io"], "resources": ["*"], "verbs": ["*"]},
    {
        "apiGroups": [""],
        "resources": ["pods", "pods/status"],
        "verbs": ["get", "list", "update", "watch"],
    },
    {
        "apiGroups": ["", "events.k8s.io"],
        "resources": ["events"],
        "verbs": ["create", "patch", "update"],
    },
]
MULTUS_CLUSTER_ROLE = "multinic-anchors-multus"
#: Multus' perNodeCertificate asks for CN ``system:multus:<node>``, O ``system:multus``.
MULTUS_CERT_PREFIX = "system:multus"
START_TIMEOUT = 120.0


@contextlib.contextmanager
def pod_sandbox(prefix: str = "mnan-pod-") -> Iterator[Path]:
    """A real network namespace for a pod (``ip netns``), removed afterwards."""
    with lab.scratch_netns(f"{prefix}{secrets.token_hex(4)}") as path:
        yield path


class MultusThick(StartedWith):
    """``multus-daemon`` for node ``node`` against ``cluster``; ``multus-shim`` calls into it.

    The node is a scratch network namespace (``netns_name``): the daemon runs in
    it (``nsenter --net``), so the delegates it executes, the reference bridge
    and host-local from ``cni-plugins``, make their bridges and host veths there.
    Its default network is a conflist of those two in ``cluster_conf_dir``; from it
    the daemon writes the shim's ``00-multus.conf`` in ``conf_dir``, which
    :meth:`call` feeds the shim as a runtime would. Every path the daemon takes (socket, caches,
    logs, certificates, IPAM data) is under ``work``.
    """

    CNI_VERSION = "1.0.0"

    def __init__(
        self,
        cluster: KubeCluster,
        work: Path,
        node: str | None = None,
        cluster_subnet: str = "10.250.0.0/24",
        log_level: str = "verbose",
        cluster_network_as_directory: bool = True,
    ) -> None:
        token = secrets.token_hex(3)
        self.cluster = cluster
        self.node = node or f"anchors-{token}"
        self.netns_name = f"mnan-node-{token}"
        self.netns_path = lab.netns_path(self.netns_name)
        self.cluster_bridge = f"mnac{token}"
        self.cluster_subnet = cluster_subnet
        self.log_level = log_level
        self.cluster_network_as_directory = cluster_network_as_directory
        self.daemon_binary = third_party.binary("multus-daemon")
        self.shim_binary = third_party.binary("multus-shim")
        self.bin_dir = third_party.directory("cni-plugins")
        self.work = work / f"multus-{token}"
        self.conf_dir = self.work / "net.d"
        self.cluster_conf_dir = self.work / "cluster.d"
        self.socket_dir = self.work / "run"
        self.cache_dir = self.work / "cache"
        self.multus_conf_dir = self.work / "multus.d"
        self.cert_dir = self.work / "certs"
        self.ipam_dir = self.work / "ipam"
        self.config_path = self.work / "daemon-config.json"
        self.shim_config_path = self.conf_dir / "00-multus.conf"
        self.log_path = self.work / "multus.log"
        self.output_path = self.work / "multus-daemon.out"
        self.common_name = f"{MULTUS_CERT_PREFIX}:{self.node}"
        self.binding = f"{MULTUS_CLUSTER_ROLE}-{self.node}"
        self.started_in = 0.0
        self.process: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None
        self.relay: LoopbackRelay | None = None
        self.approver: CsrApprover | None = None
        self._netns_made = False

    # -- start -------------------------------------------------------------------------

    def start(self) -> None:
        began = time.monotonic()
        for directory in (
            self.conf_dir,
            self.cluster_conf_dir,
            self.cache_dir,
            self.multus_conf_dir,
            self.cert_dir,
        ):
            directory.mkdir(parents=True)
        lab.create_netns(self.netns_name)
        self._netns_made = True
        self.relay = LoopbackRelay(self.netns_path, self.cluster.port)
        self._grant()
        self.approver = CsrApprover(self.cluster, self.common_name)
        self._write_configs()
        self._output = self.output_path.open("ab")
        self.process = subprocess.Popen(
            [
                "nsenter",
                f"--net={self.netns_path}",
                str(self.daemon_binary),
                f"-config={self.config_path}",
            ],
            env={
                "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
                "MULTUS_NODE_NAME": self.node,
            },
            stdout=self._output,
            stderr=self._output,
            start_new_session=True,
        )
        self._wait_ready()
        self.started_in = time.monotonic() - began

    def _grant(self) -> None:
        """The ClusterRole of Multus' deployment, bound to this node's certificate user."""
        self.cluster.apply(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": MULTUS_CLUSTER_ROLE},
                "rules": MULTUS_RULES,
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": self.binding},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": MULTUS_CLUSTER_ROLE,
                },
                "subjects": [
                    {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "User",
                        "name": self.common_name,
                    }
                ],
            },
        )

    def cluster_network(self) -> dict[str, Any]:
        """The node's default network: the reference bridge with host-local."""
        return {
            "cniVersion": self.CNI_VERSION,
            "name": "anchors-cluster",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.cluster_bridge,
                    "isGateway": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": self.cluster_subnet}]],
                        "dataDir": str(self.ipam_dir),
                    },
                }
            ],
        }

    def _write_configs(self) -> None:
        (self.cluster_conf_dir / "10-anchors-cluster.conflist").write_text(
            json.dumps(self.cluster_network(), indent=2)
        )
        config = {
            "cniVersion": self.CNI_VERSION,
            "logLevel": self.log_level,
            "logToStderr": True,
            "logFile": str(self.log_path),
            # The daemon's socket; the shim finds it through daemonSocketDir in 00-multus.conf.
            "socketDir": str(self.socket_dir),
            "daemonSocketDir": str(self.socket_dir),
            "cniConfigDir": str(self.conf_dir),
            "multusAutoconfigDir": str(self.cluster_conf_dir),
            "multusConfigFile": "auto",
            "binDir": str(self.bin_dir),
            "cniDir": str(self.cache_dir),
            "confDir": str(self.multus_conf_dir),
            "perNodeCertificate": {
                "enabled": True,
                "bootstrapKubeconfig": str(self._bootstrap_kubeconfig()),
                "certDir": str(self.cert_dir),
                # Long enough that no rotation (a second approval) falls inside a benchmark.
                "certDuration": "24h",
            },
        }
        if self.cluster_network_as_directory:
            # The daemon's keys override the shim's config on every request. With
            # "auto", 00-multus.conf names the primary conflist *file*; Multus 4.2.3
            # loads a file through LoadDelegateNetConfFromConfList, which re-marshals
            # the plugins through cnitypes.PluginConf and keeps only the standard
            # keys: ADD still works (it uses the parsed list) but DEL runs the bridge
            # with no "bridge" and host-local with no ranges, fails, and the shim
            # hides it (DEL always exits 0): the address leaks (upstream issue 1449,
            # fixed by pull request 1521 after 4.2.3). A *directory* is loaded from
            # the file's raw bytes, so DEL gets the whole conflist.
            config["clusterNetwork"] = str(self.cluster_conf_dir)
        self.config_path.write_text(json.dumps(config, indent=2))

    def _bootstrap_kubeconfig(self) -> Path:
        """The admin kubeconfig with the CA inlined: Multus' per-node client config
        copies only the bootstrap config's CAData, so a CA given as a file
        (``certificate-authority``) would leave its certificate client trusting nothing."""
        config = json.loads(self.cluster.kubeconfig.read_text())
        for entry in config["clusters"]:
            cluster = entry["cluster"]
            ca_file = Path(cluster.pop("certificate-authority"))
            cluster["certificate-authority-data"] = base64.b64encode(ca_file.read_bytes()).decode()
        path = self.work / "bootstrap.kubeconfig"
        path.write_text(json.dumps(config, indent=2))
        path.chmod(0o600)
        return path

    def socket_path(self) -> Path:
        return self.socket_dir / "multus.sock"

    def _wait_ready(self) -> None:
        end = time.monotonic() + START_TIMEOUT
        while time.monotonic() < end:
            if self.process is None or self.process.poll() is not None:
                raise AnchorError(f"multus-daemon exited: {self.output_tail()}")
            if self.socket_path().exists() and self.shim_config_path.exists():
                return
            time.sleep(0.1)
        errors = self.approver.errors if self.approver else []
        raise AnchorError(
            f"multus-daemon not ready after {START_TIMEOUT}s (approver errors {errors}): "
            f"{self.output_tail()}"
        )

    def output_tail(self, size: int = 4000) -> str:
        try:
            return self.output_path.read_text(errors="replace")[-size:]
        except OSError:
            return ""

    # -- use ---------------------------------------------------------------------------

    def bridge_nad(
        self, name: str, namespace: str, subnet: str, bridge: str | None = None
    ) -> dict[str, Any]:
        """A NetworkAttachmentDefinition: a bridge in the node with host-local on ``subnet``."""
        config = {
            "cniVersion": self.CNI_VERSION,
            "name": name,
            "type": "bridge",
            "bridge": bridge or f"mnan{self.cluster_bridge[4:]}",
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": subnet}]],
                "dataDir": str(self.ipam_dir),
            },
        }
        return {
            "apiVersion": "k8s.cni.cncf.io/v1",
            "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"config": json.dumps(config)},
        }

    def pod(self, name: str, namespace: str, networks: str) -> dict[str, Any]:
        """A Pod bound to this node (no kubelet will run it) asking for ``networks``."""
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "annotations": {NETWORKS_ANNOTATION: networks},
            },
            "spec": {
                "nodeName": self.node,
                "automountServiceAccountToken": False,
                "containers": [{"name": "main", "image": "registry.invalid/anchors:never"}],
            },
        }

    def call(
        self,
        command: str,
        container_id: str,
        netns: Path,
        pod: dict[str, Any],
        ifname: str = "eth0",
    ) -> dict[str, Any]:
        """``multus-shim`` as a runtime calls it, with the daemon's 00-multus.conf on stdin."""
        meta = pod["metadata"]
        env = {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": container_id,
            "CNI_NETNS": str(netns),
            "CNI_IFNAME": ifname,
            "CNI_PATH": str(self.bin_dir),
            "CNI_ARGS": cni_args(
                K8S_POD_NAMESPACE=meta["namespace"],
                K8S_POD_NAME=meta["name"],
                K8S_POD_INFRA_CONTAINER_ID=container_id,
                K8S_POD_UID=meta["uid"],
            ),
        }
        config: dict[str, Any] = json.loads(self.shim_config_path.read_text())
        return run_plugin(self.shim_binary, env, config)

    def add(self, container_id: str, netns: Path, pod: dict[str, Any]) -> dict[str, Any]:
        return self.call("ADD", container_id, netns, pod)

    def delete(self, container_id: str, netns: Path, pod: dict[str, Any]) -> None:
        self.call("DEL", container_id, netns, pod)

    def node_links(self) -> set[str]:
        return lab.link_names(self.netns_name)

    # -- stop --------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop the daemon and remove everything it and we made, whatever state it is in."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=30)
            self.process = None
        if self._output is not None:
            self._output.close()
            self._output = None
        if self.approver is not None:
            self.approver.stop()
            for name in self.approver.approved:
                self.cluster.kubectl("delete", "csr", name, "--wait=false", check=False)
            self.approver = None
        if self.relay is not None:
            self.relay.close()
            self.relay = None
        with contextlib.suppress(RuntimeError):
            self.cluster.kubectl(
                "delete", "clusterrolebinding", self.binding, "--ignore-not-found", check=False
            )
        if self._netns_made:
            # Bridges and any host veth a DEL left go with the namespace.
            lab.delete_netns(self.netns_name)
            self._netns_made = False
        shutil.rmtree(self.work, ignore_errors=True)
