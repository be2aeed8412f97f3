"""Network config lists for the reference plugins, shared by tests and benchmarks."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

Subnet = ipaddress.IPv4Network | ipaddress.IPv6Network


def host_local(data_dir: Path, *subnets: Subnet | str) -> dict[str, Any]:
    """The reference host-local IPAM: one range set per subnet (dual-stack when two)."""
    return {
        "type": "host-local",
        "ranges": [[{"subnet": str(s)}] for s in subnets],
        "dataDir": str(data_dir),
    }


def bridge_plugin(bridge: str, ipam: dict[str, Any]) -> dict[str, Any]:
    return {"type": "bridge", "bridge": bridge, "isGateway": True, "ipam": ipam}


def conflist(
    name: str, *plugins: dict[str, Any], versions: list[str] | None = None
) -> dict[str, Any]:
    """A list at 1.1.0, the newest version, which the reference plugins 1.10 speak."""
    obj: dict[str, Any] = {"cniVersion": "1.1.0", "name": name, "plugins": list(plugins)}
    if versions is not None:
        obj["cniVersions"] = versions
    return obj


def bridge_conflist(
    name: str,
    bridge: str,
    data_dir: Path,
    *subnets: Subnet | str,
    then: tuple[dict[str, Any], ...] = (),
) -> dict[str, Any]:
    """bridge with host-local on ``subnets``, followed by the plugins in ``then``."""
    return conflist(name, bridge_plugin(bridge, host_local(data_dir, *subnets)), *then)
