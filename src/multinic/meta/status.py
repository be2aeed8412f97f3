"""The pod's ``k8s.v1.cni.cncf.io/network-status`` entries, from the delegates' results.

The Network Plumbing WG's format: one object per attachment with ``name``,
``interface``, ``ips`` (addresses without prefix length), ``mac``, ``default``,
``dns`` and ``gateway``, in the order the attachments were made.
"""

from __future__ import annotations

from typing import Any

from multinic.cni.types import Result
from multinic.meta.records import PodAttachment

STATUS_ANNOTATION = "k8s.v1.cni.cncf.io/network-status"


def status_entry(delegate: PodAttachment, result: Result) -> dict[str, Any]:
    """The network-status object of one attachment."""
    index = _pod_interface(delegate.ifname, result)
    ips = [ip for ip in result.ips if ip.interface is None or ip.interface == index]
    entry: dict[str, Any] = {
        "name": delegate.name,
        "interface": delegate.ifname,
        "ips": [str(ip.address.ip) for ip in ips],
        "mac": result.interfaces[index].mac if index is not None else "",
        "default": delegate.default,
        "dns": result.to_dict().get("dns", {}),
    }
    gateways = [str(ip.gateway) for ip in ips if ip.gateway is not None]
    if gateways:
        entry["gateway"] = gateways
    return entry


def _pod_interface(ifname: str, result: Result) -> int | None:
    """The index of the pod's interface in the result (the one with a sandbox)."""
    for index, interface in enumerate(result.interfaces):
        if interface.name == ifname and interface.sandbox:
            return index
    return None
