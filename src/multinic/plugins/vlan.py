"""multinic-vlan: an 802.1Q VLAN on a host device, placed in the pod (config as the reference).

Fields: ``master`` (required), ``vlanId`` (required, 1-4094), ``mtu``
(0/absent: the master's), ``linkInContainer`` (the master lives in the pod's
namespace), ``ipam`` (required).
"""

from __future__ import annotations

from multinic.cni import skel
from multinic.cni.types import Result
from multinic.cni.version import SUPPORTED_VERSIONS
from multinic.dataplane import Link, Netns, create_vlan
from multinic.plugins import lower
from multinic.plugins.fields import plugin_fields
from multinic.records import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from typing import NoReturn

TYPE = "multinic-vlan"


class VlanConf(NamedTuple):
    """The plugin's own fields."""

    lower: lower.LowerConf
    vlan_id: int


def load_conf(request: skel.Request) -> VlanConf:
    """Parse and validate the config."""
    fields = plugin_fields(request.config.raw, TYPE)
    vlan_id = fields.integer("vlanId", low=1, high=4094)
    if vlan_id is None:
        raise fields.error("vlanId", "is required (1-4094)")
    return VlanConf(lower.lower_conf(fields, master_required=True), vlan_id)


class Vlan:
    """The vlan plugin."""

    name = TYPE
    supported_versions = SUPPORTED_VERSIONS

    def add(self, request: skel.Request) -> Result:
        conf = load_conf(request)

        def create(lower_ns: Netns, master: Link, pod: Netns) -> Link:
            return create_vlan(
                lower_ns, request.ifname, master, conf.vlan_id, target_ns=pod, mtu=conf.lower.mtu
            )

        return lower.add(request, conf.lower, create, ipam_required=True)

    def delete(self, request: skel.Request) -> None:
        lower.delete(request)

    def check(self, request: skel.Request) -> None:
        conf = load_conf(request)

        def expect(link: Link) -> str | None:
            vid = link.info.get("vlan_id")
            return None if vid == conf.vlan_id else f"VLAN id is {vid}, expected {conf.vlan_id}"

        lower.check(request, conf.lower, "vlan", expect)

    def status(self, request: skel.Request) -> None:
        lower.status(request, load_conf(request).lower)

    def gc(self, request: skel.Request) -> None:
        lower.gc(request)


PLUGIN = Vlan()


def main() -> NoReturn:
    skel.main(PLUGIN)
