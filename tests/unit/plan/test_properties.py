"""Properties of plans: never overlap, always fit their blocks, stable under adding clusters."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from multinic.plan.allocate import Previous, plan_fabric
from multinic.plan.model import IPNetwork
from multinic.plan.parse import parse_fabric
from multinic.plan.result import Plan

from .fabrics import dual_stack, fabric


@st.composite
def clusters(draw: st.DrawFn, count: int) -> list[dict[str, Any]]:
    out = []
    for index in range(count):
        expected = draw(st.integers(1, 300))
        nets = [
            {
                "name": f"n{n}",
                "master": f"eth{n + 1}",
                "expected_addresses": draw(st.integers(1, 3000)),
                "ipam": draw(st.sampled_from(["per-node", "cluster-wide"])),
            }
            for n in range(draw(st.integers(0, 4)))
        ]
        out.append(
            {
                "name": f"c{index}",
                "nodes": {"expected": expected, "max": expected + draw(st.integers(0, 200))},
                "fixed_size": draw(st.booleans()),
                "interfaces": {
                    "management": "eth0",
                    "data_plane": ["eth1", "eth2", "eth3", "eth4"],
                },
                "networks": nets,
            }
        )
    return out


@st.composite
def fabrics(draw: st.DrawFn, min_clusters: int = 1) -> dict[str, Any]:
    members = draw(clusters(draw(st.integers(min_clusters, 14))))
    doc = dual_stack(*members) if draw(st.booleans()) else fabric(*members)
    # Small blocks so that some requests fail: the properties must hold for the rest too.
    doc["blocks"]["node"] = _replace_v4(doc["blocks"]["node"], "10.10.0.0/21")
    doc["blocks"]["multus"] = _replace_v4(doc["blocks"]["multus"], "10.100.0.0/18")
    doc["in_use"] = draw(st.sampled_from([[], ["10.10.3.0/25", "10.100.7.0/24"]]))
    return doc


def _replace_v4(value: Any, prefix: str) -> Any:
    if isinstance(value, list):
        return [prefix, *value[1:]]
    return prefix


def previous_of(plan: Plan) -> Previous:
    return {(a.kind, a.owner, a.prefix.version): a.prefix for a in plan.allocations()}


def spans(plan: Plan) -> list[tuple[int, int, int, str]]:
    return sorted(
        (p.version, int(p.network_address), int(p.broadcast_address), str(p))
        for p in [a.prefix for a in plan.allocations()]
    )


@settings(max_examples=150, deadline=None)
@given(fabrics())
def test_plans_never_overlap(doc: dict[str, Any]) -> None:
    plan = plan_fabric(parse_fabric(doc))

    ordered = spans(plan)
    for (v1, _, end, a), (v2, start, _, b) in itertools.pairwise(ordered):
        assert v1 != v2 or start > end, f"{a} overlaps {b}"
    in_use: list[IPNetwork] = list(plan.fabric.in_use)
    for alloc in plan.allocations():
        assert not any(
            alloc.prefix.overlaps(u) for u in in_use if u.version == alloc.prefix.version
        )


@settings(max_examples=150, deadline=None)
@given(fabrics())
def test_plans_always_fit_their_blocks(doc: dict[str, Any]) -> None:
    plan = plan_fabric(parse_fabric(doc))

    for alloc in plan.allocations():
        block = plan.fabric.block(alloc.kind).family(alloc.prefix.version)
        assert block is not None
        assert alloc.prefix.subnet_of(block)  # type: ignore[arg-type]
    # Every request was either allocated or reported as a shortfall.
    requested = 0
    for cp in plan.clusters:
        requested += len(plan.fabric.node.prefixes) + len(plan.fabric.pod.prefixes)
        requested += len(plan.fabric.service.prefixes)
        requested += len(cp.networks) * len(plan.fabric.multus.prefixes)
    assert len(list(plan.allocations())) + len(plan.shortfalls) == requested


@settings(max_examples=150, deadline=None)
@given(fabrics(), st.data())
def test_plans_are_stable_under_adding_clusters(doc: dict[str, Any], data: st.DataObject) -> None:
    before = plan_fabric(parse_fabric(doc))
    extra = data.draw(clusters(data.draw(st.integers(1, 4))))
    for n, added in enumerate(extra):
        added["name"] = f"new{n}"
    position = data.draw(st.integers(0, len(doc["clusters"])))
    grown = dict(doc, clusters=doc["clusters"][:position] + extra + doc["clusters"][position:])

    after = plan_fabric(parse_fabric(grown), previous_of(before))

    kept = set(previous_of(before).items())
    assert kept <= set(previous_of(after).items())
    if position == len(doc["clusters"]):  # appended: even without --previous nothing moves
        assert kept <= set(previous_of(plan_fabric(parse_fabric(grown))).items())


@settings(max_examples=50, deadline=None)
@given(fabrics())
def test_the_same_input_gives_the_same_plan(doc: dict[str, Any]) -> None:
    first = plan_fabric(parse_fabric(doc))
    second = plan_fabric(parse_fabric(doc))

    assert previous_of(first) == previous_of(second)
    assert first.shortfalls == second.shortfalls
