"""The primary network's part of the node config (the ``podnet`` mapping in node.yaml)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from multinic.cni.errors import InvalidConfigError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MODES = ("auto", "host-gw", "vxlan")
#: Outer IP (IPv4 20, IPv6 40) + UDP 8 + VXLAN 8 + inner Ethernet 14, by outer family.
VXLAN_OVERHEAD = {4: 50, 6: 70}

FIELDS = frozenset(
    {
        "nodeName",
        "cluster",
        "podBlock",
        "serviceBlock",
        "nodePrefix",
        "uplink",
        "mode",
        "bridge",
        "vxlanName",
        "vni",
        "vxlanPort",
        "store",
        "kubeconfig",
        "networkName",
        "dataDir",
        "resync",
    }
)


class PodNetConfig(NamedTuple):
    """One node's view of the primary network."""

    node_name: str
    #: Where the node list lives: the cluster store (standalone) or the API (``kubeconfig``).
    store: Mapping[str, Any] | None
    kubeconfig: Path | None
    pod_block: tuple[IPNetwork, ...]
    service_block: tuple[IPNetwork, ...]
    uplink: str
    cluster: str = "default"
    node_prefix: int = 24
    mode: str = "auto"
    bridge: str = "mnpod0"
    vxlan_name: str = "mnvx0"
    vni: int = 1
    vxlan_port: int = 4789
    network_name: str = "cluster"
    data_dir: Path = Path("/var/lib/multinic/podnet")
    #: Seconds between looks at the node list (the store has no watch; the API is polled too).
    resync: float = 1.0


def _bad(field: str, why: str) -> InvalidConfigError:
    return InvalidConfigError("invalid podnet config", f"{field}: {why}")


def _networks(obj: Mapping[str, Any], key: str, required: bool) -> tuple[IPNetwork, ...]:
    value = obj.get(key)
    if value is None:
        if required:
            raise _bad(key, "required")
        return ()
    items = value if isinstance(value, list) else [value]
    try:
        nets = tuple(ipaddress.ip_network(str(v), strict=True) for v in items)
    except ValueError as exc:
        raise _bad(key, str(exc)) from exc
    if not nets or len({n.version for n in nets}) != len(nets):
        raise _bad(key, "one prefix, or one IPv4 and one IPv6 prefix")
    return tuple(sorted(nets, key=lambda n: n.version))


def _name(obj: Mapping[str, Any], key: str, default: str | None = None, limit: int = 253) -> str:
    value = obj.get(key, default)
    if not isinstance(value, str) or not value or len(value) > limit or "/" in value:
        raise _bad(key, f"{value!r} is not a name")
    return value


def _int(obj: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = obj.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _bad(key, f"{value!r} is not {low}..{high}")
    return value


def _absolute(obj: Mapping[str, Any], key: str, default: str) -> Path:
    value = obj.get(key, default)
    if not isinstance(value, str) or not value.startswith("/") or "\0" in value:
        raise _bad(key, f"{value!r} is not an absolute path")
    return Path(value)


def parse_podnet_config(obj: object) -> PodNetConfig:
    """Check every field; code 7 naming the field on a bad value."""
    if not isinstance(obj, Mapping):
        raise InvalidConfigError("invalid podnet config", "it must be a mapping")
    unknown = sorted(set(obj) - FIELDS)
    if unknown:
        raise InvalidConfigError("invalid podnet config", f"unknown fields {unknown}")
    store, kubeconfig = obj.get("store"), obj.get("kubeconfig")
    if (store is None) == (kubeconfig is None):
        raise _bad("store", "give exactly one of 'store' (standalone) and 'kubeconfig'")
    if store is not None and not isinstance(store, Mapping):
        raise _bad("store", "must be a mapping like the multinic-ipam store")
    mode = obj.get("mode", "auto")
    if mode not in MODES:
        raise _bad("mode", f"{mode!r} is not one of {', '.join(MODES)}")
    resync = obj.get("resync", 1.0)
    if isinstance(resync, bool) or not isinstance(resync, int | float) or not 0 < resync <= 3600:
        raise _bad("resync", f"{resync!r} is not a number of seconds")
    return PodNetConfig(
        node_name=_name(obj, "nodeName"),
        store=store,
        kubeconfig=None if kubeconfig is None else _absolute(obj, "kubeconfig", ""),
        pod_block=_networks(obj, "podBlock", required=store is not None),
        service_block=_networks(obj, "serviceBlock", required=False),
        uplink=_name(obj, "uplink", limit=15),
        cluster=_name(obj, "cluster", "default"),
        node_prefix=_int(obj, "nodePrefix", 24, 8, 30),
        mode=mode,
        bridge=_name(obj, "bridge", "mnpod0", limit=15),
        vxlan_name=_name(obj, "vxlanName", "mnvx0", limit=15),
        vni=_int(obj, "vni", 1, 1, (1 << 24) - 1),
        vxlan_port=_int(obj, "vxlanPort", 4789, 1, 65535),
        network_name=_name(obj, "networkName", "cluster"),
        data_dir=_absolute(obj, "dataDir", "/var/lib/multinic/podnet"),
        resync=float(resync),
    )


def pod_mtu(uplink_mtu: int, mode: str, underlay_version: int) -> int:
    """The pods' MTU: the uplink's, less VXLAN's headers unless every peer is host-gw.

    Mode ``auto`` may reach some peers through VXLAN, and one MTU serves every
    pod of the node, so it pays the overhead too.
    """
    return uplink_mtu if mode == "host-gw" else uplink_mtu - VXLAN_OVERHEAD[underlay_version]
