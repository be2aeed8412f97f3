"""Fixtures for podman driving our plugins: one isolated podman per module, networks per test."""

from __future__ import annotations

import ipaddress
import json
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from multinic.lab import netns as lab
from tests.e2e.podman.harness import PODMAN_CNI_VERSION, PodmanHost, podman_host
from tests.support.conflists import bridge_conflist


@dataclass(frozen=True)
class Network:
    """A bridge network of one test: its conflist name, bridge, subnet and host-local data."""

    name: str
    bridge: str
    subnet: ipaddress.IPv4Network
    data_dir: Path
    #: The namespace podman runs in, where the bridge is.
    node: str
    subnet6: ipaddress.IPv6Network | None = None

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        # The bridge plugins give the bridge the range's first address (isGateway).
        return self.subnet.network_address + 1

    @property
    def gateway6(self) -> ipaddress.IPv6Address:
        assert self.subnet6 is not None, "not a dual-stack network"
        return self.subnet6.network_address + 1

    def reservations(self) -> dict[ipaddress.IPv4Address | ipaddress.IPv6Address, str]:
        """host-local's reservations: address -> the container id in the file."""
        directory = self.data_dir / self.name
        if not directory.exists():
            return {}
        found = {}
        for entry in directory.iterdir():
            if entry.name == "lock" or entry.name.startswith("last_reserved_ip"):
                continue
            found[ipaddress.ip_address(entry.name)] = entry.read_text().splitlines()[0]
        return found

    def ports(self) -> set[str]:
        """Links enslaved to the bridge: the host ends of the containers' veths."""
        return {
            link["ifname"]
            for link in lab.ip_json("link", "show", "master", self.bridge, netns=self.node)
        }

    def links(self) -> list[dict[str, Any]]:
        """The links of the node namespace (``ip -j link``)."""
        return lab.ip_json("link", "show", netns=self.node)


MakeNetwork = Callable[..., Network]


def node_addresses(node: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    return [
        ipaddress.ip_address(a["local"])
        for link in lab.ip_json("addr", "show", netns=node)
        for a in link.get("addr_info", [])
    ]


@pytest.fixture(scope="module")
def podman() -> Iterator[PodmanHost]:
    """podman with its own config, storage, locks and network dir; our plugins installed.

    Per module, so everything it made is gone as soon as the podman tests end.
    """
    with podman_host() as host:
        yield host


@pytest.fixture
def make_network(podman: PodmanHost) -> Iterator[MakeNetwork]:
    """Writes bridge conflists; afterwards removes their containers, bridges and files."""
    made: list[Network] = []

    def make(
        subnet: str,
        bridge_type: str = "bridge",
        ipam_type: str = "host-local",
        subnet6: str | None = None,
        **ipam_range: str,
    ) -> Network:
        """A network on ``subnet`` (and ``subnet6``); ``ipam_range`` narrows the IPv4 range."""
        subnets = [ipaddress.ip_network(s) for s in (subnet, subnet6) if s]
        in_use = [a for a in node_addresses(podman.node) for net in subnets if a in net]
        if in_use:
            # A second route into the subnet would steal the container's replies.
            pytest.fail(f"{subnets} already on a node link ({in_use}): a leaked bridge?")
        token = secrets.token_hex(4)
        network = Network(
            name=f"mnpm-{token}",
            bridge=f"mnpm{token}",
            subnet=ipaddress.IPv4Network(subnet),
            data_dir=podman.base / "ipam" / token,
            node=podman.node,
            subnet6=ipaddress.IPv6Network(subnet6) if subnet6 else None,
        )
        conf = bridge_conflist(network.name, network.bridge, network.data_dir, *subnets)
        conf["cniVersion"] = PODMAN_CNI_VERSION
        bridge = conf["plugins"][0]
        bridge["type"] = bridge_type
        bridge["ipam"]["type"] = ipam_type
        bridge["ipam"]["ranges"][0][0].update(ipam_range)
        bridge["ipam"]["routes"] = [{"dst": "0.0.0.0/0"}] + ([{"dst": "::/0"}] if subnet6 else [])
        made.append(network)
        podman.write_network(conf)
        return network

    yield make
    for network in made:
        attached = podman.podman("ps", "-aq", "--filter", f"network={network.name}", check=False)
        if attached.split():
            podman.podman("rm", "--force", "--time", "0", *attached.split(), check=False)
        podman.settle()
        lab.delete_link(network.bridge, netns=podman.node)
        (podman.network_dir / f"{network.name}.conflist").unlink(missing_ok=True)
    left = lab.link_names(netns=podman.node)
    assert not any(n.bridge in left for n in made), "a test bridge survived"


def cache_result(path: Path) -> dict[str, Any]:
    """The result libcni cached for one attachment."""
    entry = json.loads(path.read_text())
    assert entry["kind"] == "cniCacheV1"
    result: dict[str, Any] = entry["result"]
    return result
