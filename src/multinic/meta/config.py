"""The meta plugin's own configuration (field names as Multus', so its configs carry over).

Only the fields selection reads are parsed here; every one is documented in
docs/meta.md, with the Multus fields that are not supported and why.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from multinic.cni.conffiles import DEFAULT_CONFIG_DIR
from multinic.cni.config import decode_json_object
from multinic.cni.errors import InvalidConfigError
from multinic.kube.objects import namespace_problem

DEFAULT_SYSTEM_NAMESPACES = ("kube-system",)
DEFAULT_GLOBAL_NAMESPACES = ("default",)
DEFAULT_MULTUS_NAMESPACE = "kube-system"


class MetaConfig(NamedTuple):
    """What decides a pod's networks, besides the pod itself."""

    cluster_network: str
    default_networks: tuple[str, ...] = ()
    system_namespaces: tuple[str, ...] = DEFAULT_SYSTEM_NAMESPACES
    namespace_isolation: bool = False
    global_namespaces: tuple[str, ...] = DEFAULT_GLOBAL_NAMESPACES
    multus_namespace: str = DEFAULT_MULTUS_NAMESPACE
    conf_dir: Path = DEFAULT_CONFIG_DIR
    kubeconfig: Path | None = None
    objects_dir: Path | None = None


def parse_meta_config(data: bytes | str | Mapping[str, Any]) -> MetaConfig:
    """Parse and check the meta plugin's config; code 7 naming the field on a bad value."""
    obj = decode_json_object(data, "meta plugin config")
    if "delegates" in obj and "clusterNetwork" not in obj:
        raise InvalidConfigError(
            "invalid meta plugin config",
            "'delegates' is not supported: name the primary in 'clusterNetwork' (docs/meta.md)",
        )
    cluster_network = obj.get("clusterNetwork")
    if not isinstance(cluster_network, str) or not cluster_network.strip():
        raise InvalidConfigError("invalid meta plugin config", "'clusterNetwork' is required")
    return MetaConfig(
        cluster_network=cluster_network.strip(),
        default_networks=_strings(obj, "defaultNetworks", ()),
        system_namespaces=_strings(obj, "systemNamespaces", DEFAULT_SYSTEM_NAMESPACES),
        namespace_isolation=_flag(obj, "namespaceIsolation"),
        global_namespaces=_global_namespaces(obj),
        multus_namespace=_namespace(obj, "multusNamespace", DEFAULT_MULTUS_NAMESPACE),
        conf_dir=_path(obj, "confDir") or DEFAULT_CONFIG_DIR,
        kubeconfig=_path(obj, "kubeconfig"),
        objects_dir=_path(obj, "objectsDir"),
    )


def _strings(obj: Mapping[str, Any], key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = obj.get(key)
    if value is None:
        return default
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise InvalidConfigError(
            "invalid meta plugin config", f"{key!r} must be a list of non-empty strings"
        )
    return tuple(v.strip() for v in value)


def _global_namespaces(obj: Mapping[str, Any]) -> tuple[str, ...]:
    # Multus writes a comma-separated string; a list is accepted too.
    value = obj.get("globalNamespaces")
    if isinstance(value, str):
        names = tuple(n.strip() for n in value.split(",") if n.strip())
    else:
        names = _strings(obj, "globalNamespaces", DEFAULT_GLOBAL_NAMESPACES)
    for name in names:
        problem = namespace_problem(name)
        if problem:
            raise InvalidConfigError(
                "invalid meta plugin config", f"globalNamespaces: {name!r} is {problem}"
            )
    return names


def _namespace(obj: Mapping[str, Any], key: str, default: str) -> str:
    value = obj.get(key, default)
    problem = namespace_problem(value) if isinstance(value, str) else "not a string"
    if problem:
        raise InvalidConfigError("invalid meta plugin config", f"{key}: {value!r} is {problem}")
    return str(value)


def _flag(obj: Mapping[str, Any], key: str) -> bool:
    value = obj.get(key, False)
    if not isinstance(value, bool):
        raise InvalidConfigError("invalid meta plugin config", f"{key!r} must be true or false")
    return value


def _path(obj: Mapping[str, Any], key: str) -> Path | None:
    value = obj.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidConfigError("invalid meta plugin config", f"{key!r} must be a path")
    return Path(value)
