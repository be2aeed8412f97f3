"""The fabric file (YAML) into the model, with errors that name the field's path.

Unknown fields are errors: a typo must not silently fall back to a default.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from ipaddress import ip_network
from pathlib import Path
from typing import Any

from multinic.plan import yamlfile
from multinic.plan.errors import FabricError
from multinic.plan.model import (
    DEFAULT_VNICS,
    LINK_MODES,
    NODE_POD_PREFIX_RANGE,
    Block,
    BlockKind,
    Cluster,
    Fabric,
    Interfaces,
    IpamScope,
    IPNetwork,
    LinkKind,
    SecondaryNetwork,
)

#: A block written as a bare address gets these sizes (the seed: Pod /11, Multus /16).
DEFAULT_BLOCK_PREFIX = {
    BlockKind.NODE: {4: 16, 6: 56},
    BlockKind.POD: {4: 11, 6: 48},
    BlockKind.SERVICE: {4: 10, 6: 96},
    BlockKind.MULTUS: {4: 16, 6: 64},
}

#: The seed: service space from RFC 6598 (shared address space, CGN).
DEFAULT_SERVICE_BLOCK = "100.64.0.0/10"

#: Service CIDR per cluster: 1024 IPv4 clusters fit the CGN /10, each with 4094 services.
DEFAULT_SERVICE_PREFIX = {4: 20, 6: 112}
DEFAULT_NODE_POD_PREFIX = {4: 24, 6: 64}
#: kubelet's default --max-pods.
DEFAULT_PODS_PER_NODE = 110

#: Largest values taken, by field: beyond them a number is a typo, not a plan
#: (Kubernetes documents 5000 nodes per cluster; a VM has 10 vNICs; the Multus
#: block is a /16). Their arithmetic would otherwise make prefixes like /-95.
LIMITS = {
    "expected": 65536,
    "max": 65536,
    "pods_per_node": 65536,
    "vnics": 4096,
    "expected_addresses": 1 << 32,
}

NAME_RE = re.compile(r"[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?")
BITS = {4: 32, 6: 128}


def load_fabric(path: Path) -> Fabric:
    """Read and check a fabric file."""
    return parse_fabric(yamlfile.load(yamlfile.read_text(path), path))


def parse_fabric(doc: object) -> Fabric:
    """Check a decoded fabric document and build the model."""
    top = _mapping(doc, "fabric file")
    _known(top, "", {"fabric", "blocks", "routable", "in_use", "defaults", "clusters"})
    blocks = _mapping(top.get("blocks"), "blocks")
    _known(blocks, "blocks", {k.value for k in BlockKind})
    defaults = _mapping(top.get("defaults", {}), "defaults")
    _known(defaults, "defaults", {"node_pod_prefix", "service_prefix", "pods_per_node", "vnics"})
    node_pod = {**DEFAULT_NODE_POD_PREFIX, **_sizes(defaults, "node_pod_prefix", "defaults")}
    for version, length in node_pod.items():
        low, high = NODE_POD_PREFIX_RANGE[version]
        if not low <= length <= high:
            raise FabricError(
                f"defaults.node_pod_prefix: IPv{version} /{length} is outside /{low}../{high} "
                "(Antrea nodeCIDRMaskSize)"
            )
    clusters = _list(top.get("clusters", []), "clusters")
    fabric = Fabric(
        name=_name(top, "fabric", ""),
        node=_block(blocks, BlockKind.NODE),
        pod=_block(blocks, BlockKind.POD),
        service=_block(blocks, BlockKind.SERVICE, DEFAULT_SERVICE_BLOCK),
        multus=_block(blocks, BlockKind.MULTUS),
        routable=_prefix_list(top.get("routable", []), "routable"),
        in_use=_prefix_list(top.get("in_use", []), "in_use"),
        node_pod_prefix=node_pod,
        service_prefix={**DEFAULT_SERVICE_PREFIX, **_sizes(defaults, "service_prefix", "defaults")},
        clusters=tuple(_cluster(c, f"clusters[{i}]", defaults) for i, c in enumerate(clusters)),
    )
    _unique([c.name for c in fabric.clusters], "clusters", "cluster name")
    return fabric


def _cluster(value: object, path: str, defaults: Mapping[str, Any]) -> Cluster:
    obj = _mapping(value, path)
    _known(
        obj,
        path,
        {"name", "nodes", "fixed_size", "pods_per_node", "interfaces", "networks"}
        | {"node_prefix", "service_prefix"},
    )
    expected, maximum = _nodes(obj.get("nodes"), f"{path}.nodes")
    networks = _list(obj.get("networks", []), f"{path}.networks")
    cluster = Cluster(
        name=_name(obj, "name", path),
        expected_nodes=expected,
        max_nodes=maximum,
        fixed_size=_bool(obj, "fixed_size", path, default=False),
        pods_per_node=_int(
            obj,
            "pods_per_node",
            path,
            _int(defaults, "pods_per_node", "defaults", DEFAULT_PODS_PER_NODE),
        ),
        interfaces=_interfaces(obj.get("interfaces"), f"{path}.interfaces", defaults),
        networks=tuple(_network(n, f"{path}.networks[{i}]") for i, n in enumerate(networks)),
        node_prefix=_sizes(obj, "node_prefix", path),
        service_prefix=_sizes(obj, "service_prefix", path),
    )
    _unique([n.name for n in cluster.networks], f"{path}.networks", "network name")
    return cluster


def _nodes(value: object, path: str) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        obj: Mapping[str, Any] = {"expected": value}
    else:
        obj = _mapping(value, path)
    _known(obj, path, {"expected", "max"})
    expected = _int(obj, "expected", path)
    maximum = _int(obj, "max", path, expected)
    if maximum < expected:
        raise FabricError(f"{path}.max: {maximum} is less than expected ({expected})")
    return expected, maximum


def _interfaces(value: object, path: str, defaults: Mapping[str, Any]) -> Interfaces:
    obj = _mapping(value, path)
    _known(obj, path, {"management", "data_plane", "vnics"})
    data_plane = tuple(
        _text(v, f"{path}.data_plane[{i}]")
        for i, v in enumerate(_list(obj.get("data_plane", []), f"{path}.data_plane"))
    )
    _unique(data_plane, f"{path}.data_plane", "interface")
    vnics = _int(defaults, "vnics", "defaults", DEFAULT_VNICS)
    return Interfaces(
        management=_text(obj.get("management"), f"{path}.management"),
        data_plane=data_plane,
        vnics=_int(obj, "vnics", path, vnics),
    )


def _network(value: object, path: str) -> SecondaryNetwork:
    obj = _mapping(value, path)
    _known(obj, path, {"name", "master", "type", "mode", "expected_addresses", "ipam", "prefix"})
    kind = _choice(obj, "type", path, [k.value for k in LinkKind], LinkKind.IPVLAN.value)
    link = LinkKind(kind)
    modes = LINK_MODES[link]
    return SecondaryNetwork(
        name=_name(obj, "name", path),
        master=_text(obj.get("master"), f"{path}.master"),
        kind=link,
        mode=_choice(obj, "mode", path, list(modes), modes[0]),
        expected_addresses=_int(obj, "expected_addresses", path),
        ipam=IpamScope(
            _choice(obj, "ipam", path, [s.value for s in IpamScope], IpamScope.PER_NODE.value)
        ),
        prefix=_sizes(obj, "prefix", path),
    )


def _block(blocks: Mapping[str, Any], kind: BlockKind, default: str | None = None) -> Block:
    path = f"blocks.{kind}"
    value = blocks.get(kind.value, default)
    if value is None:
        raise FabricError(f"{path}: required (a prefix, or a list of one IPv4 and one IPv6)")
    items = value if isinstance(value, list) else [value]
    if not 1 <= len(items) <= 2:
        raise FabricError(f"{path}: give one prefix per IP family (one or two)")
    prefixes = tuple(
        _prefix(v, f"{path}[{i}]" if isinstance(value, list) else path, DEFAULT_BLOCK_PREFIX[kind])
        for i, v in enumerate(items)
    )
    if len({p.version for p in prefixes}) != len(prefixes):
        raise FabricError(f"{path}: two prefixes of the same IP family")
    return Block(kind, tuple(sorted(prefixes, key=lambda p: p.version)))


def _prefix(value: object, path: str, default_length: Mapping[int, int] | None = None) -> IPNetwork:
    text = _text(value, path)
    try:
        if "/" not in text and default_length is not None:
            version = ip_network(text).version
            text = f"{text}/{default_length[version]}"
        return ip_network(text, strict=True)
    except ValueError as exc:
        raise FabricError(f"{path}: {exc}") from exc


def _prefix_list(value: object, path: str) -> tuple[IPNetwork, ...]:
    return tuple(_prefix(v, f"{path}[{i}]") for i, v in enumerate(_list(value, path)))


def _sizes(obj: Mapping[str, Any], key: str, path: str) -> dict[int, int]:
    """A prefix length: ``24`` or ``/24`` (IPv4), or ``{ipv4: 24, ipv6: 64}``."""
    value = obj.get(key)
    where = f"{path}.{key}" if path else key
    if value is None:
        return {}
    pairs = value.items() if isinstance(value, dict) else [("ipv4", value)]
    sizes: dict[int, int] = {}
    for family, length in pairs:
        version = {"ipv4": 4, "ipv6": 6}.get(str(family))
        if version is None:
            raise FabricError(f"{where}: unknown family {family!r} (ipv4 or ipv6)")
        sizes[version] = _length(length, f"{where}.{family}" if isinstance(value, dict) else where)
        if not 1 <= sizes[version] <= BITS[version]:
            raise FabricError(f"{where}: /{sizes[version]} is not an IPv{version} prefix length")
    return sizes


def _length(value: object, path: str) -> int:
    text = str(value).removeprefix("/")
    # ASCII digits only: str.isdigit() is also true of "²", which int() refuses.
    if isinstance(value, bool) or not (text.isascii() and text.isdigit()) or len(text) > 3:
        raise FabricError(f"{path}: expected a prefix length like 24 or /24, got {_short(value)}")
    return int(text)


def _mapping(value: object, path: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise FabricError(f"{path}: expected a mapping, got {_kind(value)}")
    return value


def _list(value: object, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise FabricError(f"{path}: expected a list, got {_kind(value)}")
    return value


def _text(value: object, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise FabricError(f"{path}: expected a non-empty string, got {_kind(value)}")
    return value


def _name(obj: Mapping[str, Any], key: str, path: str) -> str:
    where = f"{path}.{key}" if path else key
    name = _text(obj.get(key), where)
    if not NAME_RE.fullmatch(name):
        raise FabricError(f"{where}: {name!r} is not a DNS label (lower case, digits, '-', '.')")
    return name


def _int(obj: Mapping[str, Any], key: str, path: str, default: int | None = None) -> int:
    value = obj.get(key, default)
    where = f"{path}.{key}"
    if value is None:
        raise FabricError(f"{where}: required")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise FabricError(f"{where}: expected a positive integer, got {_short(value)}")
    limit = LIMITS.get(key)
    if limit is not None and value > limit:
        raise FabricError(
            f"{where}: {_short(value)} is more than any fabric needs (at most {limit})"
        )
    return value


def _short(value: object) -> str:
    # A 38-digit typo is shown by its size, not printed in full.
    text = repr(value)
    return text if len(text) <= 24 else f"{text[:12]}… ({len(text)} characters)"


def _bool(obj: Mapping[str, Any], key: str, path: str, *, default: bool) -> bool:
    value = obj.get(key, default)
    if not isinstance(value, bool):
        raise FabricError(f"{path}.{key}: expected true or false, got {value!r}")
    return value


def _choice(obj: Mapping[str, Any], key: str, path: str, allowed: list[str], default: str) -> str:
    value = obj.get(key, default)
    if value not in allowed:
        raise FabricError(f"{path}.{key}: {value!r} is not one of {', '.join(allowed)}")
    return str(value)


def _known(obj: Mapping[str, Any], path: str, known: set[str]) -> None:
    unknown = sorted(set(obj) - known, key=str)
    if unknown:
        where = f"{path}: " if path else ""
        raise FabricError(
            f"{where}unknown field {unknown[0]!r} (known: {', '.join(sorted(known))})"
        )


def _unique(names: list[str] | tuple[str, ...], path: str, what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise FabricError(f"{path}: {what} {name!r} appears twice")
        seen.add(name)


def _kind(value: object) -> str:
    return "nothing" if value is None else type(value).__name__
