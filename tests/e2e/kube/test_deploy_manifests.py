"""deploy/: what a cluster admin applies is accepted by a real API server and matches the code.

- every manifest passes ``kubectl apply --dry-run=server --validate=strict`` (admission,
  schema and unknown-field checks of kube-apiserver 1.37), alone and as the admin's
  ``kubectl apply -R -f deploy/``;
- the ConfigMap's node.yaml loads through the daemon's own loader (``load_node_config``);
- the service account may do every request the daemon and multinic-ipam's Kubernetes
  store make (``kubectl auth can-i`` against the real RBAC authorizer) and nothing
  chosen to be out of reach;
- the DaemonSet mounts, at the same path as on the host, every host path the config
  names, and probes the health address the config gives.

Each check is a function of the manifests, so each test also runs it on a broken
copy and sees it fail. The namespace and RBAC objects are applied for real (can-i
asks the authorizer, which reads them) and removed afterwards unless the session
had them before (tests/e2e/kube_ipam applies them too).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from multinic import __version__
from multinic.ipam import kube_store
from multinic.node.config import NodeConfig, load_node_config
from tests.support.deploy import (
    CONFIG_FILE,
    DAEMONSET_FILE,
    DEPLOY,
    daemonset,
    documents,
    node_identity,
    node_yaml,
    service_account,
    the_one,
)
from tests.support.kube import KubeCluster

MANIFESTS = sorted(DEPLOY.glob("*.yaml")) + sorted((DEPLOY / "crds").glob("*.yaml"))

#: What the node daemon asks of the API, and where in the code: (verb, resource).
DAEMON_REQUESTS = [
    ("get", "pods"),  # the meta plugin's pod lookup (kube/api.py), ipamReconcile (kube/rest.py)
    ("patch", "pods"),  # the network-status annotation (kube/api.py)
    ("get", "network-attachment-definitions.k8s.cni.cncf.io"),  # the pod's networks
    ("list", "nodes"),  # podnet's node list in API mode (kube/api.py list_nodes)
] + [
    # multinic-ipam's Kubernetes store, also podnet's node list (ipam/kube_store.py, kube/rest.py)
    (verb, f"{plural}.{kube_store.GROUP}")
    for plural, _ in [*kube_store.KINDS.values(), kube_store.OTHER, kube_store.TXNS]
    for verb in ("get", "list", "create", "patch", "delete")
]
#: Out of the daemon's reach: a node compromised through it must not get these.
NOT_ALLOWED = [
    ("create", "pods"),
    ("delete", "pods"),
    ("get", "secrets"),
    ("list", "secrets"),
    ("patch", "nodes"),
    ("delete", "nodes"),
    ("create", "network-attachment-definitions.k8s.cni.cncf.io"),
    ("delete", "customresourcedefinitions.apiextensions.k8s.io"),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
]


def load_config(tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch) -> NodeConfig:
    """The config as the daemon in the DaemonSet reads it (NODE_NAME from the downward API)."""
    monkeypatch.setenv("NODE_NAME", "h14deploy-node-1")
    path = tmp_path / "node.yaml"
    path.write_text(text)
    return load_node_config(path)


def container(ds: dict[str, Any], name: str, init: bool = False) -> dict[str, Any]:
    key = "initContainers" if init else "containers"
    found: dict[str, Any] = next(
        c for c in ds["spec"]["template"]["spec"][key] if c["name"] == name
    )
    return found


# -- the API server accepts them -----------------------------------------------------------


@pytest.fixture(scope="module")
def deploy_namespace(kube_cluster: KubeCluster) -> Iterator[str]:
    with node_identity(kube_cluster) as (namespace, _):
        yield namespace


def dry_run(cluster: KubeCluster, *args: str, stdin: str | None = None) -> Any:
    return cluster.kubectl(
        "apply", "--dry-run=server", "--validate=strict", *args, stdin=stdin, check=False
    )


@pytest.mark.parametrize("manifest", MANIFESTS, ids=[str(p.relative_to(DEPLOY)) for p in MANIFESTS])
def test_each_manifest_passes_a_server_side_dry_run(
    kube_cluster: KubeCluster, deploy_namespace: str, manifest: Path
) -> None:
    done = dry_run(kube_cluster, "-f", str(manifest))
    assert done.returncode == 0, done.stderr
    for doc in documents(manifest):
        assert doc["metadata"]["name"] in done.stdout and "(server dry run)" in done.stdout


def test_the_admins_command_applies_the_whole_directory(
    kube_cluster: KubeCluster, deploy_namespace: str
) -> None:
    done = dry_run(kube_cluster, "-R", "-f", str(DEPLOY))
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("(server dry run)") == sum(len(documents(p)) for p in MANIFESTS)


def test_the_dry_run_refuses_a_daemonset_with_a_misspelt_field(
    kube_cluster: KubeCluster, deploy_namespace: str
) -> None:
    # The check above can fail: a typo in the pod template is an error, not ignored.
    broken = daemonset()
    node = container(broken, "node")
    node["volumeMounts"][0]["mountPropogation"] = "HostToContainer"
    done = dry_run(kube_cluster, "-f", "-", stdin=json.dumps(broken))
    assert done.returncode != 0
    assert "mountPropogation" in done.stderr


def test_the_admins_apply_and_delete_work_on_a_cluster_without_multinic(
    kube_cluster: KubeCluster, tmp_path: Path
) -> None:
    """For real, in file order: the namespace must exist before what lives in it. A copy
    with names of this test's own, so the session's other users of deploy/ are not met."""
    token = secrets.token_hex(4)
    copy = tmp_path / "deploy"
    copy.mkdir()
    for manifest in DEPLOY.glob("*.yaml"):
        text = manifest.read_text().replace("multinic-system", f"h14deploy-system-{token}")
        (copy / manifest.name).write_text(text.replace("multinic-node", f"h14deploy-{token}"))
    namespace = f"h14deploy-system-{token}"
    try:
        applied = kube_cluster.kubectl("apply", "-f", str(copy), check=False)
        assert applied.returncode == 0, applied.stderr
        ds = kube_cluster.get_object("daemonset", f"h14deploy-{token}", namespace)
        assert ds["spec"]["template"]["spec"]["serviceAccountName"] == f"h14deploy-{token}"
        deleted = kube_cluster.kubectl("delete", "-f", str(copy), "--wait=true", check=False)
        assert deleted.returncode == 0, deleted.stderr
        assert kube_cluster.kubectl("get", "namespace", namespace, check=False).returncode != 0
        left = kube_cluster.kubectl("get", "clusterrole", f"h14deploy-{token}", check=False)
        assert left.returncode != 0
    finally:
        kube_cluster.kubectl("delete", "-f", str(copy), "--ignore-not-found", check=False)


# -- the service account may do what the daemon does ---------------------------------------


def service_account_user() -> str:
    namespace, name = service_account()
    return f"system:serviceaccount:{namespace}:{name}"


def can_i(cluster: KubeCluster, verb: str, resource: str) -> bool:
    done = cluster.kubectl(
        "auth", "can-i", verb, resource, f"--as={service_account_user()}", "-n", "default",
        check=False,
    )  # fmt: skip
    answer = done.stdout.strip()
    assert answer in ("yes", "no"), done.stderr
    return answer == "yes"


def test_the_service_account_may_make_every_request_the_daemon_makes(
    kube_cluster: KubeCluster, deploy_namespace: str
) -> None:
    refused = [f"{v} {r}" for v, r in DAEMON_REQUESTS if not can_i(kube_cluster, v, r)]
    assert refused == []


def test_the_service_account_gets_nothing_the_daemon_does_not_need(
    kube_cluster: KubeCluster, deploy_namespace: str
) -> None:
    allowed = [f"{v} {r}" for v, r in NOT_ALLOWED if can_i(kube_cluster, v, r)]
    assert allowed == []


# -- the config the DaemonSet runs ---------------------------------------------------------


def test_the_configmap_loads_through_the_daemons_own_loader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(tmp_path, node_yaml(), monkeypatch)
    assert config.podnet is not None
    assert config.podnet.node_name == "h14deploy-node-1"  # from NODE_NAME, one file per cluster
    assert dict(config.podnet.store or {}) == {"type": "kubernetes"}
    assert config.meta.kubeconfig is None  # the pod's service account
    assert config.ipam_reconcile is not None and config.ipam_reconcile.kubeconfig is None


def test_the_daemonset_reads_the_configmaps_key_at_the_path_it_is_mounted() -> None:
    ds = daemonset()
    node = container(ds, "node")
    config_path = PurePosixPath(node["command"][node["command"].index("--config") + 1])
    volumes = {v["name"]: v for v in ds["spec"]["template"]["spec"]["volumes"]}
    mount = next(m for m in node["volumeMounts"] if m["mountPath"] == str(config_path.parent))
    source = volumes[mount["name"]]["configMap"]["name"]
    assert source == the_one(CONFIG_FILE, "ConfigMap")["metadata"]["name"]
    assert config_path.name in the_one(CONFIG_FILE, "ConfigMap")["data"]
    assert node["command"][:2] == ["/usr/local/bin/multinic", "node"]


def host_paths(config: NodeConfig) -> dict[str, PurePosixPath]:
    """Every path on the host the daemon (or a delegate it runs) reads or writes."""
    paths = {
        "socketPath": config.daemon.socket_path.parent,
        "stateDir": config.state_dir,
        "confDir": config.meta.conf_dir,
        "cniConfigDir": config.daemon.cni_conf_dir,
        # CNI_NETNS of containerd and CRI-O; host-local's data of executed delegates.
        "pod network namespaces": PurePosixPath("/var/run/netns"),
        "CNI data": PurePosixPath("/var/lib/cni"),
    }
    paths.update({f"binDir[{n}]": PurePosixPath(d) for n, d in enumerate(config.bin_dirs)})
    if config.podnet is not None:
        paths["podnet.dataDir"] = PurePosixPath(config.podnet.data_dir)
    return {name: PurePosixPath(path) for name, path in paths.items()}


def unmounted(config: NodeConfig, ds: dict[str, Any]) -> list[str]:
    """The host paths the node container does not see at the same path as the host."""
    spec = ds["spec"]["template"]["spec"]
    host = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v}
    mounts = [
        PurePosixPath(m["mountPath"])
        for m in container(ds, "node")["volumeMounts"]
        if host.get(m["name"]) == m["mountPath"]  # the same path inside and out
    ]
    return [
        f"{name} {path}"
        for name, path in host_paths(config).items()
        if not any(path == m or m in path.parents for m in mounts)
    ]


def test_the_daemonset_mounts_every_host_path_the_config_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(tmp_path, node_yaml(), monkeypatch)
    assert unmounted(config, daemonset()) == []
    # ... and the check sees a path the manifests forgot.
    moved = load_config(tmp_path, node_yaml() + "stateDir: /srv/multinic\n", monkeypatch)
    assert unmounted(moved, daemonset()) == ["stateDir /srv/multinic"]


def test_pod_namespaces_made_after_the_daemon_started_are_visible_to_it() -> None:
    netns = next(
        m
        for m in container(daemonset(), "node")["volumeMounts"]
        if m["mountPath"] == "/var/run/netns"
    )
    assert netns.get("mountPropagation") in ("HostToContainer", "Bidirectional")


def test_the_init_container_installs_the_shim_into_the_bin_dir_the_config_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(tmp_path, node_yaml(), monkeypatch)
    ds = daemonset()
    init = container(ds, "install-shim", init=True)
    command = init["command"]
    assert command[:2] == ["/usr/local/bin/multinic", "install-plugins"]
    assert command[command.index("--only") + 1] == "multinic-shim"
    target = command[-1]
    assert PurePosixPath(target) == config.bin_dirs[0]
    host = {
        v["name"]: v.get("hostPath", {}).get("path")
        for v in ds["spec"]["template"]["spec"]["volumes"]
    }
    assert any(host[m["name"]] == m["mountPath"] == target for m in init["volumeMounts"])


def probe_target(probe: dict[str, Any]) -> tuple[str, int]:
    get = probe["httpGet"]
    return get["host"], int(get["port"])


def test_the_probes_ask_the_health_address_the_config_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(tmp_path, node_yaml(), monkeypatch)
    node = container(daemonset(), "node")
    address = (config.daemon.health_host, config.daemon.health_port)
    assert probe_target(node["readinessProbe"]) == address
    assert node["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert probe_target(node["livenessProbe"]) == address
    assert node["livenessProbe"]["httpGet"]["path"] == "/metrics"  # up, even before ready


def test_the_daemonset_runs_on_every_node_with_the_hosts_network() -> None:
    ds = daemonset()
    spec = ds["spec"]["template"]["spec"]
    assert spec["hostNetwork"] is True
    assert {"operator": "Exists"} in spec["tolerations"]
    assert container(ds, "node")["securityContext"]["privileged"] is True
    env = {e["name"]: e for e in container(ds, "node")["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert ds["spec"]["updateStrategy"]["type"] == "RollingUpdate"
    assert container(ds, "node")["resources"]["requests"]


def test_the_image_is_one_value_the_default_being_what_build_image_makes() -> None:
    ds = daemonset()
    images = {c["image"] for c in ds["spec"]["template"]["spec"]["containers"]}
    images |= {c["image"] for c in ds["spec"]["template"]["spec"]["initContainers"]}
    assert images == {f"localhost/multinic/node:{__version__}"}
    # One place to change it: a YAML anchor the other container refers to.
    lines = [line.split("#")[0].split() for line in DAEMONSET_FILE.read_text().splitlines()]
    values = [words[1:] for words in lines if words[:1] == ["image:"]]
    assert values == [["&image", f"localhost/multinic/node:{__version__}"], ["*image"]]
