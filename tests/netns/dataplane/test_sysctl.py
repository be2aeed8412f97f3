"""Sysctls read and written inside a namespace, observed through `ip netns exec`."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from multinic import dataplane as dp
from multinic.lab import netns as lab
from tests.netns.dataplane.conftest import Space


def sysctl_in(space: Space, key: str) -> str:
    return lab.ip("netns", "exec", space.name, "sysctl", "-n", key).strip()


def test_write_and_read_in_the_namespace_only(pod: Space) -> None:
    host_file = Path("/proc/sys/net/ipv4/ip_forward")
    host_before = host_file.read_text().strip()
    wanted = "0" if host_before == "1" else "1"
    dp.write_sysctl(pod.ns, "net.ipv4.ip_forward", wanted)
    assert sysctl_in(pod, "net.ipv4.ip_forward") == wanted
    assert dp.read_sysctl(pod.ns, "net.ipv4.ip_forward") == wanted
    assert host_file.read_text().strip() == host_before


def test_interface_sysctl_in_slash_form(pod: Space) -> None:
    lab.ip("link", "add", "eth0.5", "type", "veth", "peer", "name", "x0", netns=pod.name)
    dp.write_sysctl(pod.ns, "net/ipv4/conf/eth0.5/arp_notify", 1)
    assert sysctl_in(pod, "net.ipv4.conf.eth0/5.arp_notify") == "1"
    dp.write_sysctl(pod.ns, "net.ipv6.conf.x0.accept_dad", "0")
    assert sysctl_in(pod, "net.ipv6.conf.x0.accept_dad") == "0"


def test_missing_key_names_interface_and_namespace(pod: Space) -> None:
    with pytest.raises(dp.SysctlError) as caught:
        dp.write_sysctl(pod.ns, "net.ipv4.conf.eth9.arp_notify", "1")
    error = caught.value
    assert (error.interface, error.netns, error.errno) == ("eth9", pod.path, errno.ENOENT)
    with pytest.raises(dp.SysctlError):
        dp.read_sysctl(pod.ns, "net.ipv4.no_such_thing")


def test_refused_value(pod: Space) -> None:
    with pytest.raises(dp.SysctlError) as caught:
        dp.write_sysctl(pod.ns, "net.ipv4.ip_forward", "bogus")
    assert caught.value.errno == errno.EINVAL


@pytest.mark.parametrize("key", ["kernel.hostname", "net..x", "net/../../kernel/hostname", "net"])
def test_only_network_keys(pod: Space, key: str) -> None:
    with pytest.raises(dp.SysctlError, match="not a network sysctl key"):
        dp.write_sysctl(pod.ns, key, "x")
