"""``multinic plan`` through click's CliRunner: exit codes, formats, --check, --previous."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner

from multinic.cli.main import cli

from .fabrics import cluster, fabric, network

EXAMPLE = Path(__file__).parents[3] / "examples" / "fabric.yaml"


def write(tmp_path: Path, doc: dict[str, Any], name: str = "fabric.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return path


def run(*args: str) -> Any:
    return CliRunner().invoke(cli, ["plan", *args])


def test_example_plans_cleanly_with_tables() -> None:
    done = run(str(EXAMPLE))

    assert done.exit_code == 0, done.output
    assert "10.10.1.0/29" in done.stdout  # mgmt: fixed size, 5 nodes
    assert "no findings" in done.stdout


def test_json_plan_has_clusters_blocks_and_summary() -> None:
    done = run(str(EXAMPLE), "--json")

    doc = json.loads(done.stdout)
    assert doc["format"] == "multinic.plan/v1"
    assert [c["name"] for c in doc["clusters"]] == ["mgmt", "edge-1", "core-1"]
    assert doc["summary"] == {"errors": 0, "warnings": 0}
    assert {b["block"] for b in doc["blocks"]} == {"node", "pod", "service", "multus"}


def test_errors_exit_1_and_warnings_exit_0(tmp_path: Path) -> None:
    bad = write(tmp_path, fabric(cluster("a", networks=[network(master="eth0")])))
    warned = write(tmp_path, fabric(routable=["192.168.0.0/16"]), "warned.yaml")

    failed = run(str(bad))
    passed = run(str(warned), "--yaml")

    assert failed.exit_code == 1
    assert "secondary network a/n3 has parent eth0, the management interface" in failed.stdout
    assert passed.exit_code == 0
    assert yaml.safe_load(passed.stdout)["summary"] == {"errors": 0, "warnings": 1}


def test_check_prints_findings_only(tmp_path: Path) -> None:
    bad = write(tmp_path, fabric(routable=["10.0.0.0/8"]))

    done = run("--check", str(bad), "--json")

    assert done.exit_code == 1
    doc = json.loads(done.stdout)
    assert set(doc) == {"findings", "summary"}
    assert doc["findings"][0]["rule"] == "routable"
    assert run("--check", str(EXAMPLE)).exit_code == 0


def test_previous_keeps_allocations_when_a_cluster_is_inserted_first(tmp_path: Path) -> None:
    first = run(str(write(tmp_path, fabric(cluster("a"), cluster("b")))), "--json")
    previous = tmp_path / "plan.json"
    previous.write_text(first.stdout)
    grown = write(tmp_path, fabric(cluster("z"), cluster("a"), cluster("b")), "grown.yaml")

    kept = json.loads(run(str(grown), "--previous", str(previous), "--json").stdout)
    moved = json.loads(run(str(grown), "--json").stdout)

    before = {c["name"]: c for c in json.loads(first.stdout)["clusters"]}
    after = {c["name"]: c for c in kept["clusters"]}
    assert after["a"] == before["a"]
    assert after["b"] == before["b"]
    assert {c["name"]: c for c in moved["clusters"]}["a"]["node"] != before["a"]["node"]


def test_previous_must_be_a_plan(tmp_path: Path) -> None:
    junk = tmp_path / "junk.json"
    junk.write_text('{"clusters": []}')

    done = run(str(EXAMPLE), "--previous", str(junk))

    assert done.exit_code == 1
    assert "not a plan written by `multinic plan`" in done.stderr


def test_an_invalid_fabric_file_names_the_field(tmp_path: Path) -> None:
    doc = fabric()
    doc["clusters"][0]["nodes"] = "many"

    done = run(str(write(tmp_path, doc)))

    assert done.exit_code == 1
    assert "clusters[0].nodes: expected a mapping, got str" in done.stderr


def test_map_and_exports_are_written(tmp_path: Path) -> None:
    svg, html, out = tmp_path / "map.svg", tmp_path / "map.html", tmp_path / "out"

    done = run(str(EXAMPLE), "--map", str(svg), "--export", str(out))
    run(str(EXAMPLE), "--map", str(html))

    assert done.exit_code == 0
    assert svg.read_text().startswith("<svg")
    assert html.read_text().startswith("<!doctype html>")
    assert sorted(p.name for p in out.iterdir()) == ["core-1", "edge-1", "mgmt"]
    # 4 per cluster, and a config per node slot of each per-node network (64 + 200 slots).
    assert "276 files written" in done.stderr
    assert len(list((out / "core-1" / "multus-net.d").iterdir())) == 200


def test_exports_are_not_written_for_a_plan_with_errors(tmp_path: Path) -> None:
    bad = write(tmp_path, fabric(routable=["10.0.0.0/8"]))

    done = run(str(bad), "--export", str(tmp_path / "out"))

    assert done.exit_code == 1
    assert not (tmp_path / "out").exists()
    assert "exports not written" in done.stderr


def test_check_refuses_to_write(tmp_path: Path) -> None:
    done = run("--check", str(EXAMPLE), "--export", str(tmp_path / "out"))

    assert done.exit_code == 2
    assert "--check writes nothing" in done.stderr
    assert not (tmp_path / "out").exists()


def test_map_needs_svg_or_html() -> None:
    done = run(str(EXAMPLE), "--map", "map.png")

    assert done.exit_code == 2
    assert "--map takes a file ending in .svg or .html" in done.stderr


def test_previous_in_yaml_gives_the_same_plan_back(tmp_path: Path) -> None:
    previous = tmp_path / "plan.yaml"
    previous.write_text(run(str(EXAMPLE), "--yaml").stdout)

    again = run(str(EXAMPLE), "--previous", str(previous), "--yaml")

    assert again.exit_code == 0
    assert again.stdout == previous.read_text()


def test_previous_that_is_neither_json_nor_yaml(tmp_path: Path) -> None:
    broken = tmp_path / "plan.json"
    broken.write_text("{not: [json")

    done = run(str(EXAMPLE), "--previous", str(broken))

    assert done.exit_code == 1
    assert "cannot read the previous plan" in done.stderr


def test_the_cli_loads_neither_the_planner_nor_yaml_nor_rich_until_plan_runs() -> None:
    probe = (
        "import sys, json; import multinic.cli.main; "
        "print(json.dumps(sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('yaml', 'rich') or m.startswith('multinic.plan'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )

    assert json.loads(done.stdout) == []
