"""The ``podnet`` mapping of node.yaml: every field, its default, and every bad value's error."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest

from multinic.cni.errors import InvalidConfigError
from multinic.podnet.config import PodNetConfig, parse_podnet_config

STORE = {"type": "sqlite", "path": "/var/lib/multinic/cluster.db"}
#: In a change: leave the field out.
DROP = object()


def minimal(**extra: Any) -> dict[str, Any]:
    return {
        "nodeName": "node-1",
        "store": STORE,
        "podBlock": "10.32.0.0/11",
        "uplink": "eth0",
    } | extra


def refused(obj: object) -> InvalidConfigError:
    with pytest.raises(InvalidConfigError) as raised:
        parse_podnet_config(obj)
    assert raised.value.code == 7 and raised.value.msg == "invalid podnet config"
    return raised.value


def test_defaults_of_a_minimal_config() -> None:
    config = parse_podnet_config(minimal())

    assert config == PodNetConfig(
        node_name="node-1",
        store=STORE,
        kubeconfig=None,
        pod_block=(ipaddress.ip_network("10.32.0.0/11"),),
        service_block=(),
        uplink="eth0",
    )
    assert (config.cluster, config.node_prefix, config.mode) == ("default", 24, "auto")
    assert (config.bridge, config.vxlan_name, config.vni, config.vxlan_port) == (
        "mnpod0", "mnvx0", 1, 4789,
    )  # fmt: skip
    assert config.network_name == "cluster"
    assert config.data_dir == Path("/var/lib/multinic/podnet")
    assert config.resync == 1.0


def test_every_field_given() -> None:
    config = parse_podnet_config(
        minimal(
            cluster="edge-1",
            podBlock=["fd00:32::/48", "10.32.0.0/11"],
            serviceBlock="100.64.0.0/20",
            nodePrefix=26,
            mode="vxlan",
            bridge="br-pods",
            vxlanName="vx-pods",
            vni=4242,
            vxlanPort=8472,
            networkName="primary",
            dataDir="/srv/podnet",
            resync=2,
        )
    )

    # IPv4 first, whatever order the file gives.
    assert config.pod_block == (
        ipaddress.ip_network("10.32.0.0/11"),
        ipaddress.ip_network("fd00:32::/48"),
    )
    assert config.service_block == (ipaddress.ip_network("100.64.0.0/20"),)
    assert (config.cluster, config.node_prefix, config.mode) == ("edge-1", 26, "vxlan")
    assert (config.bridge, config.vxlan_name, config.vni, config.vxlan_port) == (
        "br-pods", "vx-pods", 4242, 8472,
    )  # fmt: skip
    assert (config.network_name, config.data_dir) == ("primary", Path("/srv/podnet"))
    assert config.resync == 2.0 and isinstance(config.resync, float)


def test_kubeconfig_instead_of_a_store_needs_no_pod_block() -> None:
    config = parse_podnet_config(
        {"nodeName": "node-1", "kubeconfig": "/etc/kubernetes/kubelet.conf", "uplink": "eth0"}
    )
    assert config.store is None and config.kubeconfig == Path("/etc/kubernetes/kubelet.conf")
    assert config.pod_block == ()


@pytest.mark.parametrize("obj", [None, [], "podnet", 3])
def test_not_a_mapping(obj: object) -> None:
    assert refused(obj).details == "it must be a mapping"


def test_unknown_fields_are_named() -> None:
    assert "unknown fields ['podblock', 'vxlan']" in refused(minimal(podblock="x", vxlan=1)).details


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"store": DROP}, "store"),  # neither
        ({"kubeconfig": "/etc/k.conf"}, "store"),  # both
        ({"store": "sqlite"}, "store"),
        ({"podBlock": DROP}, "podBlock"),
        ({"podBlock": "10.32.0.1/11"}, "podBlock"),  # host bits set
        ({"podBlock": "not-a-prefix"}, "podBlock"),
        ({"podBlock": ["10.32.0.0/11", "10.64.0.0/11"]}, "podBlock"),  # two IPv4
        ({"podBlock": ["fd00::/48", "fd01::/48"]}, "podBlock"),
        ({"podBlock": []}, "podBlock"),
        ({"serviceBlock": "100.64.0.0/33"}, "serviceBlock"),
        ({"serviceBlock": ["100.64.0.0/20", "100.65.0.0/20"]}, "serviceBlock"),
        ({"nodeName": ""}, "nodeName"),
        ({"nodeName": None}, "nodeName"),
        ({"nodeName": "a/b"}, "nodeName"),
        ({"nodeName": "n" * 254}, "nodeName"),
        ({"nodeName": 7}, "nodeName"),
        ({"uplink": DROP}, "uplink"),
        ({"nodeName": DROP}, "nodeName"),
        ({"uplink": "a-name-over-15ch"}, "uplink"),
        ({"cluster": ""}, "cluster"),
        ({"nodePrefix": 7}, "nodePrefix"),
        ({"nodePrefix": 31}, "nodePrefix"),
        ({"nodePrefix": "24"}, "nodePrefix"),
        ({"nodePrefix": True}, "nodePrefix"),
        ({"mode": "flannel"}, "mode"),
        ({"mode": None}, "mode"),
        ({"bridge": "a-bridge-name-too-long"}, "bridge"),
        ({"vxlanName": ""}, "vxlanName"),
        ({"vni": 0}, "vni"),
        ({"vni": 1 << 24}, "vni"),
        ({"vxlanPort": 0}, "vxlanPort"),
        ({"vxlanPort": 65536}, "vxlanPort"),
        ({"networkName": "a/b"}, "networkName"),
        ({"dataDir": "relative/dir"}, "dataDir"),
        ({"dataDir": "/nul\0byte"}, "dataDir"),
        ({"dataDir": 5}, "dataDir"),
        ({"resync": 0}, "resync"),
        ({"resync": -1}, "resync"),
        ({"resync": 3601}, "resync"),
        ({"resync": "1"}, "resync"),
        ({"resync": False}, "resync"),
    ],
)
def test_a_bad_value_names_its_field(change: dict[str, Any], field: str) -> None:
    obj = {k: v for k, v in (minimal() | change).items() if v is not DROP}
    assert refused(obj).details.startswith(f"{field}: ")


def test_a_relative_kubeconfig_is_refused() -> None:
    error = refused({"nodeName": "node-1", "kubeconfig": "kube.conf", "uplink": "eth0"})
    assert error.details.startswith("kubeconfig: ")
