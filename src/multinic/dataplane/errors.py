"""The data plane's exception tree: every failure names the interface and the namespace.

They are CNI errors (code 999, "internal", as the reference plugins answer), so a
plugin that lets one escape still answers with a proper CNI error object.
"""

from __future__ import annotations

import os

from multinic.cni.errors import CNIError


class DataplaneError(CNIError):
    """A data-plane operation failed; names the interface, the namespace and the errno."""

    def __init__(
        self,
        msg: str,
        *,
        interface: str | None = None,
        netns: str | None = None,
        errno: int | None = None,
        kernel_msg: str = "",
    ) -> None:
        self.interface = interface
        self.netns = netns
        self.errno = errno
        self.kernel_msg = kernel_msg
        super().__init__(msg, _details(interface, netns, errno, kernel_msg))


def _details(interface: str | None, netns: str | None, errno: int | None, kernel: str) -> str:
    parts = []
    if interface is not None:
        parts.append(f"interface {interface!r}")
    if netns is not None:
        parts.append(f"netns {netns}")
    if errno is not None:
        parts.append(f"errno {errno} ({os.strerror(errno)})")
    if kernel:
        parts.append(f"kernel: {kernel}")
    return ", ".join(parts)


def kernel_error(
    msg: str,
    errno: int,
    kernel_msg: str,
    *,
    interface: str | None,
    netns: str | None,
    by_errno: dict[int, type[DataplaneError]] | None = None,
) -> DataplaneError:
    """The exception for a kernel refusal: a specific class by errno, else NetlinkError."""
    cls = (by_errno or {}).get(errno, NetlinkError)
    return cls(msg, interface=interface, netns=netns, errno=errno, kernel_msg=kernel_msg)


class NetlinkError(DataplaneError):
    """The kernel refused a netlink request (no more specific class applies)."""


class NetnsNotFoundError(DataplaneError):
    """A namespace path does not exist or is not a network namespace; nothing is created."""


class LinkNotFoundError(DataplaneError):
    """No link with that name or index in the namespace."""


class LinkExistsError(DataplaneError):
    """A link with that name already exists in the target namespace."""


class WrongLinkKindError(DataplaneError):
    """A link exists under the wanted name but is of another kind (e.g. not a bridge)."""


class AddressExistsError(DataplaneError):
    """The address is already assigned to the link."""


class AddressNotFoundError(DataplaneError):
    """The address is not assigned to the link."""


class RouteExistsError(DataplaneError):
    """An equal route already exists in that table."""


class RouteNotFoundError(DataplaneError):
    """No such route in that table."""


class RuleExistsError(DataplaneError):
    """An equal policy-routing rule already exists."""


class RuleNotFoundError(DataplaneError):
    """No such policy-routing rule."""


class SysctlError(DataplaneError):
    """A sysctl could not be read or written in the namespace (the key names the file)."""


class AnnounceError(DataplaneError):
    """A gratuitous ARP or unsolicited neighbour advertisement could not be sent."""


class NeighbourNotFoundError(DataplaneError):
    """No such neighbour (ARP/NDP) or FDB entry."""
