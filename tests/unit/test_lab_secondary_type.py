"""How the lab attaches secondaries: macvlan everywhere, or the plan's ipvlan l2/l3 (no root).

The layouts come from the example fabric, whose edge-1 cluster plans n3 as ipvlan
l2 on eth1, n6 as ipvlan l3 on eth2 and signaling as macvlan bridge on eth3.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from multinic.lab import cluster, fabric, run
from multinic.lab.state import LabState
from multinic.lab.topology import LabLayout


def _layout(secondary_type: str, secondaries: int = 3) -> LabLayout:
    spec = run.LabSpec(
        name="unit", nodes=2, pods=1, secondaries=secondaries, secondary_type=secondary_type
    )
    layout, _ = run.layout_for(spec)
    return layout


def _written_configs(secondary_type: str, tmp_path: Path) -> dict[str, dict[str, object]]:
    """network -> the config the lab wrote (cluster-wide: in the NAD; per-node: node-1's file)."""
    spec = run.LabSpec(name="unit", nodes=2, pods=1, secondaries=3, secondary_type=secondary_type)
    layout, cp = run.layout_for(spec)
    paths = cluster.LabPaths(tmp_path)
    cluster.write_objects(layout, cp, paths)
    found = {}
    for nad in yaml.safe_load_all((paths.objects / "nads.yaml").read_text()):
        if "spec" in nad:
            found[nad["metadata"]["name"]] = json.loads(nad["spec"]["config"])
    for conf in (paths.node("node-1") / "net.d").glob("*.conf"):
        found[conf.stem] = json.loads(conf.read_text())
    return found


BRIDGE = ("macvlan", "bridge")


@pytest.mark.parametrize(
    ("secondary_type", "expected"),
    [
        ("planned", {"n3": ("ipvlan", "l2"), "n6": ("ipvlan", "l3"), "signaling": BRIDGE}),
        ("macvlan", {"n3": BRIDGE, "n6": BRIDGE, "signaling": BRIDGE}),
    ],
)
def test_the_configs_the_lab_writes_use_the_chosen_links(
    secondary_type: str, expected: dict[str, tuple[str, str]], tmp_path: Path
) -> None:
    layout = _layout(secondary_type)
    assert {s.name: layout.link(s) for s in layout.secondaries} == expected

    written = _written_configs(secondary_type, tmp_path)

    assert {name: (c["type"], c["mode"]) for name, c in written.items()} == {
        name: (f"multinic-{kind}", mode) for name, (kind, mode) in expected.items()
    }
    assert {name: c["master"] for name, c in written.items()} == {
        "n3": "eth1",
        "n6": "eth2",
        "signaling": "eth3",
    }


def test_only_ipvlan_l3_networks_are_routed_between_nodes() -> None:
    assert fabric.l3_networks(_layout("planned")) == ["n6"]
    assert fabric.l3_networks(_layout("macvlan")) == []


def test_an_unknown_secondary_type_is_refused() -> None:
    with pytest.raises(run.LabError, match="secondary type 'sriov': one of macvlan, planned"):
        _layout("sriov")


def test_the_state_remembers_the_secondary_type(tmp_path: Path) -> None:
    layout = _layout("planned", secondaries=2)
    doc = run._layout_doc(layout)

    assert run.layout_from_state(LabState(tmp_path, {"layout": doc})) == layout
    # A lab recorded before the option existed attached macvlan.
    del doc["secondaryType"]
    older = run.layout_from_state(LabState(tmp_path, {"layout": doc}))
    assert older.secondary_type == "macvlan"
