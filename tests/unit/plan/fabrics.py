"""Small fabric documents for the planner's tests, and a shortcut to plan them."""

from __future__ import annotations

import copy
from typing import Any

from multinic.plan.allocate import Previous, plan_fabric
from multinic.plan.parse import parse_fabric
from multinic.plan.result import Plan
from multinic.plan.validate import validate


def network(name: str = "n3", **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "master": "eth1",
        "type": "ipvlan",
        "mode": "l2",
        "expected_addresses": 50,
        "ipam": "cluster-wide",
        **fields,
    }


def cluster(name: str = "a", **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "nodes": {"expected": 10, "max": 20},
        "interfaces": {"management": "eth0", "data_plane": ["eth1", "eth2"]},
        "networks": [network()],
        **fields,
    }


def fabric(*clusters: dict[str, Any], **fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "fabric": "test",
        "blocks": {"node": "10.10.0.0/20", "pod": "10.32.0.0/11", "multus": "10.100.0.0/16"},
        "routable": ["10.10.0.0/16", "10.100.0.0/16"],
        "clusters": list(clusters) if clusters else [cluster("a"), cluster("b")],
    }
    doc.update(copy.deepcopy(fields))
    return doc


def dual_stack(*clusters: dict[str, Any]) -> dict[str, Any]:
    return fabric(
        *clusters,
        blocks={
            "node": ["10.10.0.0/20", "fd00:10::/56"],
            "pod": ["10.32.0.0/11", "fd00:32::/48"],
            "service": ["100.64.0.0/10", "fd00:64::/96"],
            "multus": ["10.100.0.0/16", "fd00:100::/64"],
        },
        routable=["10.10.0.0/16", "fd00:10::/56"],
    )


def plan_of(doc: dict[str, Any], previous: Previous | None = None) -> Plan:
    return validate(plan_fabric(parse_fabric(doc), previous))


def rules(plan: Plan) -> set[tuple[str, str]]:
    """(severity, rule) of every finding."""
    return {(f.severity.value, f.rule) for f in plan.findings}
