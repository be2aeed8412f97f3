"""A real runtime drives the plugins: podman 4's CNI backend runs busybox containers.

Each case is one conflist: a bridge plugin with host-local IPAM, the reference
executables or ours. The container must get an address from the network's range,
reach its gateway (the bridge, in the namespace podman runs in: the harness's
"node", so the machine's own namespace is never touched), and after ``podman rm``
leave no port on the bridge, no host-side veth, no host-local reservation, no
libcni cache entry and no network namespace behind. An ADD that fails (IPAM
exhausted) must leave nothing either; a dual-stack case covers IPv6.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from pathlib import Path

import pytest

from multinic.lab import netns as lab
from multinic.lab.netns import NETNS_DIR
from tests.e2e.podman.conftest import MakeNetwork, Network, cache_result
from tests.e2e.podman.harness import (
    IMAGE,
    LIBCNI_CACHE,
    PodmanError,
    PodmanHost,
    libcni_cache_entry,
)

# (bridge type, IPAM type, subnet): ours in the main cases, the reference as the control.
# RFC 2544 space, one /24 per case, apart from the other tests' 198.18.x ranges.
STACKS = [
    pytest.param("multinic-bridge", "host-local", "198.18.161.0/24", id="multinic-bridge"),
    pytest.param(
        "multinic-bridge", "multinic-host-local", "198.18.162.0/24", id="multinic-bridge+ipam"
    ),
    pytest.param("bridge", "multinic-host-local", "198.18.163.0/24", id="reference-bridge+ipam"),
    pytest.param("bridge", "host-local", "198.18.160.0/24", id="reference-bridge"),
]

INET = re.compile(r"\binet (\d+\.\d+\.\d+\.\d+/\d+)")


def eth0_address(ip_output: str) -> ipaddress.IPv4Interface:
    """The one IPv4 address ``ip -o -4 addr show dev eth0`` printed."""
    found = INET.findall(ip_output)
    assert len(found) == 1, f"expected one IPv4 address on eth0, got: {ip_output!r}"
    return ipaddress.IPv4Interface(found[0])


def podman_sandboxes() -> set[str]:
    """podman's network namespaces, ``netns-<uuid>`` (other tests name theirs differently).

    Only one podman harness runs on the machine at a time, so new ones are ours.
    """
    return {p.name for p in NETNS_DIR.glob("netns-*")}


def mounted_namespaces() -> set[int]:
    """Inodes of the namespaces mounted in /run/netns (by podman, ip netns, anyone)."""
    inodes = set()
    for path in NETNS_DIR.iterdir():
        with contextlib.suppress(FileNotFoundError):  # removed meanwhile
            inodes.add(path.stat().st_ino)
    return inodes


def assert_nothing_left(
    podman: PodmanHost, network: Network, container_id: str, veths: set[str], sandbox: Path
) -> None:
    podman.settle()
    assert network.ports() == set(), "a veth is still enslaved to the bridge"
    left = veths & lab.link_names(netns=network.node)
    assert not left, f"host-side veth left behind: {left}"
    assert network.reservations() == {}, "host-local reservation left behind"
    assert not libcni_cache_entry(network.name, container_id).exists(), "libcni cache entry left"
    assert not sandbox.exists(), f"network namespace {sandbox} left behind"
    assert podman.podman("ps", "-aq").split() == []


@pytest.mark.parametrize(("bridge_type", "ipam_type", "subnet"), STACKS)
def test_container_address_gateway_and_rm(
    podman: PodmanHost, make_network: MakeNetwork, bridge_type: str, ipam_type: str, subnet: str
) -> None:
    network = make_network(subnet, bridge_type, ipam_type)
    container_id = podman.podman(
        "run", "--detach", *podman.container_flags(network.name), IMAGE, "sleep", "600"
    ).strip()

    address = eth0_address(
        podman.podman("exec", container_id, "ip", "-o", "-4", "addr", "show", "dev", "eth0")
    )
    assert address.network == network.subnet
    assert address.ip != network.gateway
    # podman understood the plugin's result: it reports the same address.
    inspected = podman.podman(
        "inspect",
        "--format",
        f'{{{{(index .NetworkSettings.Networks "{network.name}").IPAddress}}}}',
        container_id,
    ).strip()
    assert inspected == str(address.ip)
    route = podman.podman("exec", container_id, "ip", "-4", "route", "show", "default")
    assert f"via {network.gateway}" in route

    ping = podman.podman(
        "exec", container_id, "ping", "-c", "1", "-W", "5", str(network.gateway), check=False
    )
    assert " 0% packet loss" in ping, ping

    veths = network.ports()
    assert len(veths) == 1, f"expected one veth on {network.bridge}, got {veths}"
    assert network.reservations() == {address.ip: container_id}
    cached = cache_result(libcni_cache_entry(network.name, container_id))
    assert [ip["address"] for ip in cached["ips"]] == [str(address)]
    sandbox = Path(
        podman.podman(
            "inspect", "--format", "{{.NetworkSettings.SandboxKey}}", container_id
        ).strip()
    )
    assert sandbox.exists()
    # What test_run_rm relies on: the namespace's inode is that of podman's mount of it.
    inside = podman.podman("exec", container_id, "readlink", "/proc/self/ns/net").strip()
    assert inside == f"net:[{sandbox.stat().st_ino}]"

    podman.podman("rm", "--force", "--time", "0", container_id)
    assert_nothing_left(podman, network, container_id, veths, sandbox)


@pytest.mark.parametrize(("bridge_type", "ipam_type", "subnet"), STACKS)
def test_run_rm_pings_gateway_and_leaves_nothing(
    podman: PodmanHost, make_network: MakeNetwork, bridge_type: str, ipam_type: str, subnet: str
) -> None:
    network = make_network(subnet, bridge_type, ipam_type)
    # eth0's iflink is the ifindex of its host-side peer (ifindexes are not reused soon);
    # the namespace's inode tells whether podman's bind mount of it is still there.
    script = (
        "ip -o -4 addr show dev eth0 && cat /sys/class/net/eth0/iflink"
        f" && readlink /proc/self/ns/net && ping -c 1 -W 5 {network.gateway}"
    )
    out = podman.podman(
        "run", "--rm", *podman.container_flags(network.name), IMAGE, "sh", "-c", script
    )

    assert eth0_address(out).network == network.subnet
    assert " 0% packet loss" in out, out
    lines = out.splitlines()
    peer = int(lines[1])
    namespace = int(lines[2].removeprefix("net:[").removesuffix("]"))
    podman.settle()
    assert network.ports() == set()
    assert peer not in {link["ifindex"] for link in network.links()}
    assert network.reservations() == {}
    assert not list(LIBCNI_CACHE.glob(f"{network.name}-*"))
    assert namespace not in mounted_namespaces()
    assert podman.podman("ps", "-aq").split() == []


@pytest.mark.parametrize(("bridge_type", "ipam_type", "subnet"), STACKS)
def test_failed_add_leaves_nothing(
    podman: PodmanHost, make_network: MakeNetwork, bridge_type: str, ipam_type: str, subnet: str
) -> None:
    # A range of one address: the second container's IPAM fails (the reference
    # bridge has made its veth by then); nothing of that attempt may remain.
    only = str(ipaddress.IPv4Network(subnet).network_address + 10)
    network = make_network(subnet, bridge_type, ipam_type, rangeStart=only, rangeEnd=only)
    first = podman.podman(
        "run", "--detach", *podman.container_flags(network.name), IMAGE, "sleep", "600"
    ).strip()
    ports = network.ports()
    sandboxes = podman_sandboxes()

    with pytest.raises(PodmanError) as failed:
        podman.podman("run", "--rm", *podman.container_flags(network.name), IMAGE, "true")

    # podman names the plugin whose ADD failed (here: IPAM found the range exhausted).
    assert f'plugin type="{bridge_type}" failed (add)' in str(failed.value)
    podman.settle()
    assert network.ports() == ports, "the failed container's veth is still on the bridge"
    assert network.reservations() == {ipaddress.IPv4Address(only): first}
    assert podman_sandboxes() == sandboxes
    assert [p.name for p in LIBCNI_CACHE.glob(f"{network.name}-*")] == [
        libcni_cache_entry(network.name, first).name
    ]
    assert podman.podman("ps", "-aq", "--no-trunc").split() == [first]
    podman.podman("rm", "--force", "--time", "0", first)


# Dual-stack: the reference bridge as the control.
DUAL_STACKS = [
    pytest.param("multinic-bridge", "198.18.167.0/24", "2001:db8:167::/64", id="multinic-bridge"),
    pytest.param("bridge", "198.18.168.0/24", "2001:db8:168::/64", id="reference-bridge"),
]
INET6 = re.compile(r"\binet6 ([0-9a-f:]+/\d+) scope global")


@pytest.mark.parametrize(("bridge_type", "subnet", "subnet6"), DUAL_STACKS)
def test_dual_stack_container_pings_both_gateways(
    podman: PodmanHost, make_network: MakeNetwork, bridge_type: str, subnet: str, subnet6: str
) -> None:
    network = make_network(subnet, bridge_type, "host-local", subnet6=subnet6)
    container_id = podman.podman(
        "run", "--detach", *podman.container_flags(network.name), IMAGE, "sleep", "600"
    ).strip()

    shown = podman.podman("exec", container_id, "ip", "-o", "addr", "show", "dev", "eth0")
    address = eth0_address(shown)
    addresses6 = [ipaddress.IPv6Interface(a) for a in INET6.findall(shown)]
    assert address.network == network.subnet
    assert [a.network for a in addresses6] == [network.subnet6], shown
    routes6 = podman.podman("exec", container_id, "ip", "-6", "route", "show", "default")
    assert f"via {network.gateway6}" in routes6
    for gateway in (network.gateway, network.gateway6):
        # The bridge's own IPv6 address may still be tentative (DAD) for a moment: -W waits.
        ping = podman.podman(
            "exec", container_id, "ping", "-c", "1", "-W", "5", str(gateway), check=False
        )
        assert " 0% packet loss" in ping, ping
    assert network.reservations() == {address.ip: container_id, addresses6[0].ip: container_id}
    veths = network.ports()
    sandbox = Path(
        podman.podman(
            "inspect", "--format", "{{.NetworkSettings.SandboxKey}}", container_id
        ).strip()
    )

    podman.podman("rm", "--force", "--time", "0", container_id)
    assert_nothing_left(podman, network, container_id, veths, sandbox)
