"""The meta plugin's config: defaults as Multus', every field checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from multinic.cni.errors import ErrorCode, InvalidConfigError
from multinic.meta.config import MetaConfig, parse_meta_config


def test_defaults() -> None:
    assert parse_meta_config({"clusterNetwork": "podnet"}) == MetaConfig(
        cluster_network="podnet",
        default_networks=(),
        system_namespaces=("kube-system",),
        namespace_isolation=False,
        global_namespaces=("default",),
        multus_namespace="kube-system",
        conf_dir=Path("/etc/cni/net.d"),
        kubeconfig=None,
        objects_dir=None,
    )


def test_every_field() -> None:
    config = parse_meta_config(
        b"""{
        "cniVersion": "1.0.0", "name": "multinic", "type": "multinic-shim",
        "clusterNetwork": "/etc/cni/net.d/10-podnet.conflist",
        "defaultNetworks": ["mgmt", "oam"],
        "systemNamespaces": ["kube-system", "infra"],
        "namespaceIsolation": true,
        "globalNamespaces": "default, shared-nets",
        "multusNamespace": "netops",
        "confDir": "/etc/multinic/net.d",
        "kubeconfig": "/etc/multinic/kubeconfig",
        "objectsDir": "/etc/multinic/objects"
    }"""
    )
    assert config == MetaConfig(
        cluster_network="/etc/cni/net.d/10-podnet.conflist",
        default_networks=("mgmt", "oam"),
        system_namespaces=("kube-system", "infra"),
        namespace_isolation=True,
        global_namespaces=("default", "shared-nets"),
        multus_namespace="netops",
        conf_dir=Path("/etc/multinic/net.d"),
        kubeconfig=Path("/etc/multinic/kubeconfig"),
        objects_dir=Path("/etc/multinic/objects"),
    )
    assert parse_meta_config(
        {"clusterNetwork": "p", "globalNamespaces": ["a", "b"]}
    ).global_namespaces == ("a", "b")


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({}, "'clusterNetwork' is required"),
        ({"clusterNetwork": " "}, "'clusterNetwork' is required"),
        ({"delegates": [{"type": "bridge"}]}, "'delegates' is not supported"),
        ({"clusterNetwork": "p", "defaultNetworks": "a"}, "defaultNetworks"),
        ({"clusterNetwork": "p", "defaultNetworks": [""]}, "defaultNetworks"),
        ({"clusterNetwork": "p", "systemNamespaces": [1]}, "systemNamespaces"),
        ({"clusterNetwork": "p", "namespaceIsolation": "true"}, "namespaceIsolation"),
        ({"clusterNetwork": "p", "globalNamespaces": "ok,Not_Ok"}, "globalNamespaces"),
        ({"clusterNetwork": "p", "multusNamespace": "a/b"}, "multusNamespace"),
        ({"clusterNetwork": "p", "confDir": 5}, "confDir"),
    ],
)
def test_bad_values_are_code_7_naming_the_field(config: dict[str, object], problem: str) -> None:
    with pytest.raises(InvalidConfigError, match=problem) as caught:
        parse_meta_config(config)
    assert caught.value.code == ErrorCode.INVALID_NETWORK_CONFIG
