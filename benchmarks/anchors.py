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

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.support import third_party  # noqa: E402
from tests.support.kube import KubeCluster  # noqa: E402

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
    """The ``whereabouts`` IPAM plugin against ``cluster``, its files under ``work``.

    ``add``/``delete`` run the binary once each, as a meta plugin delegating IPAM
    would. Whereabouts v0.9 refuses to run without a "flat file" (its
    ``whereabouts.conf``; LoadIPAMConfig fails with ConfigFileNotFoundError when
    none of its fixed /etc paths holds one), so one is written under ``work``
    and named by ``configuration_path``; it holds only the kubeconfig.
    """

    CNI_VERSION = "1.0.0"

    def __init__(self, cluster: KubeCluster, work: Path) -> None:
        self.cluster = cluster
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        self.binary = third_party.binary("whereabouts")
        self.version = third_party.version("whereabouts")
        self.flat_file = work / "whereabouts.conf"
        self.flat_file.write_text(
            json.dumps({"kubernetes": {"kubeconfig": str(cluster.kubeconfig)}}, indent=2)
        )
        self.log_file = work / "whereabouts.log"

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
