"""``multinic-loopback``: the pod's ``lo`` up, as the reference ``loopback``.

CNI_IFNAME is ignored: this plugin only ever touches ``lo``. ADD brings it up
(the kernel then gives it 127.0.0.1/8 and, with IPv6 on, ::1/128) and answers
with ``lo`` and those addresses, or passes a prevResult through unchanged when
it runs after another plugin. DEL brings ``lo`` down, and succeeds when the
namespace is already gone. CHECK fails unless ``lo`` is up with 127.0.0.1 and,
where IPv6 is enabled, ::1. No config fields of its own.
"""

from __future__ import annotations

from ipaddress import IPv4Interface, IPv6Interface, ip_interface

from multinic.cni import skel
from multinic.cni.errors import InvalidConfigError
from multinic.cni.types import Interface, IPConfig, Result
from multinic.cni.version import SUPPORTED_VERSIONS
from multinic.dataplane import (
    Netns,
    NetnsNotFoundError,
    SysctlError,
    get_link,
    list_addresses,
    open_netns,
    read_sysctl,
    set_down,
    set_up,
)
from multinic.plugins.attach import InterfaceDriftError
from multinic.records import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import NoReturn

NAME = "multinic-loopback"
LO = "lo"
LOOPBACK_V4 = ip_interface("127.0.0.1/8")
LOOPBACK_V6 = ip_interface("::1/128")


class Loopback:
    """The plugin object; the executable and an in-process caller use the same one."""

    name = NAME
    supported_versions = SUPPORTED_VERSIONS

    def add(self, request: skel.Request) -> Result:
        with open_netns(request.netns) as pod:
            lo = get_link(pod, LO)
            set_up(pod, lo)
            addresses = list_addresses(pod, lo)
        strange = [a for a in addresses if not a.ip.is_loopback]
        if strange:
            raise InvalidConfigError(
                f"{NAME}: loopback interface found with non-loopback address {strange[0].ip}"
            )
        if request.config.prev_result is not None:
            # After another plugin in a list: pass its result through, as the reference.
            return request.config.prev_result
        return Result(
            request.config.cni_version,
            interfaces=(Interface(LO, mac="00:00:00:00:00:00", sandbox=request.netns),),
            ips=tuple(IPConfig(a, interface=0) for a in _first_of_each_family(addresses)),
        )

    def delete(self, request: skel.Request) -> None:
        if not request.netns:
            return
        try:
            pod = open_netns(request.netns)
        except NetnsNotFoundError:
            return  # the runtime already removed the namespace: nothing left to bring down
        with pod:
            set_down(pod, LO)

    def check(self, request: skel.Request) -> None:
        with open_netns(request.netns) as pod:
            lo = get_link(pod, LO)
            if not lo.up:
                raise InterfaceDriftError(f"{NAME}: loopback interface is down")
            present = set(list_addresses(pod, lo))
            expected: list[IPv4Interface | IPv6Interface] = [LOOPBACK_V4]
            if _ipv6_enabled(pod):
                expected.append(LOOPBACK_V6)
        for address in expected:
            if address not in present:
                raise InterfaceDriftError(
                    f"{NAME}: loopback interface lacks {address}",
                    f"found {sorted(map(str, present))}",
                )

    def status(self, request: skel.Request) -> None:
        """Always ready: a namespace always has a loopback interface."""

    def gc(self, request: skel.Request) -> None:
        """Nothing to collect: the plugin holds no state outside the pod."""


def _first_of_each_family(
    addresses: list[IPv4Interface | IPv6Interface],
) -> list[IPv4Interface | IPv6Interface]:
    chosen: dict[int, IPv4Interface | IPv6Interface] = {}
    for address in addresses:
        chosen.setdefault(address.version, address)
    return [chosen[v] for v in sorted(chosen)]


def _ipv6_enabled(pod: Netns) -> bool:
    try:
        return read_sysctl(pod, "net/ipv6/conf/lo/disable_ipv6") != "1"
    except SysctlError:
        return False  # no IPv6 in this kernel


PLUGIN = Loopback()


def main() -> NoReturn:
    skel.main(PLUGIN)
