"""IP addresses on links, as ipaddress interface values (address + prefix)."""

from __future__ import annotations

import errno
import ipaddress
import struct
import time

from multinic.dataplane import netlink as nl
from multinic.dataplane.errors import (
    AddressExistsError,
    AddressNotFoundError,
    DataplaneError,
    LinkNotFoundError,
    kernel_error,
)
from multinic.dataplane.links import Link, resolve
from multinic.dataplane.netlink import AF_INET, AF_INET6
from multinic.dataplane.netns import Netns

RTM_NEWADDR = 20
RTM_DELADDR = 21
RTM_GETADDR = 22

IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_BROADCAST = 4
IFA_FLAGS = 8

IFA_F_NODAD = 0x02
IFA_F_DADFAILED = 0x08
IFA_F_TENTATIVE = 0x40
IFA_F_NOPREFIXROUTE = 0x200

_IFADDRMSG = struct.Struct("=BBBBI")

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


def _family(version: int) -> int:
    return AF_INET if version == 4 else AF_INET6


def _payload(index: int, address: IPInterface, flags: int) -> bytes:
    packed = address.ip.packed
    attrs = [nl.attr(IFA_LOCAL, packed), nl.attr(IFA_ADDRESS, packed)]
    if address.version == 4 and address.network.prefixlen < 31:
        # As iproute2's `brd +` and the reference plugins do: the subnet broadcast.
        attrs.append(nl.attr(IFA_BROADCAST, address.network.broadcast_address.packed))
    if flags:
        attrs.append(nl.attr_u32(IFA_FLAGS, flags))
    header = _IFADDRMSG.pack(
        _family(address.version), address.network.prefixlen, flags & 0xFF, 0, index
    )
    return header + b"".join(attrs)


def add_address(
    ns: Netns,
    link: str | int | Link,
    address: IPInterface,
    *,
    nodad: bool = False,
    noprefixroute: bool = False,
) -> None:
    """Assign ``address`` (e.g. IPv4Interface('10.1.0.5/24')); taken -> AddressExistsError.

    ``nodad`` skips IPv6 duplicate address detection (the address is usable at once).
    """
    index, name = resolve(ns, link)
    flags = (IFA_F_NODAD if nodad else 0) | (IFA_F_NOPREFIXROUTE if noprefixroute else 0)
    try:
        ns.rtnl.request(
            RTM_NEWADDR, _payload(index, address, flags), nl.NLM_F_CREATE | nl.NLM_F_EXCL
        )
    except nl.KernelError as exc:
        raise kernel_error(
            f"cannot add address {address}",
            exc.errno,
            exc.message,
            interface=name,
            netns=ns.name,
            by_errno={errno.EEXIST: AddressExistsError, errno.ENODEV: LinkNotFoundError},
        ) from exc


def delete_address(
    ns: Netns, link: str | int | Link, address: IPInterface, *, missing_ok: bool = False
) -> bool:
    """Remove ``address`` from the link; True if it was there."""
    index, name = resolve(ns, link)
    try:
        ns.rtnl.request(RTM_DELADDR, _payload(index, address, 0))
    except nl.KernelError as exc:
        if missing_ok and exc.errno == errno.EADDRNOTAVAIL:
            return False
        raise kernel_error(
            f"cannot delete address {address}",
            exc.errno,
            exc.message,
            interface=name,
            netns=ns.name,
            by_errno={errno.EADDRNOTAVAIL: AddressNotFoundError, errno.ENODEV: LinkNotFoundError},
        ) from exc
    return True


def _dump(ns: Netns, index: int, family: int) -> list[tuple[IPInterface, int]]:
    found = []
    for message in ns.rtnl.dump(RTM_GETADDR, _IFADDRMSG.pack(family, 0, 0, 0, 0)):
        _fam, prefixlen, flags8, _scope, ifindex = _IFADDRMSG.unpack_from(message.payload)
        if ifindex != index:
            continue
        attrs = nl.parse_attrs(message.payload, _IFADDRMSG.size)
        raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
        if raw is None:
            continue
        flags = nl.get_u32(attrs, IFA_FLAGS) or flags8
        ip = ipaddress.ip_address(raw)
        found.append((ipaddress.ip_interface(f"{ip}/{prefixlen}"), flags))
    return found


def list_addresses(
    ns: Netns, link: str | int | Link, *, version: int | None = None
) -> list[IPInterface]:
    """The link's addresses (IPv6 link-local ones included), optionally of one IP version."""
    index, _ = resolve(ns, link)
    family = 0 if version is None else _family(version)
    return [address for address, _ in _dump(ns, index, family)]


def tentative_addresses(ns: Netns, link: str | int | Link) -> list[IPInterface]:
    """IPv6 addresses still in duplicate address detection (or that failed it)."""
    index, _ = resolve(ns, link)
    pending = IFA_F_TENTATIVE | IFA_F_DADFAILED
    return [a for a, flags in _dump(ns, index, AF_INET6) if flags & pending]


def settle_addresses(ns: Netns, link: str | int | Link, *, timeout: float = 5.0) -> None:
    """Wait until no IPv6 address of the link is tentative (DAD done), as the reference does.

    DAD failing (a duplicate on the link) or not finishing in ``timeout`` seconds
    raises DataplaneError naming the addresses.
    """
    index, name = resolve(ns, link)
    deadline = time.monotonic() + timeout
    while True:
        addresses = _dump(ns, index, AF_INET6)
        failed = [str(a) for a, flags in addresses if flags & IFA_F_DADFAILED]
        if failed:
            raise DataplaneError(
                f"duplicate address detection failed for {', '.join(failed)}",
                interface=name,
                netns=ns.name,
            )
        pending = [str(a) for a, flags in addresses if flags & IFA_F_TENTATIVE]
        if not pending:
            return
        if time.monotonic() >= deadline:
            raise DataplaneError(
                f"addresses still tentative after {timeout:g} s: {', '.join(pending)}",
                interface=name,
                netns=ns.name,
            )
        time.sleep(0.05)
