"""The fabric file: defaults from the seed, dual-stack blocks, errors naming the field's path."""

from __future__ import annotations

from ipaddress import ip_network
from pathlib import Path

import pytest

from multinic.plan.errors import FabricError
from multinic.plan.model import IpamScope, LinkKind
from multinic.plan.parse import load_fabric, parse_fabric

from .fabrics import cluster, dual_stack, fabric, network


def test_defaults_are_the_seeds() -> None:
    doc = fabric(blocks={"node": "10.10.0.0/20", "pod": "10.32.0.0", "multus": "10.100.0.0"})

    parsed = parse_fabric(doc)

    assert parsed.pod.prefixes == (ip_network("10.32.0.0/11"),)
    assert parsed.multus.prefixes == (ip_network("10.100.0.0/16"),)
    assert parsed.service.prefixes == (ip_network("100.64.0.0/10"),)
    assert parsed.node_pod_prefix == {4: 24, 6: 64}
    assert parsed.service_prefix == {4: 20, 6: 112}
    first = parsed.clusters[0]
    assert first.interfaces.vnics == 10
    assert first.pods_per_node == 110
    assert first.networks[0].kind is LinkKind.IPVLAN


def test_network_defaults_per_node_ipam_and_the_first_mode() -> None:
    net = {"name": "n6", "master": "eth2", "type": "macvlan", "expected_addresses": 10}

    parsed = parse_fabric(fabric(cluster("a", networks=[net])))

    only = parsed.clusters[0].networks[0]
    assert (only.ipam, only.mode) == (IpamScope.PER_NODE, "bridge")


def test_dual_stack_blocks_are_sorted_by_family() -> None:
    doc = dual_stack(cluster("a"))
    doc["blocks"]["node"] = ["fd00:10::/56", "10.10.0.0/20"]

    parsed = parse_fabric(doc)

    assert parsed.node.versions == (4, 6)
    assert parsed.pod.family(6) == ip_network("fd00:32::/48")


def test_nodes_as_a_number_means_expected_and_max() -> None:
    parsed = parse_fabric(fabric(cluster("a", nodes=7)))

    assert (parsed.clusters[0].expected_nodes, parsed.clusters[0].max_nodes) == (7, 7)


def test_prefix_sizes_as_number_slash_or_per_family() -> None:
    doc = fabric(cluster("a", node_prefix="/26", service_prefix={"ipv4": 18, "ipv6": 110}))

    parsed = parse_fabric(doc).clusters[0]

    assert parsed.node_prefix == {4: 26}
    assert parsed.service_prefix == {4: 18, 6: 110}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["blocks"].update(pod="10.32.0.1/11"),
            "blocks.pod: 10.32.0.1/11 has host bits set",
        ),
        (lambda d: d["blocks"].pop("node"), "blocks.node: required"),
        (
            lambda d: d["blocks"].update(node=["10.0.0.0/16", "10.1.0.0/16"]),
            "blocks.node: two prefixes of the same IP family",
        ),
        (
            lambda d: d["clusters"][1]["networks"][0].update(master=3),
            "clusters[1].networks[0].master: expected a non-empty string, got int",
        ),
        (
            lambda d: d["clusters"][0]["networks"][0].update(mode="l4"),
            "clusters[0].networks[0].mode: 'l4' is not one of l2, l3, l3s",
        ),
        (
            lambda d: d["clusters"][0]["networks"][0].update(ipam="global"),
            "clusters[0].networks[0].ipam: 'global' is not one of per-node, cluster-wide",
        ),
        (
            lambda d: d["clusters"][0].update(pod_per_node=100),
            "clusters[0]: unknown field 'pod_per_node'",
        ),
        (
            lambda d: d["clusters"][0].update(nodes={"expected": 10, "max": 5}),
            "clusters[0].nodes.max: 5 is less than expected (10)",
        ),
        (
            lambda d: d["clusters"][0].update(nodes={"expected": 0}),
            "clusters[0].nodes.expected: expected a positive integer, got 0",
        ),
        (
            lambda d: d["clusters"][1].update(name="a"),
            "clusters: cluster name 'a' appears twice",
        ),
        (
            lambda d: d["clusters"][0].update(name="Edge_1"),
            "clusters[0].name: 'Edge_1' is not a DNS label",
        ),
        (
            lambda d: d["clusters"][0].update(node_prefix={"ipv5": 24}),
            "clusters[0].node_prefix: unknown family 'ipv5'",
        ),
        (
            lambda d: d["clusters"][0].update(service_prefix=33),
            "clusters[0].service_prefix: /33 is not an IPv4 prefix length",
        ),
        (
            lambda d: d["clusters"][0]["interfaces"].pop("management"),
            "clusters[0].interfaces.management: expected a non-empty string, got nothing",
        ),
        (
            lambda d: d["clusters"][0]["interfaces"].update(data_plane=["eth1", "eth1"]),
            "clusters[0].interfaces.data_plane: interface 'eth1' appears twice",
        ),
        (
            lambda d: d.update(defaults={"node_pod_prefix": 31}),
            "defaults.node_pod_prefix: IPv4 /31 is outside /16../30",
        ),
        (lambda d: d.update(in_use=["10.0.0.0/33"]), "in_use[0]: "),
        (lambda d: d.update(clusters={"a": 1}), "clusters: expected a list, got dict"),
    ],
)
def test_errors_name_the_field(change, message: str) -> None:
    doc = fabric()
    change(doc)

    with pytest.raises(FabricError) as caught:
        parse_fabric(doc)

    assert str(caught.value).startswith(message)


def test_a_network_name_twice_in_one_cluster() -> None:
    with pytest.raises(
        FabricError, match=r"clusters\[0\].networks: network name 'n3' appears twice"
    ):
        parse_fabric(fabric(cluster("a", networks=[network(), network()])))


def test_load_reports_yaml_errors_and_missing_files(tmp_path: Path) -> None:
    broken = tmp_path / "fabric.yaml"
    broken.write_text("blocks: [unclosed\n")

    with pytest.raises(FabricError, match="not valid YAML"):
        load_fabric(broken)
    with pytest.raises(FabricError, match="cannot read"):
        load_fabric(tmp_path / "missing.yaml")
    broken.write_text("- a list\n")
    with pytest.raises(FabricError, match="fabric file: expected a mapping, got list"):
        load_fabric(broken)
