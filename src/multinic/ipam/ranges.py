"""Address ranges and range sets as ``ipaddress`` values, and their config parsers.

A range is a subnet plus the inclusive span of it that may be handed out,
an optional gateway and excluded prefixes. A range set is several ranges of
one family that an allocator treats as one pool (host-local's ``ranges`` holds
one set per family for dual-stack).

Defaults follow the reference host-local: start = network + 1, end = the last
address (IPv6) or the one before the broadcast (IPv4), gateway = network + 1
unless given. The Whereabouts form (``range`` "10.0.0.0/24" or
"10.0.0.10-10.0.0.50/24" with ``range_start``, ``range_end``, ``exclude``) has
no default gateway.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping, Sequence

from multinic.cni.errors import InvalidConfigError
from multinic.records import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from typing import Any

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


class RangeConfigError(InvalidConfigError):
    """Code 7: an IPAM range in the config is malformed; details name the field."""

    def __init__(self, details: str) -> None:
        super().__init__("invalid IPAM config", details)


class IPRange(NamedTuple):
    """One allocatable span of a subnet (all bounds inclusive)."""

    subnet: IPNetwork
    range_start: IPAddress
    range_end: IPAddress
    gateway: IPAddress | None = None
    exclude: tuple[IPNetwork, ...] = ()

    @property
    def version(self) -> int:
        return self.subnet.version

    def __contains__(self, addr: object) -> bool:
        """Whether ``addr`` lies between start and end (reserved ones included)."""
        if not isinstance(addr, ipaddress.IPv4Address | ipaddress.IPv6Address):
            return False
        return addr.version == self.version and int(self.range_start) <= int(addr) <= int(
            self.range_end
        )

    def reserved(self) -> Iterator[tuple[int, int]]:
        """Integer spans inside this range that are never handed out."""
        if self.gateway is not None:
            yield int(self.gateway), int(self.gateway)
        if self.version == 4:
            # The network and broadcast addresses of an IPv4 subnet are not hosts.
            net, bcast = int(self.subnet.network_address), int(self.subnet.broadcast_address)
            yield net, net
            yield bcast, bcast
        for prefix in self.exclude:
            yield int(prefix.network_address), int(prefix.broadcast_address)

    def interface(self, addr: IPAddress) -> IPInterface:
        """``addr`` with this range's prefix length, as a result's ``address``."""
        return ipaddress.ip_interface((addr, self.subnet.prefixlen))

    def restrict(self, first: IPAddress, last: IPAddress) -> IPRange:
        """This range cut down to ``[first, last]`` (e.g. a node's block of it)."""
        if first.version != self.version or last.version != self.version:
            raise ValueError(f"{first}-{last} is not IPv{self.version}")
        start = first if int(first) > int(self.range_start) else self.range_start
        end = last if int(last) < int(self.range_end) else self.range_end
        if int(start) > int(end):
            raise ValueError(f"{first}-{last} does not meet range {self}")
        return self._replace(range_start=start, range_end=end)

    def overlaps(self, other: IPRange) -> bool:
        return (
            self.version == other.version
            and int(self.range_start) <= int(other.range_end)
            and int(other.range_start) <= int(self.range_end)
        )

    def __str__(self) -> str:
        return f"{self.range_start}-{self.range_end}/{self.subnet.prefixlen}"


class RangeSet(NamedTuple):
    """Ranges of one address family, allocated from as one pool."""

    ranges: tuple[IPRange, ...]

    @property
    def version(self) -> int:
        return self.ranges[0].version

    def range_for(self, addr: IPAddress) -> IPRange | None:
        return next((r for r in self.ranges if addr in r), None)

    def __contains__(self, addr: object) -> bool:
        return any(addr in r for r in self.ranges)

    def overlaps(self, other: RangeSet) -> bool:
        return any(a.overlaps(b) for a in self.ranges for b in other.ranges)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.ranges)


def make_range(
    subnet: IPNetwork,
    range_start: IPAddress | None = None,
    range_end: IPAddress | None = None,
    gateway: IPAddress | None = None,
    exclude: Sequence[IPNetwork] = (),
    *,
    default_gateway: bool = True,
    where: str = "range",
) -> IPRange:
    """Fill in the defaults and check that every address belongs to ``subnet``."""
    if subnet.prefixlen > subnet.max_prefixlen - 2:
        # As host-local: a /31 or /32 (/127, /128) has no address to hand out.
        raise RangeConfigError(f"{where}.subnet: network {subnet} is too small to allocate from")
    first = subnet.network_address + 1
    last = subnet.broadcast_address - (1 if subnet.version == 4 else 0)
    start = first if range_start is None else range_start
    end = last if range_end is None else range_end
    gw = first if gateway is None and default_gateway else gateway
    for field, value in (("rangeStart", start), ("rangeEnd", end), ("gateway", gw)):
        if value is not None and value not in subnet:
            raise RangeConfigError(f"{where}.{field}: {value} is not in subnet {subnet}")
    if int(start) > int(end):
        raise RangeConfigError(f"{where}: rangeStart {start} is after rangeEnd {end}")
    for n, prefix in enumerate(exclude):
        if prefix.version != subnet.version:
            raise RangeConfigError(f"{where}.exclude[{n}]: {prefix} is not IPv{subnet.version}")
    return IPRange(subnet, start, end, gw, tuple(exclude))


def make_range_set(ranges: Sequence[IPRange], where: str = "range set") -> RangeSet:
    """A set of one family whose ranges do not overlap."""
    if not ranges:
        raise RangeConfigError(f"{where}: empty range set")
    for n, r in enumerate(ranges[1:], start=1):
        if r.version != ranges[0].version:
            raise RangeConfigError(f"{where}[{n}]: mixed address families ({r.subnet})")
    check_no_overlap([RangeSet((r,)) for r in ranges], f"{where}[%d]")
    return RangeSet(tuple(ranges))


def check_no_overlap(sets: Sequence[RangeSet], label: str = "range set %d") -> None:
    """Refuse two sets (or ranges) that share an address; ``label`` % index names each."""
    for i, first in enumerate(sets):
        for j in range(i + 1, len(sets)):
            if first.overlaps(sets[j]):
                raise RangeConfigError(f"{label % i} ({first}) overlaps {label % j} ({sets[j]})")


# --- the reference host-local form -----------------------------------------------


def parse_hostlocal_ranges(ipam: Mapping[str, Any], where: str = "ipam") -> tuple[RangeSet, ...]:
    """host-local's ``ranges`` (a list of sets, each a list of ranges), plus the
    old single-range form (``subnet`` etc. directly in the ipam object) put first."""
    raw_sets = ipam.get("ranges", [])
    if not isinstance(raw_sets, list):
        raise RangeConfigError(f"{where}.ranges must be a list of range sets")
    sets = [parse_range_set(raw, f"{where}.ranges[{n}]") for n, raw in enumerate(raw_sets)]
    if ipam.get("subnet"):
        sets.insert(0, RangeSet((parse_hostlocal_range(ipam, where),)))
    if not sets:
        raise RangeConfigError(f"{where}: no IP ranges specified")
    check_no_overlap(sets)
    return tuple(sets)


def parse_range_set(raw: object, where: str) -> RangeSet:
    if not isinstance(raw, list):
        raise RangeConfigError(f"{where} must be a list of ranges")
    ranges = [parse_hostlocal_range(item, f"{where}[{n}]") for n, item in enumerate(raw)]
    return make_range_set(ranges, where)


def parse_hostlocal_range(raw: object, where: str) -> IPRange:
    """One ``{"subnet", "rangeStart", "rangeEnd", "gateway", "exclude"}`` object."""
    if not isinstance(raw, dict):
        raise RangeConfigError(f"{where} must be an object")
    subnet_text = raw.get("subnet")
    if not isinstance(subnet_text, str) or not subnet_text:
        raise RangeConfigError(f"{where}.subnet is missing")
    subnet = parse_subnet(subnet_text, f"{where}.subnet")
    return make_range(
        subnet,
        _optional_address(raw, "rangeStart", where),
        _optional_address(raw, "rangeEnd", where),
        _optional_address(raw, "gateway", where),
        parse_exclude(raw.get("exclude"), f"{where}.exclude"),
        where=where,
    )


# --- the Whereabouts form --------------------------------------------------------


def parse_whereabouts_range(
    range_text: object,
    range_start: object = None,
    range_end: object = None,
    exclude: object = None,
    gateway: object = None,
    where: str = "ipam",
) -> IPRange:
    """``range`` as "10.0.0.0/24" or "10.0.0.10-10.0.0.50/24", with the optional
    ``range_start``/``range_end`` (the dash form sets both), ``exclude`` and ``gateway``."""
    if not isinstance(range_text, str) or not range_text:
        raise RangeConfigError(f"{where}.range is missing")
    first_text, dash, cidr_text = range_text.rpartition("-")
    if dash and "/" not in cidr_text:
        raise RangeConfigError(f"{where}.range: {range_text!r} needs a prefix length after the end")
    subnet = parse_subnet(cidr_text if dash else range_text, f"{where}.range")
    start = _address(range_start, f"{where}.range_start") if range_start is not None else None
    end = _address(range_end, f"{where}.range_end") if range_end is not None else None
    if dash:
        start = parse_address(first_text, f"{where}.range (start)")
        end = parse_address(cidr_text.partition("/")[0], f"{where}.range (end)")
    gw = _address(gateway, f"{where}.gateway") if gateway is not None else None
    return make_range(
        subnet,
        start,
        end,
        gw,
        parse_exclude(exclude, f"{where}.exclude"),
        default_gateway=False,
        where=where,
    )


# --- values ----------------------------------------------------------------------


def parse_subnet(text: str, where: str) -> IPNetwork:
    """A CIDR; host bits are masked off as Go's net.ParseCIDR does."""
    _, slash, prefix = text.partition("/")
    if not slash or not (prefix.isascii() and prefix.isdigit()):
        raise RangeConfigError(f"{where}: {text!r} is not a CIDR (address/prefix length)")
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        raise RangeConfigError(f"{where}: {exc}") from exc


def parse_address(text: str, where: str) -> IPAddress:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError as exc:
        raise RangeConfigError(f"{where}: {text!r} is not an IP address") from exc


def parse_exclude(raw: object, where: str) -> tuple[IPNetwork, ...]:
    """CIDRs or single addresses (a single address is its /32 or /128)."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise RangeConfigError(f"{where} must be a list of CIDRs or addresses")
    out = []
    for n, item in enumerate(raw):
        if not isinstance(item, str):
            raise RangeConfigError(f"{where}[{n}] must be a string")
        if "/" in item:
            out.append(parse_subnet(item, f"{where}[{n}]"))
        else:
            out.append(ipaddress.ip_network(parse_address(item, f"{where}[{n}]")))
    return tuple(out)


def _address(value: object, where: str) -> IPAddress:
    if not isinstance(value, str) or not value:
        raise RangeConfigError(f"{where} must be an IP address string")
    return parse_address(value, where)


def _optional_address(raw: Mapping[str, Any], key: str, where: str) -> IPAddress | None:
    value = raw.get(key)
    if value is None or value == "":
        return None
    return _address(value, f"{where}.{key}")
