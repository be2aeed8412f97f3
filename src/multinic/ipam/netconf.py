"""IPAM config fields every IPAM plugin shares: routes, DNS, resolv.conf, requested IPs.

Requested addresses come, as in the reference plugins, from three places, in
this order: ``IP=`` in CNI_ARGS (one address, or several comma-separated as
Whereabouts and static take them), ``args.cni.ips`` in the config, and the
``ips`` capability (``runtimeConfig.ips``). Each may carry a prefix length
("10.0.0.5/24"), which only the static plugin uses.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from multinic.cni.args import CniArgs
from multinic.cni.config import NetConf
from multinic.cni.errors import InvalidConfigError, InvalidEnvironmentError
from multinic.cni.types import DNS, Route
from multinic.ipam.ranges import IPAddress, IPInterface
from multinic.records import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any


def ipam_section(config: NetConf) -> Mapping[str, Any]:
    ipam = config.ipam
    if ipam is None:
        raise InvalidConfigError("IPAM config missing 'ipam' key")
    return ipam


def parse_routes(raw: object, where: str) -> tuple[Route, ...]:
    """``[{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}, ...]``; a missing list is no routes."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise InvalidConfigError("invalid IPAM config", f"{where} must be a list")
    routes = []
    for n, item in enumerate(raw):
        here = f"{where}[{n}]"
        if not isinstance(item, dict):
            raise InvalidConfigError("invalid IPAM config", f"{here} must be an object")
        dst_text = item.get("dst")
        if not isinstance(dst_text, str) or "/" not in dst_text:
            raise InvalidConfigError("invalid IPAM config", f"{here}.dst must be a CIDR")
        try:
            dst = ipaddress.ip_network(dst_text, strict=False)
        except ValueError as exc:
            raise InvalidConfigError("invalid IPAM config", f"{here}.dst: {exc}") from exc
        gw = None
        if item.get("gw"):
            gw = _address(item["gw"], f"{here}.gw")
            if gw.version != dst.version:
                raise InvalidConfigError(
                    "invalid IPAM config", f"{here}.gw is not IPv{dst.version}"
                )
        routes.append(Route(dst, gw))
    return tuple(routes)


def parse_dns(raw: object, where: str) -> DNS:
    """``{"nameservers": [...], "domain": "", "search": [...], "options": [...]}``."""
    if raw is None:
        return DNS()
    if not isinstance(raw, dict):
        raise InvalidConfigError("invalid IPAM config", f"{where} must be an object")
    lists = {}
    for key in ("nameservers", "search", "options"):
        value = raw.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidConfigError("invalid IPAM config", f"{where}.{key} must be strings")
        lists[key] = tuple(value)
    domain = raw.get("domain") or ""
    if not isinstance(domain, str):
        raise InvalidConfigError("invalid IPAM config", f"{where}.domain must be a string")
    return DNS(lists["nameservers"], domain, lists["search"], lists["options"])


def read_resolv_conf(path: str) -> DNS:
    """A resolv.conf's nameserver, domain, search and options lines, as host-local reads it."""
    try:
        with open(path, encoding="utf-8") as src:
            lines = src.read().splitlines()
    except OSError as exc:
        raise InvalidConfigError("cannot read resolvConf", f"{path}: {exc}") from exc
    nameservers: list[str] = []
    search: list[str] = []
    options: list[str] = []
    domain = ""
    for line in lines:
        words = line.split()
        if not words or words[0][0] in "#;":
            continue
        key, values = words[0], words[1:]
        if key == "nameserver" and values:
            nameservers.append(values[0])
        elif key == "domain" and values:
            domain = values[0]
        elif key == "search":
            search = values  # the last search line wins, as in the resolver
        elif key == "options":
            options.extend(values)
    return DNS(tuple(nameservers), domain, tuple(search), tuple(options))


def requested_ips(config: NetConf, args: CniArgs) -> tuple[IPInterface | IPAddress, ...]:
    """Addresses the runtime asked for, in order, without repeats."""
    found: list[IPInterface | IPAddress] = []
    for key, value in args:
        if key.upper() == "IP":
            for item in value.split(","):
                if item.strip():
                    found.append(_requested(item, "CNI_ARGS IP", environment=True))
    cni_args = config.raw.get("args")
    section = cni_args.get("cni") if isinstance(cni_args, dict) else None
    if isinstance(section, dict) and section.get("ips") is not None:
        found.extend(_requested_list(section["ips"], "args.cni.ips"))
    if config.runtime_config.get("ips") is not None:
        found.extend(_requested_list(config.runtime_config["ips"], "runtimeConfig.ips"))
    unique: list[IPInterface | IPAddress] = []
    for ip in found:
        if ip not in unique:
            unique.append(ip)
    return tuple(unique)


def plain_address(item: IPInterface | IPAddress) -> IPAddress:
    return item.ip if isinstance(item, ipaddress.IPv4Interface | ipaddress.IPv6Interface) else item


def _requested_list(raw: object, where: str) -> list[IPInterface | IPAddress]:
    if not isinstance(raw, list):
        raise InvalidConfigError("invalid requested IPs", f"{where} must be a list of strings")
    return [_requested(item, f"{where}[{n}]") for n, item in enumerate(raw)]


def _requested(text: object, where: str, *, environment: bool = False) -> IPInterface | IPAddress:
    error = InvalidEnvironmentError if environment else InvalidConfigError
    if not isinstance(text, str):
        raise error("invalid requested IP", f"{where} must be a string")
    try:
        if "/" in text:
            return ipaddress.ip_interface(text.strip())
        return ipaddress.ip_address(text.strip())
    except ValueError as exc:
        raise error("invalid requested IP", f"{where}: {text!r} is not an IP address") from exc


def _address(text: object, where: str) -> IPAddress:
    if not isinstance(text, str):
        raise InvalidConfigError("invalid IPAM config", f"{where} must be an address string")
    try:
        return ipaddress.ip_address(text)
    except ValueError as exc:
        raise InvalidConfigError("invalid IPAM config", f"{where}: {text!r}") from exc
