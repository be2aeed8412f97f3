"""CNI results as values: interfaces, IP configs, routes, DNS.

The values are NamedTuples rather than dataclasses on purpose: every plugin
executable imports this module, and ``dataclasses`` costs more start-up time
than the rest of the module together.

One model serves every supported spec version (0.3.0 to 1.1.0); the version
only matters when a result is read from or written to JSON, and when it is
converted. Addresses are ``ipaddress`` values, never strings.

Version differences handled here (SPEC.md and its conventions document):

* 0.3.x and 0.4.0 tag each IP config with ``"version": "4" | "6"``; 1.0.0
  dropped the tag because the address already says it.
* 1.1.0 adds interface ``mtu``, ``socketPath``, ``pciID`` and route ``mtu``,
  ``advmss``, ``priority``, ``table``, ``scope``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping

from multinic.cni.errors import DecodingError, IncompatibleVersionError
from multinic.cni.version import SUPPORTED_VERSIONS, parse_version, require_supported
from multinic.records import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from typing import Any, TypeVar

    _T = TypeVar("_T")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Fields that only exist from spec 1.1.0 on: (JSON object, attribute, JSON key).
_INTERFACE_FIELDS_1_1 = (("mtu", "mtu"), ("socket_path", "socketPath"), ("pci_id", "pciID"))
_ROUTE_FIELDS_1_1 = ("mtu", "advmss", "priority", "table", "scope")


class Interface(NamedTuple):
    """A network interface a plugin created or configured."""

    name: str
    mac: str = ""
    mtu: int | None = None
    sandbox: str = ""
    socket_path: str = ""
    pci_id: str = ""


class IPConfig(NamedTuple):
    """An address assigned to an interface (``interface`` indexes Result.interfaces)."""

    address: IPInterface
    gateway: IPAddress | None = None
    interface: int | None = None


class Route(NamedTuple):
    """A route; the 1.1.0 attributes are None when unset."""

    dst: IPNetwork
    gw: IPAddress | None = None
    mtu: int | None = None
    advmss: int | None = None
    priority: int | None = None
    table: int | None = None
    scope: int | None = None


class DNS(NamedTuple):
    """Resolver settings; nameservers are kept as written (they may be names)."""

    nameservers: tuple[str, ...] = ()
    domain: str = ""
    search: tuple[str, ...] = ()
    options: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.nameservers or self.domain or self.search or self.options)


class Result(NamedTuple):
    """The outcome of an ADD, in a given spec version."""

    cni_version: str
    interfaces: tuple[Interface, ...] = ()
    ips: tuple[IPConfig, ...] = ()
    routes: tuple[Route, ...] = ()
    dns: DNS = DNS()

    @classmethod
    def from_dict(cls, data: object, cni_version: str | None = None) -> Result:
        """Decode a result; the version is ``cni_version`` or the result's own."""
        return _decode_result(data, cni_version)

    def to_dict(self) -> dict[str, Any]:
        """Encode in this result's own version, leaving out empty optional fields."""
        return _encode_result(self)

    def convert(self, cni_version: str, *, strict: bool = False) -> Result:
        """This result in another spec version; see :func:`convert_result`."""
        return convert_result(self, cni_version, strict=strict)


def convert_result(result: Result, cni_version: str, *, strict: bool = False) -> Result:
    """Convert between any two supported versions.

    0.3.0, 0.3.1, 0.4.0 and 1.0.0 carry the same information, so conversion
    among them is lossless. Going below 1.1.0 drops the 1.1.0-only fields the
    older schema has no place for (libcni drops the interface ones but keeps the
    route ones, its route type being shared); with ``strict`` that is an error.
    """
    require_supported(cni_version, SUPPORTED_VERSIONS)
    if parse_version(cni_version) >= (1, 1, 0):
        return result._replace(cni_version=cni_version)
    lost = _fields_only_in_1_1(result)
    if lost and strict:
        raise IncompatibleVersionError(
            f"cannot convert result from {result.cni_version} to {cni_version} without loss",
            f"{cni_version} has no place for: {', '.join(lost)}",
        )
    return Result(
        cni_version=cni_version,
        interfaces=tuple(
            i._replace(mtu=None, socket_path="", pci_id="") for i in result.interfaces
        ),
        ips=result.ips,
        routes=tuple(Route(dst=r.dst, gw=r.gw) for r in result.routes),
        dns=result.dns,
    )


def _fields_only_in_1_1(result: Result) -> list[str]:
    lost = []
    for index, iface in enumerate(result.interfaces):
        for attr, key in _INTERFACE_FIELDS_1_1:
            if getattr(iface, attr) not in (None, ""):
                lost.append(f"interfaces[{index}].{key}")
    for index, route in enumerate(result.routes):
        lost.extend(
            f"routes[{index}].{key}" for key in _ROUTE_FIELDS_1_1 if getattr(route, key) is not None
        )
    return lost


# --- encoding -----------------------------------------------------------------


def _encode_result(result: Result) -> dict[str, Any]:
    has_1_1 = parse_version(result.cni_version) >= (1, 1, 0)
    tagged = parse_version(result.cni_version) < (1, 0, 0)
    out: dict[str, Any] = {"cniVersion": result.cni_version}
    if result.interfaces:
        out["interfaces"] = [_encode_interface(i, has_1_1) for i in result.interfaces]
    if result.ips:
        out["ips"] = [_encode_ip(ip, tagged) for ip in result.ips]
    if result.routes:
        out["routes"] = [_encode_route(r, has_1_1) for r in result.routes]
    # As libcni writes it (1.2 and later): an empty "dns" is left out of 1.x
    # results and kept in 0.x ones (Go's omitempty never drops a struct; its
    # 1.x type removes the key by hand). libcni 1.1 wrote it always; readers accept both.
    dns = _encode_dns(result.dns)
    if dns or tagged:
        out["dns"] = dns
    return out


def _encode_interface(iface: Interface, has_1_1: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"name": iface.name}
    if iface.mac:
        out["mac"] = iface.mac
    if has_1_1 and iface.mtu is not None:
        out["mtu"] = iface.mtu
    if iface.sandbox:
        out["sandbox"] = iface.sandbox
    if has_1_1 and iface.socket_path:
        out["socketPath"] = iface.socket_path
    if has_1_1 and iface.pci_id:
        out["pciID"] = iface.pci_id
    return out


def _encode_ip(ip: IPConfig, tagged: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if tagged:
        out["version"] = str(ip.address.version)
    if ip.interface is not None:
        out["interface"] = ip.interface
    out["address"] = str(ip.address)
    if ip.gateway is not None:
        out["gateway"] = str(ip.gateway)
    return out


def _encode_route(route: Route, has_1_1: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"dst": str(route.dst)}
    if route.gw is not None:
        out["gw"] = str(route.gw)
    if has_1_1:
        for key in _ROUTE_FIELDS_1_1:
            value = getattr(route, key)
            if value is not None:
                out[key] = value
    return out


def _encode_dns(dns: DNS) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if dns.nameservers:
        out["nameservers"] = list(dns.nameservers)
    if dns.domain:
        out["domain"] = dns.domain
    if dns.search:
        out["search"] = list(dns.search)
    if dns.options:
        out["options"] = list(dns.options)
    return out


# --- decoding -----------------------------------------------------------------


def _decode_result(data: object, cni_version: str | None) -> Result:
    obj = _expect_object(data, "result")
    version = cni_version if cni_version is not None else obj.get("cniVersion")
    if not isinstance(version, str):
        raise DecodingError("invalid result", "cniVersion is missing or not a string")
    require_supported(version)
    tagged = parse_version(version) < (1, 0, 0)
    interfaces = tuple(
        _decode_interface(item, f"interfaces[{n}]")
        for n, item in enumerate(_expect_list(obj, "interfaces"))
    )
    ips = tuple(
        _decode_ip(item, f"ips[{n}]", tagged) for n, item in enumerate(_expect_list(obj, "ips"))
    )
    for n, ip in enumerate(ips):
        if ip.interface is not None and not 0 <= ip.interface < len(interfaces):
            raise DecodingError(
                "invalid result", f"ips[{n}].interface {ip.interface} names no interface"
            )
    routes = tuple(
        _decode_route(item, f"routes[{n}]") for n, item in enumerate(_expect_list(obj, "routes"))
    )
    dns = _decode_dns(obj.get("dns"), "dns")
    return Result(version, interfaces, ips, routes, dns)


def _decode_interface(data: object, where: str) -> Interface:
    obj = _expect_object(data, where)
    name = _string(obj, "name", where, required=True)
    if not name:
        raise DecodingError("invalid result", f"{where}.name is empty")
    return Interface(
        name=name,
        mac=_string(obj, "mac", where),
        mtu=_integer(obj, "mtu", where),
        sandbox=_string(obj, "sandbox", where),
        socket_path=_string(obj, "socketPath", where),
        pci_id=_string(obj, "pciID", where),
    )


def _decode_ip(data: object, where: str, tagged: bool) -> IPConfig:
    obj = _expect_object(data, where)
    address_text = _cidr_text(obj, "address", where)
    address: IPInterface = _parse(ipaddress.ip_interface, address_text, f"{where}.address")
    gateway_text = _string(obj, "gateway", where)
    gateway: IPAddress | None = None
    if gateway_text:
        gateway = _parse(ipaddress.ip_address, gateway_text, f"{where}.gateway")
    if tagged and "version" in obj and obj["version"] != str(address.version):
        raise DecodingError(
            "invalid result", f"{where}.version {obj['version']!r} does not match {address}"
        )
    if gateway is not None and gateway.version != address.version:
        raise DecodingError(
            "invalid result", f"{where}: gateway {gateway} is not IPv{address.version}"
        )
    return IPConfig(address, gateway, _integer(obj, "interface", where))


def _decode_route(data: object, where: str) -> Route:
    obj = _expect_object(data, where)
    dst_text = _cidr_text(obj, "dst", where)
    # Like Go's net.ParseCIDR: host bits in a route destination are masked off.
    dst = _parse(_network_masking_host_bits, dst_text, f"{where}.dst")
    gw_text = _string(obj, "gw", where)
    gw: IPAddress | None = _parse(ipaddress.ip_address, gw_text, f"{where}.gw") if gw_text else None
    if gw is not None and gw.version != dst.version:
        raise DecodingError("invalid result", f"{where}: gw {gw} is not IPv{dst.version}")
    extras = {key: _integer(obj, key, where) for key in _ROUTE_FIELDS_1_1}
    return Route(dst, gw, **extras)


def _cidr_text(obj: Mapping[str, Any], key: str, where: str) -> str:
    """A CIDR string as Go's net.ParseCIDR takes it: address, '/', a decimal prefix length."""
    text = _string(obj, key, where, required=True)
    _, slash, prefix = text.partition("/")
    if not slash:
        raise DecodingError("invalid result", f"{where}.{key} {text!r} has no prefix length")
    if not (prefix.isdigit() and prefix.isascii()):
        raise DecodingError(
            "invalid result", f"{where}.{key} {text!r}: the prefix length must be a number"
        )
    return text


def _network_masking_host_bits(text: str) -> IPNetwork:
    return ipaddress.ip_network(text, strict=False)


def _decode_dns(data: object, where: str) -> DNS:
    if data is None:
        return DNS()
    obj = _expect_object(data, where)
    return DNS(
        nameservers=_strings(obj, "nameservers", where),
        domain=_string(obj, "domain", where),
        search=_strings(obj, "search", where),
        options=_strings(obj, "options", where),
    )


def _expect_object(data: object, where: str) -> Mapping[str, Any]:
    if not isinstance(data, dict):
        raise DecodingError("invalid result", f"{where} is not a JSON object")
    return data


def _expect_list(obj: Mapping[str, Any], key: str) -> list[Any]:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise DecodingError("invalid result", f"{key} is not a list")
    return value


def _string(obj: Mapping[str, Any], key: str, where: str, *, required: bool = False) -> str:
    value = obj.get(key)
    if value is None:
        if required:
            raise DecodingError("invalid result", f"{where}.{key} is missing")
        return ""
    if not isinstance(value, str):
        raise DecodingError("invalid result", f"{where}.{key} is not a string")
    return value


def _strings(obj: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = obj.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DecodingError("invalid result", f"{where}.{key} is not a list of strings")
    return tuple(value)


def _integer(obj: Mapping[str, Any], key: str, where: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise DecodingError("invalid result", f"{where}.{key} is not an integer")
    return value


def _parse(parser: Callable[[str], _T], text: str, where: str) -> _T:
    try:
        return parser(text)
    except ValueError as exc:
        raise DecodingError("invalid result", f"{where}: {exc}") from exc
