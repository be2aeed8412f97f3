"""Which module implements each of multinic's plugin types.

The type is what a network config's ``"type"`` names and what the executable in
the CNI bin dir is called. Each module defines ``PLUGIN`` (the plugin object the
executable and the node daemon both call) and ``main()``.
"""

from __future__ import annotations

from collections.abc import Mapping

from multinic.records import TYPE_CHECKING

if TYPE_CHECKING:
    from multinic.cni.skel import Plugin

PLUGINS: Mapping[str, str] = {
    # One line per plugin, sorted by type.
    "multinic-bridge": "multinic.plugins.bridge",
    "multinic-host-device": "multinic.plugins.host_device",
    "multinic-host-local": "multinic.plugins.host_local",
    "multinic-ipam": "multinic.plugins.cluster_ipam",
    "multinic-ipvlan": "multinic.plugins.ipvlan",
    "multinic-loopback": "multinic.plugins.loopback",
    "multinic-macvlan": "multinic.plugins.macvlan",
    "multinic-ptp": "multinic.plugins.ptp",
    "multinic-sbr": "multinic.plugins.sbr",
    "multinic-static": "multinic.plugins.static",
    "multinic-tuning": "multinic.plugins.tuning",
    "multinic-vlan": "multinic.plugins.vlan",
}


def is_ours(plugin_type: str) -> bool:
    """True when ``plugin_type`` is one of multinic's plugins."""
    return plugin_type in PLUGINS


def load_plugin(plugin_type: str) -> Plugin:
    """The plugin object of one of our types, imported on first use."""
    import importlib  # here: a plugin that delegates to an executable never needs it

    module = importlib.import_module(PLUGINS[plugin_type])
    plugin: Plugin = module.PLUGIN
    return plugin
