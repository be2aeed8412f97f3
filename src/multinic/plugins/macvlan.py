"""multinic-macvlan: a macvlan on a host device, placed in the pod (config as the reference).

Fields: ``master`` (default: the interface of the default route), ``mode``
(bridge, private, vepa, passthru; default bridge), ``mtu`` (0/absent: the
master's), ``mac`` (also CNI_ARGS ``MAC=`` and the ``mac`` capability,
``runtimeConfig.mac``, in increasing precedence), ``linkInContainer`` (the
master lives in the pod's namespace). Without ``ipam`` the link is layer 2
only: up, no addresses.
"""

from __future__ import annotations

from multinic.cni import skel
from multinic.cni.errors import InvalidConfigError
from multinic.cni.types import Result
from multinic.cni.version import SUPPORTED_VERSIONS
from multinic.dataplane import DataplaneError, Link, Netns, create_macvlan
from multinic.dataplane.links import mac_bytes
from multinic.plugins import lower
from multinic.plugins.fields import Fields, plugin_fields
from multinic.records import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from typing import NoReturn

TYPE = "multinic-macvlan"
MODES = ("bridge", "private", "vepa", "passthru")


class MacvlanConf(NamedTuple):
    """The plugin's own fields."""

    lower: lower.LowerConf
    mode: str
    mac: str | None


def load_conf(request: skel.Request) -> MacvlanConf:
    """Parse and validate the config (and the MAC from CNI_ARGS / runtimeConfig)."""
    fields = plugin_fields(request.config.raw, TYPE)
    mode = fields.string("mode") or "bridge"  # "" means bridge in the reference too
    if mode not in MODES:
        raise fields.error("mode", f"must be one of {', '.join(MODES)}, not {mode!r}")
    mac = fields.string("mac")
    mac = dict(request.args).get("MAC") or mac
    runtime = Fields(request.config.runtime_config, f"{TYPE}: runtimeConfig")
    mac = runtime.string("mac") or mac
    if mac:
        try:
            mac_bytes(mac)
        except DataplaneError as exc:
            raise InvalidConfigError(f"{TYPE}: invalid MAC address {mac!r}") from exc
    return MacvlanConf(lower.lower_conf(fields), mode, mac.lower() or None)


class Macvlan:
    """The macvlan plugin."""

    name = TYPE
    supported_versions = SUPPORTED_VERSIONS

    def add(self, request: skel.Request) -> Result:
        conf = load_conf(request)

        def create(lower_ns: Netns, master: Link, pod: Netns) -> Link:
            return create_macvlan(
                lower_ns,
                request.ifname,
                master,
                mode=conf.mode,
                target_ns=pod,
                mtu=conf.lower.mtu,
                mac=conf.mac,
            )

        return lower.add(request, conf.lower, create, ipam_required=False)

    def delete(self, request: skel.Request) -> None:
        lower.delete(request)

    def check(self, request: skel.Request) -> None:
        conf = load_conf(request)

        def expect(link: Link) -> str | None:
            mode = link.info.get("mode")
            return None if mode == conf.mode else f"macvlan mode is {mode}, expected {conf.mode}"

        lower.check(request, conf.lower, "macvlan", expect)

    def status(self, request: skel.Request) -> None:
        lower.status(request, load_conf(request).lower)

    def gc(self, request: skel.Request) -> None:
        lower.gc(request)


PLUGIN = Macvlan()


def main() -> NoReturn:
    skel.main(PLUGIN)
