"""A Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager.

``multinic lab up --kube`` runs one for the lab (its processes recorded in
the lab's state, stopped by ``lab down``), and the test suite's
``KubeCluster`` (tests/support/kube.py) runs the same command lines. The
programs are the ones ``scripts/build-third-party test`` builds (else the
PATH); certificates are made for the run (:mod:`multinic.lab.pki`). The
controller-manager's node IPAM gives each Node a ``/node_mask`` of
``cluster_cidr``, as the seed's pod-block rule says.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import json
import ssl
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from multinic.lab import etcd as lab_etcd
from multinic.lab.cluster import alive
from multinic.lab.errors import KubeLabError
from multinic.lab.kube import LabApi, nad_path
from multinic.lab.pki import Authority
from multinic.lab.ports import free_port
from multinic.lab.programs import find_program

CRD_DIR = Path(__file__).resolve().parents[3] / "deploy" / "crds"
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
START_TIMEOUT = 120.0


class Credentials(NamedTuple):
    """What the control plane and its admin need, made in one directory."""

    ca: Authority
    serving: tuple[Path, Path]
    admin: tuple[Path, Path]
    service_account: tuple[Path, Path]  # (public, private)
    controller: tuple[Path, Path]


def make_credentials(directory: Path, service_cidr: str) -> Credentials:
    ca = Authority(directory)
    service_ip = str(ipaddress.ip_network(service_cidr).network_address + 1)
    return Credentials(
        ca=ca,
        serving=ca.server(
            "apiserver",
            ips=["127.0.0.1", service_ip],
            dns=["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"],
        ),
        admin=ca.client("admin", "multinic-test-admin", ("system:masters",)),
        service_account=ca.key_pair("service-account"),
        controller=ca.client("controller-manager", "system:kube-controller-manager"),
    )


def write_kubeconfig(path: Path, server: str, ca_cert: Path, client: tuple[Path, Path]) -> None:
    """A kubeconfig (JSON is YAML) that reaches ``server`` as ``client``; owner-only."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "multinic-test",
                "cluster": {"server": server, "certificate-authority": str(ca_cert)},
            }
        ],
        "users": [
            {
                "name": path.stem,
                "user": {"client-certificate": str(client[0]), "client-key": str(client[1])},
            }
        ],
        "contexts": [{"name": "test", "context": {"cluster": "multinic-test", "user": path.stem}}],
        "current-context": "test",
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)


def apiserver_command(etcd_url: str, port: int, creds: Credentials, service_cidr: str) -> list[str]:
    public, private = creds.service_account
    return [
        str(find_program("kube-apiserver")),
        f"--etcd-servers={etcd_url}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        # The reconciler publishes the advertise address as the `kubernetes`
        # Service's endpoint and refuses a loopback one; nothing here routes to it.
        "--endpoint-reconciler-type=none",
        f"--secure-port={port}",
        f"--tls-cert-file={creds.serving[0]}",
        f"--tls-private-key-file={creds.serving[1]}",
        f"--client-ca-file={creds.ca.cert}",
        f"--service-account-key-file={public}",
        f"--service-account-signing-key-file={private}",
        "--service-account-issuer=https://kubernetes.default.svc",
        f"--service-cluster-ip-range={service_cidr}",
        "--authorization-mode=Node,RBAC",
        "--allow-privileged=true",
        "--profiling=false",
        # Nothing in a test run outlives it: no point keeping watch caches warm.
        "--event-ttl=10m",
    ]


def component_flags(kubeconfig: Path) -> list[str]:
    """What a control-plane component run here takes (the controller manager, the
    tests' scheduler): one kubeconfig for all its API access, its own port on
    loopback, no leader election (it runs alone)."""
    return [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={free_port()}",
        "--leader-elect=false",
    ]


def controller_manager_command(
    kubeconfig: Path,
    creds: Credentials,
    cluster_cidr: str,
    node_mask: int,
    service_cidr: str,
) -> list[str]:
    return [
        str(find_program("kube-controller-manager")),
        *component_flags(kubeconfig),
        "--allocate-node-cidrs=true",
        f"--cluster-cidr={cluster_cidr}",
        f"--node-cidr-mask-size={node_mask}",
        f"--service-cluster-ip-range={service_cidr}",
        f"--service-account-private-key-file={creds.service_account[1]}",
        f"--root-ca-file={creds.ca.cert}",
        f"--cluster-signing-cert-file={creds.ca.cert}",
        f"--cluster-signing-key-file={creds.ca.key}",
        # As kubeadm runs it: each controller acts as its own service account with
        # the bootstrap RBAC role written for it (the namespace controller needs it).
        "--use-service-account-credentials=true",
        "--profiling=false",
    ]


def admin_get(port: int, creds: Credentials, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """An admin GET against the apiserver on 127.0.0.1:``port``: (status, body)."""
    return admin_request(port, creds, "GET", path, timeout=timeout)


def admin_request(
    port: int,
    creds: Credentials,
    method: str,
    path: str,
    body: object = None,
    timeout: float = 5.0,
) -> tuple[int, bytes]:
    """An admin request (``body`` sent as JSON) against the apiserver: (status, body)."""
    context = ssl.create_default_context(cafile=str(creds.ca.cert))
    context.load_cert_chain(str(creds.admin[0]), str(creds.admin[1]))
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=timeout)
    data = None if body is None else json.dumps(body).encode()
    headers = {} if data is None else {"Content-Type": "application/json"}
    try:
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_ready(port: int, creds: Credentials, alive: Callable[[], None]) -> None:
    """Until /readyz answers 200; ``alive`` raises when a program has exited meanwhile."""
    end = time.monotonic() + START_TIMEOUT
    while time.monotonic() < end:
        alive()
        with contextlib.suppress(OSError, http.client.HTTPException):
            if admin_get(port, creds, "/readyz", timeout=2)[0] == 200:
                return
        time.sleep(0.2)
    raise KubeLabError(f"kube-apiserver on port {port} not ready after {START_TIMEOUT:.0f} s")


def crds() -> list[dict[str, Any]]:
    """Our CustomResourceDefinitions (deploy/crds): the NAD kind and multinic-ipam's."""
    found: list[dict[str, Any]] = []
    for path in sorted(CRD_DIR.glob("*.yaml")):
        found.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return found


def start(
    base: Path,
    cluster_cidr: str,
    service_cidr: str,
    record: Callable[[str, int], None],
    node_mask: int = 24,
) -> Path:
    """etcd, apiserver and controller-manager under ``base``, each a process of its own
    (``record(name, pid)`` before waiting on it); the admin kubeconfig once ready."""
    base.mkdir(parents=True, exist_ok=True)
    creds = make_credentials(base / "pki", service_cidr)
    etcd = lab_etcd.start_cluster(base / "etcd", lambda n, pid: record(f"kube-{n}", pid), 1)
    lab_etcd.wait_healthy(etcd)
    port = free_port()
    server = f"https://127.0.0.1:{port}"
    admin = base / "admin.kubeconfig"
    write_kubeconfig(admin, server, creds.ca.cert, creds.admin)
    controller = base / "controller-manager.kubeconfig"
    write_kubeconfig(controller, server, creds.ca.cert, creds.controller)
    command = apiserver_command(etcd[0], port, creds, service_cidr)
    pids = {"kube-apiserver": _spawn(base, "kube-apiserver", command)}
    record("kube-apiserver", pids["kube-apiserver"])

    def running() -> None:
        for name, pid in pids.items():
            if not alive(pid):
                raise KubeLabError(f"{name} exited: see {base / (name + '.log')}")

    wait_ready(port, creds, running)
    command = controller_manager_command(controller, creds, cluster_cidr, node_mask, service_cidr)
    pids["kube-controller-manager"] = _spawn(base, "kube-controller-manager", command)
    record("kube-controller-manager", pids["kube-controller-manager"])
    install_crds(admin)
    return admin


def install_crds(kubeconfig: Path, timeout: float = START_TIMEOUT) -> None:
    """Create our CRDs (those present stay) and wait until NADs are served."""
    api = LabApi(str(kubeconfig))
    try:
        for crd in crds():
            api.create(CRD_PATH, crd, exist_ok=True)
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(KubeLabError):
                if api.get(nad_path("default")) is not None:
                    return
            if time.monotonic() > deadline:
                raise KubeLabError(f"NetworkAttachmentDefinitions not served after {timeout:.0f} s")
            time.sleep(0.2)
    finally:
        api.close()


def _spawn(base: Path, name: str, command: list[str]) -> int:
    with (base / f"{name}.log").open("ab") as log:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
    return process.pid
