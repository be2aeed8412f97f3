"""Neighbour and FDB entries on a real vxlan device, observed with `ip neigh` and `bridge fdb`.

What the primary network's VXLAN overlay programs for every remote node: a
permanent neighbour entry (VTEP address -> VTEP MAC, per address family) and
an FDB entry on the vxlan device (that MAC -> the node's underlay address).
"""

from __future__ import annotations

import json
import subprocess
from ipaddress import ip_address
from typing import Any

import pytest

from multinic import dataplane as dp
from multinic.dataplane.neighbours import NUD_PERMANENT
from multinic.lab import netns as lab
from tests.netns.dataplane.conftest import Space

MAC_A = "0e:6d:c0:00:02:02"
MAC_B = "0e:6d:c0:00:02:03"
UNDERLAY_A = ip_address("192.0.2.2")
UNDERLAY_B = ip_address("192.0.2.3")
VTEP4 = ip_address("10.44.1.0")
VTEP6 = ip_address("fd00:44:1::")


@pytest.fixture
def vxlan(node: Space) -> dp.Link:
    link = dp.create_vxlan(
        node.ns, "mnvx0", 42, local=ip_address("192.0.2.1"), port=4790, learning=False
    )
    dp.set_up(node.ns, link)
    return link


def bridge_fdb(space: Space, dev: str) -> list[dict[str, Any]]:
    """`bridge -j fdb show dev DEV`, only the entries with a remote (the ones we program)."""
    done = subprocess.run(
        ["bridge", "-n", space.name, "-j", "fdb", "show", "dev", dev],
        capture_output=True,
        check=True,
    )
    return [e for e in json.loads(done.stdout or b"[]") if e.get("dst")]


def ip_neigh(space: Space, dev: str) -> list[dict[str, Any]]:
    return lab.ip_json("neigh", "show", "dev", dev, netns=space.name)


def permanent(space: Space, link: dp.Link) -> set[tuple[object, str | None]]:
    """Our listing's permanent entries (it also shows the kernel's NOARP multicast ones)."""
    return {(e.dst, e.mac) for e in dp.list_neighbours(space.ns, link) if e.state & NUD_PERMANENT}


def test_fdb_entry_added_listed_replaced_deleted(node: Space, vxlan: dp.Link) -> None:
    dp.replace_fdb(node.ns, vxlan, MAC_A, UNDERLAY_A)

    [seen] = bridge_fdb(node, "mnvx0")
    assert (seen["mac"], seen["dst"], seen["state"]) == (MAC_A, str(UNDERLAY_A), "permanent")
    [ours] = [e for e in dp.list_fdb(node.ns, "mnvx0") if e.dst is not None]
    assert (ours.mac, ours.dst, ours.ifindex) == (MAC_A, UNDERLAY_A, vxlan.ifindex)
    assert ours.state & NUD_PERMANENT

    dp.replace_fdb(node.ns, "mnvx0", MAC_A, UNDERLAY_B)  # the node moved: one entry, new dst
    assert [(e["mac"], e["dst"]) for e in bridge_fdb(node, "mnvx0")] == [(MAC_A, str(UNDERLAY_B))]

    assert dp.delete_fdb(node.ns, "mnvx0", MAC_A, UNDERLAY_B) is True
    assert bridge_fdb(node, "mnvx0") == []
    assert dp.delete_fdb(node.ns, "mnvx0", MAC_A, UNDERLAY_B, missing_ok=True) is False
    with pytest.raises(dp.NeighbourNotFoundError):
        dp.delete_fdb(node.ns, "mnvx0", MAC_A, UNDERLAY_B)


def test_fdb_entries_are_per_mac(node: Space, vxlan: dp.Link) -> None:
    dp.replace_fdb(node.ns, vxlan, MAC_A, UNDERLAY_A)
    dp.replace_fdb(node.ns, vxlan, MAC_B, UNDERLAY_B)

    seen = {(e["mac"], e["dst"]) for e in bridge_fdb(node, "mnvx0")}
    assert seen == {(MAC_A, str(UNDERLAY_A)), (MAC_B, str(UNDERLAY_B))}
    listed = {(e.mac, e.dst) for e in dp.list_fdb(node.ns, vxlan) if e.dst is not None}
    assert listed == {(MAC_A, UNDERLAY_A), (MAC_B, UNDERLAY_B)}

    dp.delete_fdb(node.ns, vxlan, MAC_A, UNDERLAY_A)
    assert {e["mac"] for e in bridge_fdb(node, "mnvx0")} == {MAC_B}


def test_neighbours_of_both_families(node: Space, vxlan: dp.Link) -> None:
    dp.replace_neighbour(node.ns, vxlan, VTEP4, MAC_A)
    dp.replace_neighbour(node.ns, "mnvx0", VTEP6, MAC_A)

    seen = {(e["dst"], e["lladdr"], tuple(e["state"])) for e in ip_neigh(node, "mnvx0")}
    assert seen == {(str(VTEP4), MAC_A, ("PERMANENT",)), (str(VTEP6), MAC_A, ("PERMANENT",))}
    assert permanent(node, vxlan) == {(VTEP4, MAC_A), (VTEP6, MAC_A)}

    dp.replace_neighbour(node.ns, vxlan, VTEP6, MAC_B)  # replaced, not added beside
    assert {(e["dst"], e["lladdr"]) for e in ip_neigh(node, "mnvx0")} == {
        (str(VTEP4), MAC_A),
        (str(VTEP6), MAC_B),
    }

    assert dp.delete_neighbour(node.ns, vxlan, VTEP4) is True
    assert [e["dst"] for e in ip_neigh(node, "mnvx0")] == [str(VTEP6)]
    assert dp.delete_neighbour(node.ns, vxlan, VTEP4, missing_ok=True) is False
    with pytest.raises(dp.NeighbourNotFoundError):
        dp.delete_neighbour(node.ns, vxlan, VTEP4)


def test_listing_one_link_leaves_out_the_others(node: Space, vxlan: dp.Link) -> None:
    other = dp.create_vxlan(node.ns, "mnvx1", 43, local=ip_address("192.0.2.1"), port=4791)
    dp.set_up(node.ns, other)
    dp.replace_neighbour(node.ns, vxlan, VTEP4, MAC_A)
    dp.replace_neighbour(node.ns, other, ip_address("10.44.2.0"), MAC_B)

    assert permanent(node, vxlan) == {(VTEP4, MAC_A)}
    assert permanent(node, other) == {(ip_address("10.44.2.0"), MAC_B)}
    everywhere = {(e.ifindex, e.dst) for e in dp.list_neighbours(node.ns)}
    assert {(vxlan.ifindex, VTEP4), (other.ifindex, ip_address("10.44.2.0"))} <= everywhere


@pytest.mark.parametrize("mac", ["0e:6d:c0:00:02", "zz:6d:c0:00:02:02", "0e6dc0000202", ""])
def test_a_bad_mac_is_refused_and_nothing_is_added(node: Space, vxlan: dp.Link, mac: str) -> None:
    with pytest.raises(dp.DataplaneError, match="invalid MAC"):
        dp.replace_fdb(node.ns, vxlan, mac, UNDERLAY_A)
    with pytest.raises(dp.DataplaneError, match="invalid MAC"):
        dp.replace_neighbour(node.ns, vxlan, VTEP4, mac)
    assert bridge_fdb(node, "mnvx0") == []
    assert ip_neigh(node, "mnvx0") == []


def test_a_missing_link_is_a_clear_error(node: Space) -> None:
    with pytest.raises(dp.LinkNotFoundError) as raised:
        dp.replace_fdb(node.ns, "mnvx-none", MAC_A, UNDERLAY_A)
    assert "mnvx-none" in str(raised.value.details)
    with pytest.raises(dp.LinkNotFoundError):
        dp.replace_neighbour(node.ns, "mnvx-none", VTEP4, MAC_A)
    with pytest.raises(dp.LinkNotFoundError):
        dp.delete_neighbour(node.ns, "mnvx-none", VTEP4, missing_ok=True)
    with pytest.raises(dp.LinkNotFoundError):
        dp.list_fdb(node.ns, "mnvx-none")
