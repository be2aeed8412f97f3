"""Links created and changed by the data plane, observed with `ip -j -d link`."""

from __future__ import annotations

import errno

import pytest

from multinic import dataplane as dp
from multinic.lab import netns as lab
from tests.netns.dataplane.conftest import Space, ip_link, ip_names


def test_veth_peer_lands_in_the_pod_with_name_mtu_and_mac(node: Space, pod: Space) -> None:
    host, inside = dp.create_veth(
        node.ns, "veth-h", "eth0", peer_ns=pod.ns, mtu=1450, mac="02:aa:00:00:00:01",
        peer_mac="02:bb:00:00:00:02",
    )  # fmt: skip
    seen_host, seen_pod = ip_link(node, "veth-h"), ip_link(pod, "eth0")
    assert seen_host["mtu"] == seen_pod["mtu"] == 1450
    assert seen_host["address"] == "02:aa:00:00:00:01" == host.mac
    assert seen_pod["address"] == "02:bb:00:00:00:02" == inside.mac
    assert seen_pod["linkinfo"]["info_kind"] == "veth"
    assert (host.ifindex, inside.ifindex) == (seen_host["ifindex"], seen_pod["ifindex"])
    assert host.parent == inside.ifindex and inside.parent == host.ifindex
    assert ip_names(pod) == {"lo", "eth0"} and ip_names(node) == {"lo", "veth-h"}


def test_creating_an_existing_pod_interface_fails_and_creates_nothing(
    node: Space, pod: Space
) -> None:
    dp.create_veth(node.ns, "veth-a", "eth0", peer_ns=pod.ns)
    with pytest.raises(dp.LinkExistsError) as caught:
        dp.create_veth(node.ns, "veth-b", "eth0", peer_ns=pod.ns)
    assert (caught.value.interface, caught.value.netns) == ("eth0", pod.path)
    assert caught.value.errno == errno.EEXIST
    assert ip_names(node) == {"lo", "veth-a"} and ip_names(pod) == {"lo", "eth0"}


def test_creating_an_existing_host_name_names_the_host_side(node: Space, pod: Space) -> None:
    dp.create_veth(node.ns, "veth-a", "eth0", peer_ns=pod.ns)
    with pytest.raises(dp.LinkExistsError) as caught:
        dp.create_veth(node.ns, "veth-a", "eth1", peer_ns=pod.ns)
    assert (caught.value.interface, caught.value.netns) == ("veth-a", node.path)
    assert ip_names(pod) == {"lo", "eth0"}


def test_veth_in_the_calling_threads_namespace(node: Space, pod: Space) -> None:
    """host_netns() is the calling thread's namespace: a plugin's host side.

    The thread here entered the scratch node (as a plugin started in a node
    would be), so the host end lands there and the real host stays untouched.
    """
    name = f"mntdp{pod.name[-8:]}"

    def create() -> None:
        with dp.host_netns() as host:
            dp.create_veth(host, name, "eth0", peer_ns=pod.ns, mtu=1400)

    dp.run_in_netns(node.ns, create)
    assert ip_link(pod, "eth0")["mtu"] == 1400
    assert ip_link(node, name)["mtu"] == 1400
    assert name not in lab.link_names()


def test_ensure_bridge_is_idempotent_and_applies_options(node: Space) -> None:
    first = dp.ensure_bridge(node.ns, "br0", mtu=1400, promisc=True)
    again = dp.ensure_bridge(node.ns, "br0", mtu=1400, promisc=True)
    assert first == again
    seen = ip_link(node, "br0")
    assert seen["linkinfo"]["info_kind"] == "bridge"
    assert seen["mtu"] == 1400 and seen["promiscuity"] >= 1 and "UP" in seen["flags"]
    assert ip_names(node) == {"lo", "br0"}
    changed = dp.ensure_bridge(node.ns, "br0", mtu=1300)
    assert changed.ifindex == first.ifindex and ip_link(node, "br0")["mtu"] == 1300


def test_ensure_bridge_refuses_a_link_that_is_not_a_bridge(node: Space, pod: Space) -> None:
    dp.create_veth(node.ns, "br0", "eth0", peer_ns=pod.ns)
    with pytest.raises(dp.WrongLinkKindError, match="not a bridge") as caught:
        dp.ensure_bridge(node.ns, "br0")
    assert (caught.value.interface, caught.value.netns) == ("br0", node.path)
    assert ip_link(node, "br0")["linkinfo"]["info_kind"] == "veth"


def test_bridge_port_master_nomaster_and_hairpin(node: Space, pod: Space) -> None:
    bridge = dp.ensure_bridge(node.ns, "br0")
    host, _ = dp.create_veth(node.ns, "veth-h", "eth0", peer_ns=pod.ns)
    dp.set_master(node.ns, host, bridge)
    dp.set_hairpin(node.ns, "veth-h")
    seen = ip_link(node, "veth-h")
    assert seen["master"] == "br0"
    assert seen["linkinfo"]["info_slave_kind"] == "bridge"
    assert seen["linkinfo"]["info_slave_data"]["hairpin"] is True
    assert dp.get_link(node.ns, "veth-h").info["hairpin"] == 1
    dp.set_hairpin(node.ns, "veth-h", on=False)
    assert ip_link(node, "veth-h")["linkinfo"]["info_slave_data"]["hairpin"] is False
    dp.set_master(node.ns, "veth-h", None)
    assert "master" not in ip_link(node, "veth-h")
    assert dp.get_link(node.ns, "veth-h").master is None


@pytest.mark.parametrize("mode", ["bridge", "private", "vepa", "passthru"])
def test_macvlan_on_a_host_parent_lands_in_the_pod(node: Space, pod: Space, mode: str) -> None:
    lab.ip("link", "add", "uplink", "type", "veth", "peer", "name", "far", netns=node.name)
    link = dp.create_macvlan(node.ns, "net1", "uplink", mode=mode, target_ns=pod.ns, mtu=1400)
    seen = ip_link(pod, "net1")
    assert seen["linkinfo"]["info_kind"] == "macvlan"
    assert seen["linkinfo"]["info_data"]["mode"] == mode
    assert seen["mtu"] == 1400 and link.info["mode"] == mode
    assert "net1" not in ip_names(node)


def test_macvlan_created_inside_the_pod(pod: Space) -> None:
    lab.ip("link", "add", "uplink", "type", "veth", "peer", "name", "far", netns=pod.name)
    dp.create_macvlan(pod.ns, "net1", "uplink", mode="bridge", mac="02:cc:00:00:00:03")
    seen = ip_link(pod, "net1")
    assert seen["address"] == "02:cc:00:00:00:03" and seen["link"] == "uplink"


def test_macvlan_on_a_missing_parent_names_it(node: Space, pod: Space) -> None:
    with pytest.raises(dp.LinkNotFoundError) as caught:
        dp.create_macvlan(node.ns, "net1", "nosuch0", target_ns=pod.ns)
    assert (caught.value.interface, caught.value.netns) == ("nosuch0", node.path)
    assert ip_names(pod) == {"lo"}


def test_unknown_macvlan_mode_is_refused(node: Space, pod: Space) -> None:
    with pytest.raises(dp.DataplaneError, match="unknown macvlan mode"):
        dp.create_macvlan(node.ns, "net1", "lo", mode="bogus", target_ns=pod.ns)


def test_vxlan(node: Space) -> None:
    import ipaddress

    dp.create_vxlan(node.ns, "vx0", 4242, port=4790, local=ipaddress.ip_address("192.0.2.1"))
    data = ip_link(node, "vx0")["linkinfo"]["info_data"]
    assert (data["id"], data["port"], data["local"]) == (4242, 4790, "192.0.2.1")
    assert dp.get_link(node.ns, "vx0").info["vni"] == 4242


def test_host_device_moves_into_the_pod_renamed_and_back(node: Space, pod: Space) -> None:
    lab.ip("link", "add", "dev0", "type", "veth", "peer", "name", "far", netns=node.name)
    mac = ip_link(node, "dev0")["address"]
    moved = dp.move_link(node.ns, "dev0", pod.ns, new_name="net1")
    assert moved.name == "net1" and ip_link(pod, "net1")["address"] == mac
    assert "dev0" not in ip_names(node)
    back = dp.move_link(pod.ns, "net1", node.ns, new_name="dev0")
    assert back.name == "dev0" and ip_link(node, "dev0")["address"] == mac
    assert ip_names(pod) == {"lo"}


def test_moving_onto_a_taken_name_names_the_target(node: Space, pod: Space) -> None:
    lab.ip("link", "add", "dev0", "type", "veth", "peer", "name", "far", netns=node.name)
    lab.ip("link", "add", "net1", "type", "veth", "peer", "name", "x", netns=pod.name)
    with pytest.raises(dp.LinkExistsError) as caught:
        dp.move_link(node.ns, "dev0", pod.ns, new_name="net1")
    assert (caught.value.interface, caught.value.netns) == ("net1", pod.path)
    assert "dev0" in ip_names(node)


def test_set_link_changes_every_attribute(node: Space) -> None:
    lab.ip("link", "add", "a0", "type", "veth", "peer", "name", "b0", netns=node.name)
    dp.set_link(
        node.ns, "a0", up=True, mtu=1280, mac="02:dd:00:00:00:04", promisc=True,
        allmulti=True, txqlen=77,
    )  # fmt: skip
    seen = ip_link(node, "a0")
    assert "UP" in seen["flags"] and "PROMISC" in seen["flags"] and "ALLMULTI" in seen["flags"]
    assert (seen["mtu"], seen["address"], seen["txqlen"]) == (1280, "02:dd:00:00:00:04", 77)
    link = dp.get_link(node.ns, "a0")
    assert (link.up, link.promisc, link.allmulti, link.txqlen) == (True, True, True, 77)
    dp.set_link(node.ns, "a0", up=False, promisc=False, name="c0")
    seen = ip_link(node, "c0")
    assert "UP" not in seen["flags"] and "PROMISC" not in seen["flags"]
    dp.set_up(node.ns, "c0")
    assert "UP" in ip_link(node, "c0")["flags"]
    dp.set_down(node.ns, "c0")
    assert "UP" not in ip_link(node, "c0")["flags"]


def test_kernel_errors_name_interface_and_namespace(node: Space) -> None:
    lab.ip("link", "add", "a0", "type", "veth", "peer", "name", "b0", netns=node.name)
    with pytest.raises(dp.NetlinkError) as caught:
        dp.set_link(node.ns, "a0", mtu=10)
    error = caught.value
    assert (error.interface, error.netns, error.errno) == ("a0", node.path, errno.EINVAL)
    assert "'a0'" in str(error) and node.path in str(error)
    assert ip_link(node, "a0")["mtu"] == 1500


def test_bad_mac_is_refused_before_the_kernel(node: Space) -> None:
    with pytest.raises(dp.DataplaneError, match="invalid MAC"):
        dp.set_link(node.ns, "lo", mac="02:zz:00:00:00:00")


def test_get_find_list(node: Space) -> None:
    lab.ip("link", "add", "a0", "type", "veth", "peer", "name", "b0", netns=node.name)
    assert dp.find_link(node.ns, "nope0") is None
    with pytest.raises(dp.LinkNotFoundError) as caught:
        dp.get_link(node.ns, "nope0")
    assert (caught.value.interface, caught.value.netns) == ("nope0", node.path)
    a0 = dp.get_link(node.ns, "a0")
    assert dp.get_link(node.ns, a0.ifindex) == a0
    assert {link.name for link in dp.list_links(node.ns)} == ip_names(node)


def test_delete_link_and_missing_ok(node: Space, pod: Space) -> None:
    dp.create_veth(node.ns, "veth-h", "eth0", peer_ns=pod.ns)
    assert dp.delete_link(pod.ns, "eth0") is True
    assert ip_names(pod) == {"lo"} and ip_names(node) == {"lo"}  # the peer went too
    assert dp.delete_link(pod.ns, "eth0", missing_ok=True) is False
    with pytest.raises(dp.LinkNotFoundError):
        dp.delete_link(pod.ns, "eth0")


def test_bad_vlan_id_and_ipvlan_mode_are_refused_before_the_kernel(node: Space, pod: Space) -> None:
    # Input checks only: this host's kernel has no vlan/ipvlan, so nothing reaches it.
    with pytest.raises(dp.DataplaneError, match="not in 1-4094"):
        dp.create_vlan(node.ns, "eth1", "lo", 4095, target_ns=pod.ns)
    with pytest.raises(dp.DataplaneError, match="unknown ipvlan mode"):
        dp.create_ipvlan(node.ns, "eth1", "lo", mode="l4", target_ns=pod.ns)
    assert ip_names(pod) == {"lo"}
