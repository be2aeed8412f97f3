"""A real Kubernetes control plane on loopback, for tests and benchmarks.

etcd 3.6, kube-apiserver and kube-controller-manager 1.37, built from their Go
modules (``scripts/build-third-party test``), run as this process's children
on free loopback ports with certificates made for the run (``tests/support/pki.py``).
The controller-manager allocates each Node a /24 ``podCIDR`` from the cluster
CIDR, as the seed's pod-block rule says. Our CRDs (``deploy/crds``) are installed
before the cluster is handed out.

:meth:`KubeCluster.stop` kills every process and removes the directory; use the
cluster as a context manager so that happens even when a test fails.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import secrets
import shutil
import signal
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from tests.support import third_party
from tests.support.etcd_cluster import EtcdCluster, free_port
from tests.support.lifecycle import StartedWith
from tests.support.pki import Authority

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "deploy" / "crds"
START_TIMEOUT = 120.0

#: The seed's pod block is a /11 with a /24 per node; a test cluster takes a /16 of it.
CLUSTER_CIDR = "10.32.0.0/16"
NODE_CIDR_MASK = 24
#: Services from RFC 6598 space, as the seed's design decisions require.
SERVICE_CIDR = "100.64.0.0/20"
SERVICE_IP = "100.64.0.1"


class Process:
    """One control-plane program with its log file."""

    def __init__(self, name: str, command: list[str], log_path: Path) -> None:
        self.name = name
        self.command = command
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("ab")
        self.popen = subprocess.Popen(command, stdout=self._log, stderr=self._log)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self) -> None:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=30)
        self._log.close()

    def log_tail(self, size: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except OSError:
            return ""


class KubeCluster(StartedWith):
    """etcd + kube-apiserver + kube-controller-manager under ``base``."""

    def __init__(self, base: Path) -> None:
        base.mkdir(parents=True, exist_ok=True)
        self.base = base
        self.port = free_port()
        self.etcd = EtcdCluster(base / "etcd", size=1)
        self.processes: list[Process] = []
        self.started_in = 0.0
        self.kubeconfig = base / "admin.kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    # -- start -----------------------------------------------------------------

    def start(self) -> None:
        began = time.monotonic()
        self._make_credentials()
        self.etcd.start()
        self._start_apiserver()
        self._wait_ready()
        self._start_controller_manager()
        self.install_crds()
        self.started_in = time.monotonic() - began

    def _make_credentials(self) -> None:
        ca = self.ca = Authority(self.base / "pki")
        self.serving = ca.server(
            "apiserver",
            ips=["127.0.0.1", SERVICE_IP],
            dns=["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"],
        )
        self.admin = ca.client("admin", "multinic-test-admin", ("system:masters",))
        self.service_account = ca.key_pair("service-account")
        controller = ca.client("controller-manager", "system:kube-controller-manager")
        self._write_kubeconfig(self.kubeconfig, self.admin)
        self.controller_kubeconfig = self.base / "controller-manager.kubeconfig"
        self._write_kubeconfig(self.controller_kubeconfig, controller)

    def user_kubeconfig(self, user: str, groups: tuple[str, ...] = ()) -> Path:
        """A kubeconfig for another user (RBAC gives a new one no rights unless granted)."""
        path = self.base / f"{user}.kubeconfig"
        self._write_kubeconfig(path, self.ca.client(user, user, groups))
        return path

    def _write_kubeconfig(self, path: Path, client: tuple[Path, Path]) -> None:
        """A kubeconfig (JSON is YAML) that reaches this apiserver as ``client``."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "multinic-test",
                    "cluster": {"server": self.server, "certificate-authority": str(self.ca.cert)},
                }
            ],
            "users": [
                {
                    "name": path.stem,
                    "user": {
                        "client-certificate": str(client[0]),
                        "client-key": str(client[1]),
                    },
                }
            ],
            "contexts": [
                {"name": "test", "context": {"cluster": "multinic-test", "user": path.stem}}
            ],
            "current-context": "test",
        }
        path.write_text(json.dumps(config, indent=2))
        path.chmod(0o600)

    def _spawn(self, name: str, command: list[str]) -> None:
        self.processes.append(Process(name, command, self.base / f"{name}.log"))

    def _start_apiserver(self) -> None:
        public, private = self.service_account
        self._spawn(
            "kube-apiserver",
            [
                str(third_party.binary("kube-apiserver")),
                f"--etcd-servers={self.etcd.endpoints[0]}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                # The reconciler publishes the advertise address as the `kubernetes`
                # Service's endpoint and refuses a loopback one; nothing here routes to it.
                "--endpoint-reconciler-type=none",
                f"--secure-port={self.port}",
                f"--tls-cert-file={self.serving[0]}",
                f"--tls-private-key-file={self.serving[1]}",
                f"--client-ca-file={self.ca.cert}",
                f"--service-account-key-file={public}",
                f"--service-account-signing-key-file={private}",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--authorization-mode=Node,RBAC",
                "--allow-privileged=true",
                "--profiling=false",
                # Nothing in a test run outlives it: no point keeping watch caches warm.
                "--event-ttl=10m",
            ],
        )

    def _start_controller_manager(self) -> None:
        self._spawn(
            "kube-controller-manager",
            [
                str(third_party.binary("kube-controller-manager")),
                f"--kubeconfig={self.controller_kubeconfig}",
                f"--authentication-kubeconfig={self.controller_kubeconfig}",
                f"--authorization-kubeconfig={self.controller_kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--leader-elect=false",
                "--allocate-node-cidrs=true",
                f"--cluster-cidr={CLUSTER_CIDR}",
                f"--node-cidr-mask-size={NODE_CIDR_MASK}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                f"--service-account-private-key-file={self.service_account[1]}",
                f"--root-ca-file={self.ca.cert}",
                f"--cluster-signing-cert-file={self.ca.cert}",
                f"--cluster-signing-key-file={self.ca.key}",
                # As kubeadm runs it: each controller acts as its own service account with
                # the bootstrap RBAC role written for it (the namespace controller needs it).
                "--use-service-account-credentials=true",
                "--profiling=false",
            ],
        )

    def _tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca.cert))
        context.load_cert_chain(str(self.admin[0]), str(self.admin[1]))
        return context

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        """An admin GET against the apiserver: (status, body)."""
        return self.request("GET", path, timeout=timeout)

    def request(
        self, method: str, path: str, body: object = None, timeout: float = 5.0
    ) -> tuple[int, bytes]:
        """An admin request (``body`` sent as JSON) against the apiserver: (status, body)."""
        conn = http.client.HTTPSConnection(
            "127.0.0.1", self.port, context=self._tls(), timeout=timeout
        )
        try:
            data = None if body is None else json.dumps(body).encode()
            headers = {} if data is None else {"Content-Type": "application/json"}
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def _wait_ready(self) -> None:
        end = time.monotonic() + START_TIMEOUT
        while time.monotonic() < end:
            self._check_alive()
            with contextlib.suppress(OSError, http.client.HTTPException):
                if self.get("/readyz", timeout=2)[0] == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"kube-apiserver not ready after {START_TIMEOUT}s: {self.logs()}")

    def _check_alive(self) -> None:
        for process in self.processes:
            if not process.alive():
                raise RuntimeError(f"{process.name} exited: {process.log_tail()}")

    def install_crds(self) -> None:
        self.kubectl("apply", "-f", str(CRD_DIR))
        self.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")

    # -- use -------------------------------------------------------------------

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl as the admin; with ``check``, a failure raises with its stderr."""
        self._check_alive()
        done = subprocess.run(
            [str(third_party.binary("kubectl")), f"--kubeconfig={self.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {done.stderr.strip()}")
        return done

    def apply(self, *objects: dict[str, Any]) -> None:
        self.kubectl(
            "apply",
            "-f",
            "-",
            stdin=json.dumps({"kind": "List", "apiVersion": "v1", "items": list(objects)}),
        )

    def get_object(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        scope = ["-n", namespace] if namespace else []
        answer: dict[str, Any] = json.loads(
            self.kubectl("get", kind, name, *scope, "-o", "json").stdout
        )
        return answer

    @contextlib.contextmanager
    def namespace(self, prefix: str = "test") -> Iterator[str]:
        """A namespace of this test's own, deleted afterwards (with everything in it)."""
        name = f"{prefix}-{secrets.token_hex(4)}"
        self.kubectl("create", "namespace", name)
        try:
            yield name
        finally:
            self.kubectl("delete", "namespace", name, "--wait=false", check=False)

    # -- failures ----------------------------------------------------------------

    def _process(self, name: str) -> Process:
        return next(p for p in self.processes if p.name == name)

    def kill(self, name: str = "kube-apiserver") -> None:
        """SIGKILL one control-plane program, as a crash would."""
        process = self._process(name)
        if process.alive():
            process.popen.kill()
            process.popen.wait(timeout=30)
        process.stop()

    def restart(self, name: str = "kube-apiserver") -> None:
        """Start a killed program again with its command line (same port, same data).

        After the apiserver, any other program that exited meanwhile is started
        again too: the controller-manager exits when the apiserver goes away
        while it is still building its controllers, and a node's kubelet would
        restart it just so.
        """
        self._respawn(self._process(name))
        if name == "kube-apiserver":
            self._wait_ready()
            self._wait_custom_resources_served()
            for process in list(self.processes):
                if not process.alive():
                    self._respawn(process)

    def _wait_custom_resources_served(self) -> None:
        """Until every CRD's objects can be listed: a restarted apiserver is ready
        (/readyz) before its custom resources' storage is, and answers 429
        "storage is (re)initializing" for them meanwhile."""
        status, body = self.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
        crds = json.loads(body)["items"] if status == 200 else []
        paths = [
            f"/apis/{c['spec']['group']}/{v['name']}/{c['spec']['names']['plural']}?limit=1"
            for c in crds
            for v in c["spec"]["versions"]
            if v.get("served")
        ]
        end = time.monotonic() + START_TIMEOUT
        while paths and time.monotonic() < end:
            with contextlib.suppress(OSError, http.client.HTTPException):
                paths = [p for p in paths if self.get(p, timeout=2)[0] != 200]
            if paths:
                time.sleep(0.2)
        if paths:
            raise RuntimeError(f"custom resources not served after a restart: {paths}")

    def _respawn(self, old: Process) -> None:
        old.stop()
        self.processes[self.processes.index(old)] = Process(old.name, old.command, old.log_path)

    # -- stop ------------------------------------------------------------------

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
        self.etcd.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.log_tail()}" for p in self.processes)
