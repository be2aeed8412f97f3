"""Reading a Node object: the addresses podnet uses first, and its pod CIDRs."""

from __future__ import annotations

from multinic.kube.nodes import node_info
from multinic.kube.objects import NodeInfo


def test_internal_ip_first_and_pod_cidrs() -> None:
    node = {
        "metadata": {"name": "n1"},
        "spec": {"podCIDR": "10.32.1.0/24", "podCIDRs": ["10.32.1.0/24", "fd00:1::/64"]},
        "status": {
            "addresses": [
                {"type": "Hostname", "address": "n1"},
                {"type": "ExternalIP", "address": "192.0.2.1"},
                {"type": "InternalIP", "address": "10.10.2.11"},
            ]
        },
    }
    assert node_info(node) == NodeInfo(
        "n1", ("10.10.2.11", "n1", "192.0.2.1"), ("10.32.1.0/24", "fd00:1::/64")
    )


def test_a_node_not_yet_allocated_or_registered() -> None:
    assert node_info({"metadata": {"name": "n2"}, "spec": {"podCIDR": "10.32.2.0/24"}}) == NodeInfo(
        "n2", (), ("10.32.2.0/24",)
    )
    assert node_info({"metadata": {"name": "n3"}}) == NodeInfo("n3", (), ())
