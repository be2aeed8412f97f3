"""A plan as a document for programs (JSON/YAML), and a former plan read back for --previous."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from multinic.plan.errors import PreviousPlanError
from multinic.plan.model import BlockKind, IPNetwork
from multinic.plan.pool import parse_prefix
from multinic.plan.result import ClusterPlan, Finding, Plan, Severity

#: Bumped when the document changes incompatibly; --previous reads this version.
FORMAT = "multinic.plan/v1"


def plan_document(plan: Plan) -> dict[str, Any]:
    """The plan as plain data: blocks and their use, clusters' prefixes, findings."""
    return {
        "format": FORMAT,
        "fabric": plan.fabric.name,
        "blocks": block_usage(plan),
        "clusters": [_cluster(cp) for cp in plan.clusters],
        **findings_document(plan.findings),
    }


def findings_document(findings: list[Finding]) -> dict[str, Any]:
    errors = sum(1 for f in findings if f.severity is Severity.ERROR)
    return {
        "findings": [
            {"severity": f.severity.value, "rule": f.rule, "message": f.message} for f in findings
        ],
        "summary": {"errors": errors, "warnings": len(findings) - errors},
    }


def block_usage(plan: Plan) -> list[dict[str, Any]]:
    """Per block prefix: size, addresses allocated, free, and the largest free prefix."""
    rows = []
    for block in plan.fabric.blocks:
        for prefix in block.prefixes:
            free = plan.free.get((block.kind, prefix.version), [])
            allocated = sum(
                a.prefix.num_addresses
                for a in plan.allocations()
                if a.kind is block.kind and a.prefix.version == prefix.version
            )
            rows.append(
                {
                    "block": block.kind.value,
                    "prefix": str(prefix),
                    "addresses": prefix.num_addresses,
                    "allocated": allocated,
                    "free": sum(p.num_addresses for p in free),
                    "largest_free": str(min(free, key=lambda p: p.prefixlen)) if free else None,
                    "free_prefixes": len(free),
                }
            )
    return rows


def _cluster(cp: ClusterPlan) -> dict[str, Any]:
    cluster = cp.cluster
    return {
        "name": cp.name,
        "nodes": {"expected": cluster.expected_nodes, "max": cluster.max_nodes},
        "pods_per_node": cluster.pods_per_node,
        "node": _prefixes(cp.node),
        "pod": _prefixes(cp.pod),
        "service": _prefixes(cp.service),
        "networks": [
            {
                "name": np.network.name,
                "type": np.network.kind.value,
                "mode": np.network.mode,
                "master": np.network.master,
                "ipam": np.network.ipam.value,
                "expected_addresses": np.network.expected_addresses,
                "ranges": _prefixes(np.ranges),
            }
            for np in cp.networks
        ],
    }


def _prefixes(by_version: Mapping[int, IPNetwork]) -> list[str]:
    return [str(by_version[v]) for v in sorted(by_version)]


def dump(document: Mapping[str, Any], fmt: str) -> str:
    """``json`` or ``yaml`` text of a document."""
    if fmt == "json":
        return json.dumps(document, indent=2) + "\n"
    import yaml  # only when YAML is asked for

    return str(yaml.safe_dump(dict(document), sort_keys=False, default_flow_style=False))


def load_previous(path: Path) -> dict[tuple[BlockKind, str, int], IPNetwork]:
    """The allocations of a plan this command wrote before (JSON or YAML)."""
    import yaml

    try:
        text = path.read_text()
        doc = _decode(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:  # ValueError: also not UTF-8
        raise PreviousPlanError(f"{path}: cannot read the previous plan: {exc}") from exc
    except RecursionError as exc:  # json.loads of a deeply nested document
        raise PreviousPlanError(f"{path}: nested too deeply to be a plan") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise PreviousPlanError(f"{path}: not a plan written by `multinic plan` ({FORMAT})")
    try:
        return _previous_allocations(doc)
    except (KeyError, TypeError, ValueError) as exc:
        raise PreviousPlanError(f"{path}: malformed plan: {exc!r}") from exc


def _decode(text: str) -> object:
    # JSON first: json is ten times faster than even libyaml on a large plan.
    import yaml

    try:
        return json.loads(text)
    except ValueError:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        return yaml.load(text, Loader=loader)  # noqa: S506 (a safe loader)


def _previous_allocations(doc: Mapping[str, Any]) -> dict[tuple[BlockKind, str, int], IPNetwork]:
    found: dict[tuple[BlockKind, str, int], IPNetwork] = {}

    def add(kind: BlockKind, owner: str, texts: list[str]) -> None:
        for text in texts:
            prefix = parse_prefix(text)
            found[kind, owner, prefix.version] = prefix

    for cluster in doc["clusters"]:
        name = str(cluster["name"])
        for kind in (BlockKind.NODE, BlockKind.POD, BlockKind.SERVICE):
            add(kind, name, cluster[kind.value])
        for net in cluster["networks"]:
            add(BlockKind.MULTUS, f"{name}/{net['name']}", net["ranges"])
    return found
