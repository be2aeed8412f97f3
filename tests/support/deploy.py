"""deploy/'s manifests as tests read them, and the node daemon's identity applied for real."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.support.kube import ROOT, KubeCluster

DEPLOY = ROOT / "deploy"
NAMESPACE_FILE = DEPLOY / "00-namespace.yaml"
RBAC_FILE = DEPLOY / "10-rbac.yaml"
CONFIG_FILE = DEPLOY / "20-node-config.yaml"
DAEMONSET_FILE = DEPLOY / "30-node-daemonset.yaml"


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def the_one(path: Path, kind: str) -> dict[str, Any]:
    found = [doc for doc in documents(path) if doc["kind"] == kind]
    assert len(found) == 1, f"{path.name}: {len(found)} {kind} objects"
    return found[0]


def daemonset() -> dict[str, Any]:
    return the_one(DAEMONSET_FILE, "DaemonSet")


def node_yaml() -> str:
    """The daemon's config file, as the ConfigMap holds it."""
    text: str = the_one(CONFIG_FILE, "ConfigMap")["data"]["node.yaml"]
    return text


def service_account() -> tuple[str, str]:
    """(namespace, name) of the account the DaemonSet's pods run as."""
    ds = daemonset()
    return ds["metadata"]["namespace"], ds["spec"]["template"]["spec"]["serviceAccountName"]


@contextlib.contextmanager
def node_identity(cluster: KubeCluster) -> Iterator[tuple[str, str]]:
    """deploy/'s namespace, service account and RBAC applied for real; afterwards the
    objects this made are deleted (others in the run may have applied them before)."""
    namespace, _ = service_account()
    objects = [("namespace", namespace), ("clusterrole", "multinic-node")]
    objects.append(("clusterrolebinding", "multinic-node"))
    new = [
        (kind, name)
        for kind, name in objects
        if cluster.kubectl("get", kind, name, check=False).returncode != 0
    ]
    try:
        cluster.kubectl("apply", "-f", str(NAMESPACE_FILE), "-f", str(RBAC_FILE))
        yield service_account()
    finally:
        for kind, name in new:
            cluster.kubectl("delete", kind, name, "--wait=true", check=False)
