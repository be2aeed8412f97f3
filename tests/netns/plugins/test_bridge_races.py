"""multinic-bridge when two ADDs of one network set up the node at the same time.

The node daemon runs ADDs in parallel, so the first pods of a network race to
make its bridge, its gateway address and its VLAN gateway link. The loser of
each race must take what the winner made, not fail the pod. The races are made
certain here: the loser's look is made to miss what the winner has just made.
(The VLAN gateway's race needs VLAN filtering, which this host's bridge lacks:
tests/guest_kernel/test_bridge_guest.py.)
"""

from __future__ import annotations

from ipaddress import ip_interface
from typing import Any

import pytest

from multinic.cni.types import DNS
from multinic.dataplane import add_address, ensure_bridge, host_netns, list_addresses
from multinic.plugins import bridge as plugin
from tests.netns.conftest import unique
from tests.netns.plugins.conftest import PluginNode
from tests.support.lower_plugins import on_node

GATEWAY = ip_interface("198.18.42.1/24")


def conf(name: str, vlan: int = 0) -> plugin.BridgeConf:
    return plugin.BridgeConf(
        bridge=name,
        is_gateway=True,
        is_default_gateway=False,
        force_address=False,
        ip_masq=False,
        mtu=None,
        hairpin=False,
        promisc=False,
        vlan=vlan,
        vlan_trunk=(),
        preserve_default_vlan=True,
        macspoofchk=False,
        enable_dad=False,
        layer3=False,
        dns=DNS(),
    )


def missing_once(real: Any, empty: Any) -> Any:
    """``real``, except that its first call answers ``empty`` (the look that lost the race)."""
    calls = [0]

    def look(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return empty if calls[0] == 1 else real(*args, **kwargs)

    return look


def test_a_gateway_address_a_concurrent_add_assigned_is_taken(
    plugin_node: PluginNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = unique("mnrace")
    plugin_node.keep.add(name)

    def race() -> list[Any]:
        host = host_netns()
        br = ensure_bridge(host, name)
        add_address(host, br, GATEWAY, nodad=True)  # the other ADD won
        monkeypatch.setattr(plugin, "list_addresses", missing_once(list_addresses, []))
        plugin._ensure_address(host, br, GATEWAY, conf(name))
        return list_addresses(host, br, version=4)

    assert on_node(race) == [GATEWAY]
