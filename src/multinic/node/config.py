"""The node daemon's config file: the meta plugin's fields plus the daemon's own.

One flat YAML (or JSON) object, like Multus' daemon config, so a Multus
config's network fields carry over: ``clusterNetwork``, ``defaultNetworks``,
``kubeconfig`` or ``objectsDir``, ... (docs/meta.md) and the daemon fields
below (docs/node.md). Unknown fields are refused: a typo must not silently
leave a default in place.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from multinic.cni.errors import InvalidConfigError
from multinic.cni.version import SUPPORTED_VERSIONS
from multinic.meta.config import MetaConfig, parse_meta_config
from multinic.meta.records import DEFAULT_STATE_DIR
from multinic.node.daemon import DaemonSettings
from multinic.node.ipam_reconciler import ReconcileSettings
from multinic.podnet.config import PodNetConfig, parse_podnet_config

META_FIELDS = frozenset(
    {
        "clusterNetwork",
        "defaultNetworks",
        "systemNamespaces",
        "namespaceIsolation",
        "globalNamespaces",
        "multusNamespace",
        "confDir",
        "kubeconfig",
        "objectsDir",
    }
)
DAEMON_FIELDS = frozenset(
    {
        "socketPath",
        "cniConfigDir",
        "conflistName",
        "networkName",
        "cniVersion",
        "readinessindicatorfile",
        "healthAddress",
        "workers",
        "stateDir",
        "binDir",
        "podnet",
        "ipamReconcile",
    }
)
DEFAULT_BIN_DIR = Path("/opt/cni/bin")
#: Where ``podnet.nodeName`` comes from when the file leaves it out: one ConfigMap
#: serves every node of a DaemonSet, whose downward API sets this variable per pod.
NODE_NAME_VARIABLE = "NODE_NAME"


class NodeConfig(NamedTuple):
    meta: MetaConfig
    daemon: DaemonSettings
    state_dir: Path
    bin_dirs: tuple[Path, ...]
    #: The primary network this daemon runs (docs/podnet.md); None: another CNI's.
    podnet: PodNetConfig | None = None
    #: the periodic IPAM reconciler (multinic-ipam's Kubernetes store); None: not run
    ipam_reconcile: ReconcileSettings | None = None


def load_node_config(path: Path) -> NodeConfig:
    """Read and check the config file; code 7 naming the field on a bad value."""
    try:
        obj = yaml.safe_load(path.read_bytes())
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidConfigError(f"cannot read node config {path}", str(exc)) from exc
    if not isinstance(obj, dict):
        raise InvalidConfigError(f"invalid node config {path}", "it must be a mapping")
    unknown = sorted(set(obj) - META_FIELDS - DAEMON_FIELDS)
    if unknown:
        raise InvalidConfigError(f"invalid node config {path}", f"unknown fields {unknown}")
    return parse_node_config(obj)


def parse_node_config(obj: Mapping[str, Any]) -> NodeConfig:
    meta = parse_meta_config({k: v for k, v in obj.items() if k in META_FIELDS})
    defaults = DaemonSettings()
    host, port = _address(obj.get("healthAddress"), defaults)
    daemon = DaemonSettings(
        socket_path=_path(obj, "socketPath") or defaults.socket_path,
        cni_conf_dir=_path(obj, "cniConfigDir") or meta.conf_dir,
        conflist_name=_text(obj, "conflistName", defaults.conflist_name),
        network_name=_text(obj, "networkName", defaults.network_name),
        cni_version=_cni_version(obj.get("cniVersion", defaults.cni_version)),
        readiness_indicator_file=_path(obj, "readinessindicatorfile"),
        health_host=host,
        health_port=port,
        workers=_workers(obj.get("workers", defaults.workers)),
    )
    bin_dirs = obj.get("binDir", str(DEFAULT_BIN_DIR))
    dirs = bin_dirs if isinstance(bin_dirs, list) else [bin_dirs]
    return NodeConfig(
        meta,
        daemon,
        _path(obj, "stateDir") or DEFAULT_STATE_DIR,
        tuple(_absolute(d, "binDir") for d in dirs),
        _podnet(obj.get("podnet")),
        _reconcile(obj.get("ipamReconcile"), meta.kubeconfig),
    )


def _podnet(value: object) -> PodNetConfig | None:
    """The ``podnet`` section; without ``nodeName``, the node's name is $NODE_NAME."""
    if value is None:
        return None
    if isinstance(value, Mapping) and "nodeName" not in value:
        node_name = os.environ.get(NODE_NAME_VARIABLE)
        if not node_name:
            raise InvalidConfigError(
                "invalid podnet config",
                f"nodeName: required (or the {NODE_NAME_VARIABLE} environment variable)",
            )
        value = {**value, "nodeName": node_name}
    return parse_podnet_config(value)


def _reconcile(value: object, kubeconfig: Path | None) -> ReconcileSettings | None:
    """``ipamReconcile: {kubeconfig, scope, interval, grace}``; the kubeconfig defaults
    to the daemon's own."""
    if value is None or value is False:
        return None
    if value is True:
        value = {}
    if not isinstance(value, dict):
        raise InvalidConfigError("invalid node config", "ipamReconcile must be a mapping")
    unknown = sorted(set(value) - {"kubeconfig", "scope", "interval", "grace"})
    if unknown:
        raise InvalidConfigError("invalid node config", f"ipamReconcile: unknown fields {unknown}")
    own = _path(value, "kubeconfig")
    chosen = own or kubeconfig
    defaults = ReconcileSettings()
    scope = value.get("scope", "")
    if not isinstance(scope, str):
        raise InvalidConfigError("invalid node config", "ipamReconcile.scope must be a string")
    return ReconcileSettings(
        kubeconfig=None if chosen is None else str(chosen),
        scope=scope,
        interval=_positive(value, "interval", defaults.interval),
        grace=_positive(value, "grace", defaults.grace),
    )


def _positive(obj: Mapping[str, Any], key: str, default: float) -> float:
    value = obj.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1e9:
        raise InvalidConfigError(
            "invalid node config", f"ipamReconcile.{key}: {value!r} is not a number of seconds"
        )
    return float(value)


def _path(obj: Mapping[str, Any], key: str) -> Path | None:
    value = obj.get(key)
    return None if value is None else _absolute(value, key)


def _absolute(value: object, key: str) -> Path:
    if not isinstance(value, str) or not value.startswith("/") or "\0" in value:
        raise InvalidConfigError("invalid node config", f"{key}: {value!r} is not an absolute path")
    return Path(value)


def _text(obj: Mapping[str, Any], key: str, default: str) -> str:
    value = obj.get(key, default)
    if not isinstance(value, str) or not value or "/" in value:
        raise InvalidConfigError("invalid node config", f"{key}: {value!r} is not a file name")
    return value


def _cni_version(value: object) -> str:
    if value not in SUPPORTED_VERSIONS:
        raise InvalidConfigError(
            "invalid node config", f"cniVersion: {value!r} is not one of {list(SUPPORTED_VERSIONS)}"
        )
    return str(value)


def _workers(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1024:
        raise InvalidConfigError("invalid node config", f"workers: {value!r} is not 1..1024")
    return value


def _address(value: object, defaults: DaemonSettings) -> tuple[str, int]:
    if value is None:
        return defaults.health_host, defaults.health_port
    host, _, port = str(value).rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise InvalidConfigError(
            "invalid node config", f"healthAddress: {value!r} is not HOST:PORT"
        )
    return host, int(port)
