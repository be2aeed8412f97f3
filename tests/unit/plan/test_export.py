"""Exports parse back, and each NAD's spec.config is a CNI config our own parser accepts."""

from __future__ import annotations

import itertools
import json
from ipaddress import ip_address, ip_network
from pathlib import Path

import yaml

from multinic.cni.config import parse_net_conf, parse_network_config
from multinic.plan.export import export_cluster, write_exports

from .fabrics import cluster, dual_stack, fabric, network, plan_of


def exported(doc: dict, name: str = "a") -> dict[str, str]:
    plan = plan_of(doc)
    assert plan.errors == []
    cp = next(c for c in plan.clusters if c.name == name)
    return export_cluster(plan, cp)


def test_kubeadm_cluster_configuration() -> None:
    files = exported(fabric())

    config = yaml.safe_load(files["kubeadm-config.yaml"])

    assert config == {
        "apiVersion": "kubeadm.k8s.io/v1beta3",
        "kind": "ClusterConfiguration",
        "clusterName": "a",
        "networking": {"podSubnet": "10.32.0.0/19", "serviceSubnet": "100.64.0.0/20"},
        "controllerManager": {"extraArgs": {"allocate-node-cidrs": "false"}},
    }


def test_kubeadm_dual_stack_subnets_are_comma_joined() -> None:
    config = yaml.safe_load(exported(dual_stack(cluster("a")))["kubeadm-config.yaml"])

    assert config["networking"] == {
        "podSubnet": "10.32.0.0/19,fd00:32::/59",
        "serviceSubnet": "100.64.0.0/20,fd00:64::/112",
    }


def test_antrea_node_ipam() -> None:
    single = yaml.safe_load(exported(fabric())["antrea-controller.conf"])
    dual = yaml.safe_load(exported(dual_stack(cluster("a")))["antrea-controller.conf"])

    assert single == {
        "nodeIPAM": {
            "enableNodeIPAM": True,
            "clusterCIDRs": ["10.32.0.0/19"],
            "serviceCIDR": "100.64.0.0/20",
            "nodeCIDRMaskSizeIPv4": 24,
        }
    }
    assert dual["nodeIPAM"]["clusterCIDRs"] == ["10.32.0.0/19", "fd00:32::/59"]
    assert dual["nodeIPAM"]["serviceCIDRv6"] == "fd00:64::/112"
    assert dual["nodeIPAM"]["nodeCIDRMaskSizeIPv6"] == 64


def nads(files: dict[str, str]) -> list[dict]:
    return list(yaml.safe_load_all(files["network-attachment-definitions.yaml"]))


def test_network_attachment_definitions_are_valid_cni_configs() -> None:
    nets = [
        network("n3", expected_addresses=400),
        network("sig", master="eth2", type="macvlan", mode="vepa", ipam="per-node"),
    ]
    docs = nads(exported(fabric(cluster("a", networks=nets))))

    assert [d["metadata"]["name"] for d in docs] == ["n3", "sig"]
    for doc in docs:
        assert (doc["apiVersion"], doc["kind"]) == (
            "k8s.cni.cncf.io/v1",
            "NetworkAttachmentDefinition",
        )
    conf = parse_net_conf(docs[0]["spec"]["config"])
    listed = parse_network_config(docs[0]["spec"]["config"])
    assert listed.name == conf.name == "n3"
    assert listed.plugins[0].type == conf.type
    n3 = json.loads(docs[0]["spec"]["config"])
    assert n3 == {
        "cniVersion": "1.0.0",
        "name": "n3",
        "type": "multinic-ipvlan",
        "master": "eth1",
        "mode": "l2",
        "ipam": {
            "type": "multinic-ipam",
            "range": "10.100.0.0/23",
            "range_start": "10.100.0.2",
            "range_end": "10.100.1.254",
            "gateway": "10.100.0.1",
        },
    }
    # Per node: no config in the NAD (one object for every node), Multus reads the node's.
    assert "spec" not in docs[1]


def test_per_node_networks_get_a_config_per_node_slot_with_its_own_slice() -> None:
    nets = [network("sig", master="eth2", type="macvlan", mode="vepa", ipam="per-node")]
    files = exported(fabric(cluster("a", networks=nets)))

    slots = sorted(name for name in files if name.startswith("multus-net.d/"))
    assert slots == sorted(f"multus-net.d/node-{i}/sig.conf" for i in range(20))
    configs = [json.loads(files[f"multus-net.d/node-{i}/sig.conf"]) for i in range(20)]
    assert configs[0] == {
        "cniVersion": "1.0.0",
        "name": "sig",
        "type": "multinic-macvlan",
        "master": "eth2",
        "mode": "vepa",
        "ipam": {
            "type": "multinic-host-local",
            "ranges": [
                [
                    {
                        "subnet": "10.100.0.0/25",
                        "rangeStart": "10.100.0.2",
                        "rangeEnd": "10.100.0.7",
                        "gateway": "10.100.0.1",
                    }
                ]
            ],
        },
    }
    for name in slots:
        assert parse_net_conf(files[name]).name == "sig"
    assert_disjoint_slices(configs)


def assert_disjoint_slices(configs: list[dict]) -> None:
    seen: set[int] = set()
    for config in configs:
        for (r,) in config["ipam"]["ranges"]:
            first, last = int(ip_address(r["rangeStart"])), int(ip_address(r["rangeEnd"]))
            mine = set(range(first, last + 1))
            assert not mine & seen, "two nodes would hand out one address"
            assert ip_address(r["rangeEnd"]) in ip_network(r["subnet"])
            assert ip_address(r["gateway"]) < ip_address(r["rangeStart"])
            seen |= mine


def test_dual_stack_networks_use_ip_ranges_and_two_host_local_range_sets() -> None:
    nets = [network("n3"), network("sig", ipam="per-node")]
    docs = nads(exported(dual_stack(cluster("a", networks=nets))))

    n3 = json.loads(docs[0]["spec"]["config"])
    assert [r["range"] for r in n3["ipam"]["ipRanges"]] == ["10.100.0.0/26", "fd00:100::/122"]
    assert "range" not in n3["ipam"]
    parse_net_conf(docs[0]["spec"]["config"])
    sig = json.loads(
        exported(dual_stack(cluster("a", networks=nets)))["multus-net.d/node-0/sig.conf"]
    )
    assert [rs[0]["subnet"] for rs in sig["ipam"]["ranges"]] == [
        "10.100.0.128/25",
        "fd00:100::80/121",
    ]


def test_node_config_has_a_slot_per_node_with_its_pod_cidr_and_shares() -> None:
    nets = [network("sig", ipam="per-node", expected_addresses=100)]  # 10 per node, 20 nodes

    config = yaml.safe_load(exported(fabric(cluster("a", networks=nets)))["multinic-node.yaml"])

    assert config["format"] == "multinic.node/v1"
    assert config["interfaces"] == {"management": "eth0", "data_plane": ["eth1", "eth2"]}
    assert config["node_subnets"] == ["10.10.0.0/24"]
    assert config["pod_cidrs"] == ["10.32.0.0/19"]
    assert config["networks"][0]["ranges"] == ["10.100.0.0/24"]
    slots = config["nodes"]
    assert len(slots) == 20
    assert slots[0]["pod_cidrs"] == ["10.32.0.0/24"]
    assert slots[19]["pod_cidrs"] == ["10.32.19.0/24"]
    shares = [slot["ranges"]["sig"][0] for slot in slots]
    assert shares[0] == {"rangeStart": "10.100.0.2", "rangeEnd": "10.100.0.13"}  # 253 // 20 = 12
    # Slices never overlap and stay inside the usable range (not the gateway or broadcast).
    bounds = [(ip_address(s["rangeStart"]), ip_address(s["rangeEnd"])) for s in shares]
    for (_, end), (start, _) in itertools.pairwise(bounds):
        assert start == end + 1
    assert bounds[-1][1] <= ip_address("10.100.0.254")
    for start, end in bounds:
        assert ip_address(start) in ip_network("10.100.0.0/24")
        assert int(end) - int(start) + 1 == 12


def test_write_exports_makes_a_directory_per_cluster(tmp_path: Path) -> None:
    plan = plan_of(fabric())

    written = write_exports(plan, tmp_path / "out")

    assert sorted(str(p.relative_to(tmp_path)) for p in written) == sorted(
        f"out/{c}/{name}"
        for c in ("a", "b")
        for name in (
            "kubeadm-config.yaml",
            "antrea-controller.conf",
            "network-attachment-definitions.yaml",
            "multinic-node.yaml",
        )
    )
    for path in written:
        list(yaml.safe_load_all(path.read_text()))
