"""The veth pair bridge and ptp give a pod: the host end named like the reference's.

The reference names the host end ``veth`` + 8 random hex digits
(``ip.RandomVethName``) and retries on a name clash; so do we. The pod end is
created directly in the pod's namespace under CNI_IFNAME, so a taken name there
fails before anything exists.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping

from multinic.cni.errors import InvalidConfigError, UnsupportedFieldError
from multinic.cni.skel import Request
from multinic.cni.types import Interface
from multinic.dataplane import (
    DataplaneError,
    Link,
    LinkExistsError,
    Netns,
    NetnsNotFoundError,
    create_veth,
    delete_link,
    open_netns,
)
from multinic.dataplane.links import mac_bytes
from multinic.records import NamedTuple

_NAME_ATTEMPTS = 5


class VethPair(NamedTuple):
    """The two ends of a pod's veth pair, as created."""

    host: Link
    pod: Link


def random_veth_name() -> str:
    """``veth`` and 8 random hex digits, as the reference's host ends."""
    return "veth" + os.urandom(4).hex()


def create_pod_veth(
    host: Netns, pod: Netns, ifname: str, *, mtu: int | None, mac: str | None = None
) -> VethPair:
    """A veth pair: a randomly named host end, ``ifname`` in the pod (MTU on both ends)."""
    for attempt in range(_NAME_ATTEMPTS):
        host_name = random_veth_name()
        try:
            host_end, pod_end = create_veth(
                host, host_name, ifname, peer_ns=pod, mtu=mtu, peer_mac=mac
            )
        except LinkExistsError as exc:
            # Only the host name is ours to change; the pod's name taken is the caller's error.
            if exc.netns == pod.name or attempt == _NAME_ATTEMPTS - 1:
                raise
            continue
        return VethPair(host_end, pod_end)
    raise AssertionError("unreachable")


def requested_mac(request: Request) -> str | None:
    """The pod MAC asked for, as the reference bridge reads it.

    ``MAC=`` in CNI_ARGS, overridden by ``args.cni.mac``, overridden by
    ``runtimeConfig.mac`` (the ``mac`` capability).
    """
    mac = next((value for key, value in request.args if key == "MAC"), None)
    args = request.config.raw.get("args")
    cni_args = args.get("cni") if isinstance(args, Mapping) else None
    for source, where in (
        (cni_args, "args.cni.mac"),
        (request.config.runtime_config, "runtimeConfig.mac"),
    ):
        value = source.get("mac") if isinstance(source, Mapping) else None
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise InvalidConfigError(f"{where} must be a string, not {type(value).__name__}")
        mac = value
    if not mac:
        return None
    try:
        mac_bytes(mac)
    except DataplaneError as exc:
        raise InvalidConfigError(f"{request.config.type}: invalid MAC address {mac!r}") from exc
    return mac.lower()


def interface_of(link: Link, sandbox: str = "") -> Interface:
    """A result interface for ``link`` (in the pod when ``sandbox`` names its netns)."""
    return Interface(link.name, mac=link.mac or "", sandbox=sandbox)


def delete_pod_link(netns_path: str, ifname: str) -> bool:
    """Delete the pod's ``ifname`` (its veth peer goes too); True if it was there.

    A pod namespace that is already gone is not an error: its links went with it.
    """
    if not netns_path:
        return False
    try:
        pod = open_netns(netns_path)
    except NetnsNotFoundError:
        return False
    with pod:
        return delete_link(pod, ifname, missing_ok=True)


def delete_unreadable(request: Request) -> None:
    """DEL when the plugin cannot read its config: remove what is found by name.

    A config broken from the start made no ADD succeed, and one broken since (a
    runtime without a cached config) must not leave the pod stuck in DEL: the
    pod's link goes (its host end with it), IPAM is asked to release (if it
    cannot read the config either, GC reclaims the address later; any other
    IPAM failure, such as an unreachable store, is returned so DEL is retried),
    and this attachment's nftables rules go by their tag.
    """
    from multinic.plugins import masq  # the rarely taken path pays for its import
    from multinic.plugins.delegate import ipam_del
    from multinic.plugins.nftables import Tag

    delete_pod_link(request.netns, request.ifname)
    ipam = request.config.ipam
    if ipam is not None and isinstance(ipam.get("type"), str):
        with contextlib.suppress(InvalidConfigError, UnsupportedFieldError):
            ipam_del(request)
    tag = Tag(request.config.name, request.container_id, request.ifname)
    masq.teardown_masq(tag)
    masq.teardown_spoofcheck(tag)
