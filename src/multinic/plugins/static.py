"""``multinic-static``: the addresses the config (or the runtime) names, nothing allocated.

Fields as the reference ``static`` plugin: ``addresses`` (``address`` in CIDR
form, optional ``gateway``), ``routes`` and ``dns``. The runtime may name
addresses too, with the reference's precedence: ``IP=`` in CNI_ARGS (CIDRs,
comma-separated) is added to the configured ones and ``GATEWAY=`` sets the
gateway of the addresses whose subnet contains it; ``args.cni.ips`` replaces
all of them; the ``ips`` capability (``runtimeConfig.ips``) replaces all again.

Nothing is reserved, so DEL and GC have nothing to release and STATUS is
always ready. CHECK needs ``prevResult`` (as the reference) and, unlike the
reference, also fails when an address this config names is missing from it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from multinic.cni import skel
from multinic.cni.args import CniArgs
from multinic.cni.errors import InvalidConfigError, InvalidEnvironmentError
from multinic.cni.types import DNS, IPConfig, Result, Route
from multinic.cni.version import SUPPORTED_VERSIONS
from multinic.ipam.netconf import ipam_section, parse_dns, parse_routes
from multinic.ipam.ranges import IPAddress, IPInterface
from multinic.records import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any, NoReturn

NAME = "multinic-static"


def load_addresses(request: skel.Request) -> tuple[IPConfig, ...]:
    """The addresses to hand out, after CNI_ARGS, ``args`` and the ``ips`` capability."""
    ipam = ipam_section(request.config)
    ips = list(_configured(ipam.get("addresses")))
    ips.extend(_from_cni_args(request.args))
    gateways = _gateways(request.args)
    ips = [ip._replace(gateway=_gateway_for(ip, gateways)) for ip in ips]
    cni_args = request.config.raw.get("args")
    section = cni_args.get("cni") if isinstance(cni_args, dict) else None
    if isinstance(section, dict) and section.get("ips"):
        ips = _override(section["ips"], "args.cni.ips")
    runtime_ips = request.config.runtime_config.get("ips")
    if runtime_ips:
        ips = _override(runtime_ips, "runtimeConfig.ips")
    return tuple(ips)


def _configured(raw: object) -> list[IPConfig]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidConfigError("invalid IPAM config", "ipam.addresses must be a list")
    out = []
    for n, item in enumerate(raw):
        where = f"ipam.addresses[{n}]"
        if not isinstance(item, dict):
            raise InvalidConfigError("invalid IPAM config", f"{where} must be an object")
        address = _cidr(item.get("address"), f"{where}.address", InvalidConfigError)
        gateway = None
        if item.get("gateway"):
            gateway = _address(item["gateway"], f"{where}.gateway", InvalidConfigError)
            if gateway.version != address.version:
                raise InvalidConfigError(
                    "invalid IPAM config", f"{where}.gateway {gateway} is not IPv{address.version}"
                )
        out.append(IPConfig(address, gateway))
    return out


def _from_cni_args(args: CniArgs) -> list[IPConfig]:
    out = []
    for key, value in args:
        if key.upper() == "IP":
            for item in value.split(","):
                if item.strip():
                    out.append(
                        IPConfig(_cidr(item.strip(), "CNI_ARGS IP", InvalidEnvironmentError))
                    )
    return out


def _gateways(args: CniArgs) -> list[IPAddress]:
    return [
        _address(item.strip(), "CNI_ARGS GATEWAY", InvalidEnvironmentError)
        for key, value in args
        if key.upper() == "GATEWAY"
        for item in value.split(",")
        if item.strip()
    ]


def _gateway_for(ip: IPConfig, gateways: list[IPAddress]) -> IPAddress | None:
    # As the reference: the last GATEWAY inside the address's subnet wins.
    found = ip.gateway
    for gateway in gateways:
        if gateway in ip.address.network:
            found = gateway
    return found


def _override(raw: object, where: str) -> list[IPConfig]:
    if not isinstance(raw, list):
        raise InvalidConfigError("invalid requested IPs", f"{where} must be a list of CIDRs")
    return [
        IPConfig(_cidr(item, f"{where}[{n}]", InvalidConfigError)) for n, item in enumerate(raw)
    ]


def _cidr(
    text: object, where: str, error: type[InvalidConfigError | InvalidEnvironmentError]
) -> IPInterface:
    if not isinstance(text, str) or "/" not in text:
        raise error("invalid address", f"{where} must be in CIDR notation, got {text!r}")
    try:
        return ipaddress.ip_interface(text)
    except ValueError as exc:
        raise error("invalid address", f"{where}: {exc}") from exc


def _address(
    text: object, where: str, error: type[InvalidConfigError | InvalidEnvironmentError]
) -> IPAddress:
    if not isinstance(text, str):
        raise error("invalid address", f"{where} must be an address string")
    try:
        return ipaddress.ip_address(text)
    except ValueError as exc:
        raise error("invalid address", f"{where}: {text!r} is not an IP address") from exc


def _routes_and_dns(ipam: Mapping[str, Any]) -> tuple[tuple[Route, ...], DNS]:
    return parse_routes(ipam.get("routes"), "ipam.routes"), parse_dns(ipam.get("dns"), "ipam.dns")


class Static:
    """The plugin object; the executable and an in-process caller use the same one."""

    name = NAME
    supported_versions = SUPPORTED_VERSIONS

    def add(self, request: skel.Request) -> Result:
        ips = load_addresses(request)
        routes, dns = _routes_and_dns(ipam_section(request.config))
        return Result(request.config.cni_version, ips=ips, routes=routes, dns=dns)

    def delete(self, request: skel.Request) -> None:
        ipam_section(request.config)  # nothing was reserved; only the config must name ipam

    def check(self, request: skel.Request) -> None:
        prev = request.config.prev_result
        if prev is None:
            raise InvalidConfigError(f"{NAME}: required prevResult missing")
        have = {ip.address for ip in prev.ips}
        missing = [str(ip.address) for ip in load_addresses(request) if ip.address not in have]
        if missing:
            raise InvalidConfigError(
                f"{NAME}: prevResult lacks configured addresses", ", ".join(missing)
            )

    def status(self, request: skel.Request) -> None:
        load_addresses(request)  # ready whenever the config is valid

    def gc(self, request: skel.Request) -> None:
        ipam_section(request.config)  # nothing to collect


PLUGIN = Static()


def main() -> NoReturn:
    skel.main(PLUGIN)
