"""multinic-ipvlan: an ipvlan on a host device, placed in the pod (config as the reference).

Fields: ``master`` (default: the interface of the default route; chained after
another plugin without ``ipam``: prevResult's only interface), ``mode`` (l2,
l3, l3s; default l2), ``mtu`` (0/absent: the master's), ``linkInContainer``
(the master lives in the pod's namespace). Addresses come from ``ipam``, or,
chained without ``ipam``, from prevResult's IPs.
"""

from __future__ import annotations

from multinic.cni import skel
from multinic.cni.types import Result
from multinic.cni.version import SUPPORTED_VERSIONS
from multinic.dataplane import Link, Netns, create_ipvlan
from multinic.plugins import lower
from multinic.plugins.fields import plugin_fields
from multinic.records import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from typing import NoReturn

TYPE = "multinic-ipvlan"
MODES = ("l2", "l3", "l3s")


class IpvlanConf(NamedTuple):
    """The plugin's own fields."""

    lower: lower.LowerConf
    mode: str


def load_conf(request: skel.Request) -> IpvlanConf:
    """Parse and validate the config."""
    fields = plugin_fields(request.config.raw, TYPE)
    mode = fields.string("mode") or "l2"  # "" means l2 in the reference too
    if mode not in MODES:
        raise fields.error("mode", f"must be one of {', '.join(MODES)}, not {mode!r}")
    return IpvlanConf(lower.lower_conf(fields), mode)


class Ipvlan:
    """The ipvlan plugin."""

    name = TYPE
    supported_versions = SUPPORTED_VERSIONS

    def add(self, request: skel.Request) -> Result:
        conf = load_conf(request)

        def create(lower_ns: Netns, master: Link, pod: Netns) -> Link:
            return create_ipvlan(
                lower_ns, request.ifname, master, mode=conf.mode, target_ns=pod, mtu=conf.lower.mtu
            )

        return lower.add(request, conf.lower, create, ipam_required=True, chained=True)

    def delete(self, request: skel.Request) -> None:
        lower.delete(request)

    def check(self, request: skel.Request) -> None:
        conf = load_conf(request)

        def expect(link: Link) -> str | None:
            mode = link.info.get("mode")
            return None if mode == conf.mode else f"ipvlan mode is {mode}, expected {conf.mode}"

        lower.check(request, conf.lower, "ipvlan", expect, chained=True)

    def status(self, request: skel.Request) -> None:
        lower.status(request, load_conf(request).lower, chained=True)

    def gc(self, request: skel.Request) -> None:
        lower.gc(request)


PLUGIN = Ipvlan()


def main() -> NoReturn:
    skel.main(PLUGIN)
