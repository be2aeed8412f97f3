"""The host-link leak check: it must see this run's leaks and leave other runs' links alone."""

from __future__ import annotations

import pytest

from multinic.lab import netns as lab
from tests.netns.conftest import links_of_this_run, remove_host_links, unique


def test_pod_host_ends_and_ports_of_owned_links_are_ours_other_runs_links_are_not(
    pod: str,
) -> None:
    before = lab.link_names()
    other_run_ns = unique("mnt-other-")  # created outside scratch_netns: another run's pod
    bridge, pod_end, port, foreign, loose = (unique(p) for p in ("mb", "mp", "mq", "mf", "ml"))
    lab.create_netns(other_run_ns)
    try:
        lab.ip("link", "add", bridge, "type", "bridge")
        lab.ip("link", "add", pod_end, "type", "veth", "peer", "name", "x" + pod_end)
        lab.ip("link", "set", "x" + pod_end, "netns", pod)
        lab.ip("link", "add", port, "type", "veth", "peer", "name", "x" + port)
        lab.ip("link", "set", port, "master", bridge)
        lab.ip("link", "add", foreign, "type", "veth", "peer", "name", "x" + foreign)
        lab.ip("link", "set", "x" + foreign, "netns", other_run_ns)
        lab.ip("link", "add", loose, "type", "bridge")

        assert links_of_this_run(before, [bridge]) == {bridge, pod_end, port}
        assert links_of_this_run(before, []) == {pod_end}
    finally:
        for name in (bridge, pod_end, port, foreign, loose):
            lab.delete_link(name)
        lab.delete_netns(other_run_ns)


def test_a_pods_host_end_left_behind_fails_the_test_and_is_removed(pod: str) -> None:
    before = lab.link_names()
    host_end = unique("mh")
    lab.ip("link", "add", host_end, "type", "veth", "peer", "name", "x" + host_end)
    lab.ip("link", "set", "x" + host_end, "netns", pod)
    try:
        with pytest.raises(AssertionError, match=host_end):
            remove_host_links(before, [])
        assert host_end not in lab.link_names()
    finally:
        lab.delete_link(host_end)


def test_a_port_whose_peer_is_registered_goes_with_it(pod: str) -> None:
    # A bridge with a VLAN gateway: the gateway is a veth pair whose one end
    # (<bridge>.<vlan>) the test registers and whose other end is a bridge port.
    before = lab.link_names()
    bridge, gateway, port = unique("mb"), unique("mg"), unique("mq")
    lab.ip("link", "add", bridge, "type", "bridge")
    lab.ip("link", "add", gateway, "type", "veth", "peer", "name", port)
    lab.ip("link", "set", port, "master", bridge)
    try:
        remove_host_links(before, [bridge, gateway])
        assert not {bridge, gateway, port} & lab.link_names()
    finally:
        for name in (bridge, gateway, port):
            lab.delete_link(name)
