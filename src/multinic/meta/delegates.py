"""From a selected network to its delegate: the conflist to run, and what may reach it.

A NetworkAttachmentDefinition's ``spec.config`` is a CNI config or conflist
(its ``name`` defaults to the NAD's, as Multus does); an empty one means the
network of that name in the CNI config dir. ``clusterNetwork`` and
``defaultNetworks`` name a network in the config dir, a file or directory
(anything with a '/'), or a NAD in ``multusNamespace``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from multinic.cni.conffiles import load_all, load_file, load_network
from multinic.cni.config import (
    NetworkConfigList,
    decode_json_object,
    parse_network_config,
    parse_network_config_list,
)
from multinic.cni.errors import CNIError, ConfigNotFoundError, NetworkNotFoundError
from multinic.kube.objects import KubeSource
from multinic.meta.annotations import NetworkSelection

#: Requests of the selection annotation, and the capability that carries each
#: into runtimeConfig (libcni passes a capability only to plugins declaring it).
CAPABILITIES = ("ips", "mac", "infinibandGUID", "deviceID", "portMappings", "bandwidth")


class Delegate(NamedTuple):
    """A network's config, resolved, and what to call it."""

    #: As the network-status annotation names it: ``namespace/name`` for a NAD,
    #: the conflist's own name for a network from the config dir or a file.
    network: str
    #: The NAD's namespace; "" for a network from the config dir or a file.
    namespace: str
    netlist: NetworkConfigList
    #: Where the config came from, for messages and records.
    source: str


def nad_delegate(source: KubeSource, namespace: str, name: str, conf_dir: Path) -> Delegate:
    """The delegate of NAD ``namespace/name``; NetworkNotFoundError when there is none."""
    delegate = find_nad_delegate(source, namespace, name, conf_dir)
    if delegate is None:
        raise NetworkNotFoundError(
            f"network {namespace}/{name} not found",
            f"no NetworkAttachmentDefinition {name!r} in namespace {namespace!r}",
        )
    return delegate


def find_nad_delegate(
    source: KubeSource, namespace: str, name: str, conf_dir: Path
) -> Delegate | None:
    config = source.get_network_config(namespace, name)
    if config is None:
        return None
    where = f"NetworkAttachmentDefinition {namespace}/{name}"
    if not config.strip():
        try:
            netlist = load_network(conf_dir, name)
        except ConfigNotFoundError as exc:
            raise NetworkNotFoundError(
                f"network {namespace}/{name}: its spec.config is empty and {conf_dir} has no "
                f"network named {name!r}",
                exc.details,
            ) from exc
        return Delegate(f"{namespace}/{name}", namespace, netlist, f"{where} -> {netlist.source}")
    netlist = _with_context(where, lambda: parse_nad_config(config, name))
    return Delegate(f"{namespace}/{name}", namespace, netlist, where)


def parse_nad_config(config: str, name: str) -> NetworkConfigList:
    """A NAD's spec.config: a conflist when it has ``plugins``, else a single config."""
    obj = decode_json_object(config, "spec.config")
    if not obj.get("name"):
        # As Multus (the NAD client's GetCNIConfigFromSpec): the network is named after the NAD.
        obj["name"] = name
        config = json.dumps(obj)
    if "plugins" in obj:
        return parse_network_config_list(config)
    return parse_network_config(config)


def reference_delegate(
    source: KubeSource, reference: str, multus_namespace: str, conf_dir: Path
) -> Delegate:
    """``clusterNetwork`` or one of ``defaultNetworks``: a path, a config-dir network, a NAD.

    A name is looked up in the config dir first, so the primary from a local
    file needs no API request and works while the API server is down.
    """
    if "/" in reference:
        return _path_delegate(conf_dir / reference)  # an absolute path stays as it is
    try:
        netlist = load_network(conf_dir, reference)
    except ConfigNotFoundError as exc:
        delegate = find_nad_delegate(source, multus_namespace, reference, conf_dir)
        if delegate is None:
            raise NetworkNotFoundError(
                f"network {reference!r} not found",
                f"no network of that name in {conf_dir} ({exc.details}) and no "
                f"NetworkAttachmentDefinition {reference!r} in namespace {multus_namespace!r}",
            ) from exc
        return delegate
    return Delegate(netlist.name, "", netlist, str(netlist.source))


def _path_delegate(path: Path) -> Delegate:
    if path.is_dir():
        networks, problems = load_all(path)
        if not networks:
            details = "; ".join(str(p) for p in problems) or "no network configurations in it"
            raise NetworkNotFoundError(f"no network in directory {path}", details)
        netlist = networks[0]
    elif path.exists():
        netlist = _with_context(str(path), lambda: load_file(path))
    else:
        raise NetworkNotFoundError(f"network file {path} not found", "no such file or directory")
    return Delegate(netlist.name, "", netlist, str(netlist.source))


def _with_context(where: str, parse: Callable[[], NetworkConfigList]) -> NetworkConfigList:
    """Run ``parse``; a CNI error it raises names ``where`` and keeps its code."""
    try:
        return parse()
    except CNIError as err:
        raise type(err)(f"{where}: {err.msg}", err.details, code=err.code) from err


def conflist_bytes(netlist: NetworkConfigList, cni_args: Mapping[str, Any] | None) -> bytes:
    """The exact conflist to run: as written when nothing was added to it.

    ``cni_args`` (the selection's ``cni-args``) go into every plugin's
    ``args.cni``, merged over what the config has, as Multus does.
    """
    plugins = [dict(p.raw) for p in netlist.plugins]
    inlined = netlist.raw.get("plugins")
    as_written = isinstance(inlined, list) and len(inlined) == len(plugins)
    if as_written and not cni_args and netlist.source_bytes:
        return netlist.source_bytes
    if cni_args:
        plugins = [_with_cni_args(p, cni_args) for p in plugins]
    return json.dumps({**netlist.raw, "plugins": plugins}).encode()


def _with_cni_args(plugin: dict[str, Any], cni_args: Mapping[str, Any]) -> dict[str, Any]:
    args = plugin.get("args")
    args = dict(args) if isinstance(args, dict) else {}
    cni = args.get("cni")
    args["cni"] = {**(cni if isinstance(cni, dict) else {}), **cni_args}
    return {**plugin, "args": args}


def requested_capabilities(selection: NetworkSelection | None) -> dict[str, Any]:
    """runtimeConfig the pod asks for, by capability name."""
    if selection is None:
        return {}
    requested: dict[str, Any] = {
        "ips": list(selection.ips),
        "mac": selection.mac,
        "infinibandGUID": selection.infiniband_guid,
        "deviceID": selection.device_id,
        "portMappings": [dict(m) for m in selection.port_mappings],
        "bandwidth": dict(selection.bandwidth) if selection.bandwidth else None,
    }
    return {key: value for key, value in requested.items() if value}


def declared_capabilities(netlist: NetworkConfigList) -> frozenset[str]:
    return frozenset().union(*(p.capabilities for p in netlist.plugins))
