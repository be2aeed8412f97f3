"""multinic-bridge's VLAN options on the guest's kernel (this host's bridge has no VLAN filtering).

Addresses: 198.18.64.0/24 (this file's part of the bridge/ptp/loopback block).
One test doing a lot: a guest boot is slow.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from multinic.dataplane import ensure_bridge, find_link, host_netns
from multinic.lab import netns as lab
from multinic.plugins import bridge as plugin
from multinic.plugins.bridge import PLUGIN
from tests.netns.conftest import unique
from tests.netns.plugins import inprocess
from tests.netns.plugins.test_bridge_races import conf, missing_once


def vlans(dev: str) -> list[dict[str, Any]]:
    """The VLANs of a bridge port, as ``bridge -j vlan show`` lists them."""
    out = subprocess.run(
        ["bridge", "-j", "vlan", "show", "dev", dev], capture_output=True, text=True, check=True
    ).stdout
    shown: list[dict[str, Any]] = json.loads(out) if out.strip() else []
    return list(shown[0]["vlans"]) if shown else []


def network(bridge: str, data_dir: Path, name: str, **fields: Any) -> dict[str, Any]:
    return {
        "cniVersion": "1.1.0",
        "name": name,
        "type": "multinic-bridge",
        "bridge": bridge,
        "ipam": {
            "type": "multinic-host-local",
            "dataDir": str(data_dir),
            "ranges": [[{"subnet": "198.18.64.0/24", **fields.pop("range", {})}]],
        },
        **fields,
    }


def test_access_and_trunk_ports_isolate_vlans(
    pod: str, pod2: str, host_links: list[str], tmp_path: Path
) -> None:
    bridge = unique("mnv")  # room for ".100" in 15 characters
    host_links.extend([bridge, f"{bridge}.100"])
    third = unique("mnt-pod-")
    lab.create_netns(third)
    try:
        v100 = network(bridge, tmp_path / "a", "v100", vlan=100, isGateway=True)
        v200 = network(
            bridge, tmp_path / "b", "v200", vlan=200, preserveDefaultVlan=False,
            range={"rangeStart": "198.18.64.200"},
        )  # fmt: skip
        first, second = inprocess.Pod(PLUGIN, pod, v100), inprocess.Pod(PLUGIN, pod2, v100)
        other = inprocess.Pod(PLUGIN, third, v200)
        result = first.add()
        second.add()
        other_result = other.add()
        assert (
            lab.ip_json("-d", "link", "show", bridge)[0]["linkinfo"]["info_data"]["vlan_filtering"]
            == 1
        )
        # An access port: VLAN 100 untagged with PVID; the default VLAN 1 kept (as the reference).
        port = vlans(result["interfaces"][1]["name"])
        assert {"vlan": 100, "flags": ["PVID", "Egress Untagged"]} in port
        assert any(v["vlan"] == 1 for v in port)
        # preserveDefaultVlan false: VLAN 1 removed from the port.
        other_port = other_result["interfaces"][1]["name"]
        assert [v["vlan"] for v in vlans(other_port)] == [200]
        # isGateway with a VLAN: the gateway lives on <bridge>.100, reachable in VLAN 100 only.
        assert result["interfaces"][3]["name"] == f"{bridge}.100"
        assert lab.addresses(f"{bridge}.100") == ["198.18.64.1/24"]
        assert inprocess.ping(pod, "198.18.64.1")
        assert inprocess.ping(pod, "198.18.64.3")  # the other pod of VLAN 100
        assert not inprocess.ping(third, "198.18.64.2")  # VLAN 200 does not reach VLAN 100
        first.ok("CHECK")
        # A trunk port: tagged VLANs only.
        trunk = inprocess.Pod(
            PLUGIN,
            third,
            network(
                bridge, tmp_path / "c", "trunk", vlanTrunk=[{"minID": 10, "maxID": 12}, {"id": 20}]
            ),
        )
        trunk.ifname = "net1"
        trunked = trunk.add()
        tagged = vlans(trunked["interfaces"][1]["name"])
        assert {v["vlan"] for v in tagged if "flags" not in v} == {10, 11, 12, 20}
        for attachment in (first, second, other, trunk):
            attachment.ok("DEL")
        assert lab.link_names(pod) == lab.link_names(pod2) == lab.link_names(third) == {"lo"}
    finally:
        lab.delete_netns(third)


def test_a_vlan_gateway_a_concurrent_add_made_is_taken(
    host_links: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two first ADDs of a VLAN network: the loser takes the winner's <bridge>.<vlan>."""
    name = unique("mnv")
    host_links.extend([name, f"{name}.7"])
    host = host_netns()
    br = ensure_bridge(host, name, vlan_filtering=True)
    first = plugin._vlan_gateway(host, br, conf(name, vlan=7))  # the other ADD won
    monkeypatch.setattr(plugin, "find_link", missing_once(find_link, None))
    second = plugin._vlan_gateway(host, br, conf(name, vlan=7))
    assert (second.name, second.ifindex) == (first.name, first.ifindex)
