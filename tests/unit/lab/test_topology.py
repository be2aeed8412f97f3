"""The lab's layout from a dual-stack plan: which nodes get IPv6 underlay addresses."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from multinic.lab import run
from multinic.lab.state import LabState
from multinic.lab.topology import LabLayout, lab_layout

DUAL_STACK = run.DEFAULT_FABRIC.with_name("fabric-dual-stack.yaml")


def layout(fabric: Path, underlay: str) -> LabLayout:
    plan = run.load_plan(fabric)
    cp = run.choose_cluster(plan, None, 1)
    return lab_layout(
        "t", cp, plan.fabric.name, nodes=3, pods=1, secondaries=1, underlay=underlay, mode="auto"
    )


def test_a_dual_stack_plan_on_one_segment_gives_nodes_ipv6_addresses() -> None:
    lay = layout(DUAL_STACK, "l2")

    assert [str(p) for p in lay.pod_block] == ["10.32.0.0/18", "fd00:32::/58"]
    assert [n.address6 for n in lay.nodes] == [
        ipaddress.IPv6Interface(f"fd00:10::{10 + i:x}/64") for i in (1, 2, 3)
    ]


@pytest.mark.parametrize(
    ("fabric", "underlay"), [(DUAL_STACK, "routed"), (run.DEFAULT_FABRIC, "l2")]
)
def test_no_ipv6_underlay_when_routed_or_single_stack(fabric: Path, underlay: str) -> None:
    assert {n.address6 for n in layout(fabric, underlay).nodes} == {None}


def test_the_ipv6_address_survives_the_state_file() -> None:
    lay = layout(DUAL_STACK, "l2")

    state = SimpleNamespace(data={"layout": run._layout_doc(lay)})  # what LabState holds

    again = run.layout_from_state(cast(LabState, state))

    assert again == lay
