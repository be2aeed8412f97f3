"""The README and docs show the example fabric as the real command renders it today."""

from __future__ import annotations

from pathlib import Path

from multinic.plan.allocate import plan_fabric
from multinic.plan.export import export_cluster
from multinic.plan.parse import load_fabric
from multinic.plan.svgmap import render_svg
from multinic.plan.validate import validate

ROOT = Path(__file__).parents[3]


def example_plan():
    return validate(plan_fabric(load_fabric(ROOT / "examples" / "fabric.yaml")))


def test_the_committed_map_is_the_examples_map() -> None:
    # Regenerate with: multinic plan examples/fabric.yaml --map docs/plan-map.svg
    assert (ROOT / "docs" / "plan-map.svg").read_text() == render_svg(example_plan())


def test_the_readme_shows_the_examples_exports() -> None:
    plan = example_plan()
    readme = (ROOT / "README.md").read_text()
    core, edge = plan.clusters[2], plan.clusters[1]

    assert export_cluster(plan, core)["kubeadm-config.yaml"].rstrip() in readme
    assert export_cluster(plan, core)["antrea-controller.conf"].rstrip() in readme
    first_nad = export_cluster(plan, edge)["network-attachment-definitions.yaml"].split("---")[0]
    assert first_nad.rstrip() in readme
    for cp in plan.clusters:
        assert f"│ {cp.name} " in readme
        assert str(cp.pod[4]) in readme
