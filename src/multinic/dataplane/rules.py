"""Policy-routing rules (``ip rule``): from SRC / to DST / iif / oif, lookup TABLE, priority P."""

from __future__ import annotations

import errno
import ipaddress
import struct

from multinic.dataplane import netlink as nl
from multinic.dataplane.errors import (
    DataplaneError,
    RuleExistsError,
    RuleNotFoundError,
    kernel_error,
)
from multinic.dataplane.netlink import AF_INET, AF_INET6
from multinic.dataplane.netns import Netns
from multinic.records import NamedTuple

RTM_NEWRULE = 32
RTM_DELRULE = 33
RTM_GETRULE = 34

FRA_DST = 1
FRA_SRC = 2
FRA_IIFNAME = 3
FRA_PRIORITY = 6
FRA_TABLE = 15
FRA_OIFNAME = 17
FR_ACT_TO_TBL = 1

_FIB_RULE_HDR = struct.Struct("=BBBBBBBBI")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Rule(NamedTuple):
    """A rule as the kernel reports it (``table`` 0 for rules that do not look one up)."""

    version: int
    priority: int | None
    src: IPNetwork | None
    dst: IPNetwork | None
    table: int
    iif: str | None
    oif: str | None


def _version(src: IPNetwork | None, dst: IPNetwork | None, version: int | None) -> int:
    versions: set[int] = {n.version for n in (src, dst) if n is not None}
    if version is not None:
        versions.add(version)
    if len(versions) != 1:
        raise DataplaneError("a rule needs one IP version: give src, dst or version, not mixed")
    return versions.pop()


def _encode(
    *,
    table: int,
    src: IPNetwork | None,
    dst: IPNetwork | None,
    priority: int | None,
    iif: str | None,
    oif: str | None,
    version: int | None,
) -> bytes:
    family = AF_INET if _version(src, dst, version) == 4 else AF_INET6
    header = _FIB_RULE_HDR.pack(
        family,
        0 if dst is None else dst.prefixlen,
        0 if src is None else src.prefixlen,
        0,
        table if table < 256 else 0,
        0,
        0,
        FR_ACT_TO_TBL,
        0,
    )
    attrs = [nl.attr_u32(FRA_TABLE, table)]
    if src is not None:
        attrs.append(nl.attr(FRA_SRC, src.network_address.packed))
    if dst is not None:
        attrs.append(nl.attr(FRA_DST, dst.network_address.packed))
    if priority is not None:
        attrs.append(nl.attr_u32(FRA_PRIORITY, priority))
    if iif is not None:
        attrs.append(nl.attr_str(FRA_IIFNAME, iif))
    if oif is not None:
        attrs.append(nl.attr_str(FRA_OIFNAME, oif))
    return header + b"".join(attrs)


def _describe(table: int, src: object, dst: object, priority: object) -> str:
    parts = [f"from {src or 'all'}"]
    if dst is not None:
        parts.append(f"to {dst}")
    parts.append(f"lookup {table}")
    if priority is not None:
        parts.append(f"priority {priority}")
    return " ".join(parts)


def add_rule(
    ns: Netns,
    *,
    table: int,
    src: IPNetwork | None = None,
    dst: IPNetwork | None = None,
    priority: int | None = None,
    iif: str | None = None,
    oif: str | None = None,
    version: int | None = None,
) -> None:
    """``ip rule add [from SRC] [to DST] [iif I] [oif O] lookup TABLE [priority P]``.

    An equal rule -> RuleExistsError. ``version`` is needed only without src/dst.
    """
    payload = _encode(
        table=table, src=src, dst=dst, priority=priority, iif=iif, oif=oif, version=version
    )
    try:
        ns.rtnl.request(RTM_NEWRULE, payload, nl.NLM_F_CREATE | nl.NLM_F_EXCL)
    except nl.KernelError as exc:
        raise kernel_error(
            f"cannot add rule {_describe(table, src, dst, priority)}",
            exc.errno,
            exc.message,
            interface=iif or oif,
            netns=ns.name,
            by_errno={errno.EEXIST: RuleExistsError},
        ) from exc


def delete_rule(
    ns: Netns,
    *,
    table: int,
    src: IPNetwork | None = None,
    dst: IPNetwork | None = None,
    priority: int | None = None,
    iif: str | None = None,
    oif: str | None = None,
    version: int | None = None,
    missing_ok: bool = False,
) -> bool:
    """Delete the rule matching the fields given; True if one was deleted."""
    payload = _encode(
        table=table, src=src, dst=dst, priority=priority, iif=iif, oif=oif, version=version
    )
    try:
        ns.rtnl.request(RTM_DELRULE, payload)
    except nl.KernelError as exc:
        if missing_ok and exc.errno == errno.ENOENT:
            return False
        raise kernel_error(
            f"cannot delete rule {_describe(table, src, dst, priority)}",
            exc.errno,
            exc.message,
            interface=iif or oif,
            netns=ns.name,
            by_errno={errno.ENOENT: RuleNotFoundError},
        ) from exc
    return True


def decode_rule(payload: bytes) -> Rule:
    """A Rule from an RTM_NEWRULE message's payload."""
    family, dst_len, src_len, _tos, table8, _r1, _r2, _action, _flags = _FIB_RULE_HDR.unpack_from(
        payload
    )
    attrs = nl.parse_attrs(payload, _FIB_RULE_HDR.size)
    src = attrs.get(FRA_SRC)
    dst = attrs.get(FRA_DST)
    return Rule(
        version=4 if family == AF_INET else 6,
        priority=nl.get_u32(attrs, FRA_PRIORITY),
        src=None if src is None else ipaddress.ip_network((src, src_len)),
        dst=None if dst is None else ipaddress.ip_network((dst, dst_len)),
        table=nl.get_u32(attrs, FRA_TABLE) or table8,
        iif=nl.get_str(attrs, FRA_IIFNAME),
        oif=nl.get_str(attrs, FRA_OIFNAME),
    )


def list_rules(ns: Netns, *, version: int | None = None) -> list[Rule]:
    """Every rule (the default local/main/default ones included), IPv4 then IPv6."""
    versions = (4, 6) if version is None else (version,)
    rules: list[Rule] = []
    for v in versions:
        family = AF_INET if v == 4 else AF_INET6
        header = _FIB_RULE_HDR.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)
        rules.extend(decode_rule(m.payload) for m in ns.rtnl.dump(RTM_GETRULE, header))
    return rules
