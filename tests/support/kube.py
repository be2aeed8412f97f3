"""A real Kubernetes control plane on loopback, for tests and benchmarks.

etcd 3.6, kube-apiserver and kube-controller-manager 1.37, built from their Go
modules (``scripts/build-third-party test``), run as this process's children
on free loopback ports with certificates made for the run (:mod:`multinic.lab.pki`).
The controller-manager allocates each Node a /24 ``podCIDR`` from the cluster
CIDR, as the seed's pod-block rule says. The command lines, certificates and
kubeconfigs are the lab's (:mod:`multinic.lab.control_plane`, ``lab up --kube``);
this class keeps the processes as children, to kill and restart them. Our CRDs
(``deploy/crds``) are installed before the cluster is handed out.

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
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from multinic.lab import control_plane
from multinic.lab.errors import LabError
from tests.support import third_party
from tests.support.etcd_cluster import EtcdCluster, free_port
from tests.support.lifecycle import StartedWith

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = control_plane.CRD_DIR
START_TIMEOUT = control_plane.START_TIMEOUT

#: The seed's pod block is a /11 with a /24 per node; a test cluster takes a /16 of it.
CLUSTER_CIDR = "10.32.0.0/16"
NODE_CIDR_MASK = 24
#: Services from RFC 6598 space, as the seed's design decisions require.
SERVICE_CIDR = "100.64.0.0/20"


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
        self.creds = control_plane.make_credentials(self.base / "pki", SERVICE_CIDR)
        self.ca, self.admin = self.creds.ca, self.creds.admin
        self._write_kubeconfig(self.kubeconfig, self.admin)
        self.controller_kubeconfig = self.base / "controller-manager.kubeconfig"
        self._write_kubeconfig(self.controller_kubeconfig, self.creds.controller)

    def user_kubeconfig(self, user: str, groups: tuple[str, ...] = ()) -> Path:
        """A kubeconfig for another user (RBAC gives a new one no rights unless granted)."""
        path = self.base / f"{user}.kubeconfig"
        self._write_kubeconfig(path, self.ca.client(user, user, groups))
        return path

    def _write_kubeconfig(self, path: Path, client: tuple[Path, Path]) -> None:
        control_plane.write_kubeconfig(path, self.server, self.ca.cert, client)

    def _spawn(self, name: str, command: list[str]) -> None:
        self.processes.append(Process(name, command, self.base / f"{name}.log"))

    def _start_apiserver(self) -> None:
        command = control_plane.apiserver_command(
            self.etcd.endpoints[0], self.port, self.creds, SERVICE_CIDR
        )
        self._spawn("kube-apiserver", command)

    def _start_controller_manager(self) -> None:
        command = control_plane.controller_manager_command(
            self.controller_kubeconfig, self.creds, CLUSTER_CIDR, NODE_CIDR_MASK, SERVICE_CIDR
        )
        self._spawn("kube-controller-manager", command)

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        """An admin GET against the apiserver: (status, body)."""
        return self.request("GET", path, timeout=timeout)

    def request(
        self, method: str, path: str, body: object = None, timeout: float = 5.0
    ) -> tuple[int, bytes]:
        """An admin request (``body`` sent as JSON) against the apiserver: (status, body)."""
        return control_plane.admin_request(self.port, self.creds, method, path, body, timeout)

    def _wait_ready(self, *, ignore: tuple[str, ...] = ()) -> None:
        """Until the apiserver answers /readyz; every program but ``ignore`` must live."""
        try:
            control_plane.wait_ready(self.port, self.creds, lambda: self._check_alive(ignore))
        except LabError as exc:
            raise RuntimeError(f"{exc}: {self.logs()}") from exc

    def _check_alive(self, ignore: tuple[str, ...] = ()) -> None:
        for process in self.processes:
            if process.name not in ignore and not process.alive():
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
            # The controller-manager may have exited meanwhile: it is started again below.
            self._wait_ready(ignore=("kube-controller-manager",))
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
