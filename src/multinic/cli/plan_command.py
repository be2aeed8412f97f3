"""``multinic plan``: plan, validate and export a fabric's address blocks.

Exit codes: 0 the plan has no errors (warnings are printed); 1 the fabric file
or the previous plan cannot be read, or the plan has errors; 2 usage.
Only click is imported at module level, so ``multinic --help`` stays fast: the
planner, PyYAML and rich load when the command runs.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import click

from multinic.cli.options import one_of, output_file, write_failed

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from multinic.plan.result import Finding, Plan

MAP_SUFFIXES = (".svg", ".html")
FORMAT = one_of("--json", "--yaml")
BLOCK_COLUMNS = ("block", "prefix", "allocated", "free", "largest free", "pieces")
NETWORK_COLUMNS = ("network", "link", "IPAM", "expected", "range")


@click.command("plan")
@click.argument("fabric_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--check", is_flag=True, help="Only validate: print the findings, write nothing.")
@click.option(
    "--previous",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A plan written before with --json/--yaml: its allocations stay where they are.",
)
@click.option(
    "--json",
    "fmt",
    flag_value="json",
    multiple=True,
    callback=FORMAT,
    help="Print the plan as JSON.",
)
@click.option(
    "--yaml",
    "fmt",
    flag_value="yaml",
    multiple=True,
    callback=FORMAT,
    help="Print the plan as YAML.",
)
@click.option(
    "--map",
    "map_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the address-space map to a .svg or .html file.",
)
@click.option(
    "--export",
    "export_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write each cluster's kubeadm, Antrea, NAD and node config files under DIR/<cluster>/.",
)
def plan(
    fabric_file: Path,
    check: bool,
    previous: Path | None,
    fmt: str | None,
    map_path: Path | None,
    export_dir: Path | None,
) -> None:
    """Plan the address blocks of the fabric in FABRIC_FILE (YAML; see examples/fabric.yaml)."""
    if map_path is not None and map_path.suffix not in MAP_SUFFIXES:
        raise click.UsageError("--map takes a file ending in .svg or .html")
    if check and (map_path or export_dir):
        raise click.UsageError("--check writes nothing: drop --map and --export, or --check")
    if map_path is not None:
        output_file(map_path, "--map")  # before planning, not after
    from multinic.plan.errors import PlanError

    try:
        result = _make_plan(fabric_file, previous)
    except PlanError as exc:
        click.echo(f"multinic plan: {exc}", err=True)
        sys.exit(1)
    if check:
        _print_findings_only(result, fmt)
    else:
        _print_plan(result, fmt)
        _write_outputs(result, map_path, export_dir)
    sys.exit(1 if result.errors else 0)


def _make_plan(fabric_file: Path, previous: Path | None) -> Plan:
    from multinic.plan.allocate import plan_fabric
    from multinic.plan.parse import load_fabric
    from multinic.plan.report import load_previous
    from multinic.plan.validate import validate

    fabric = load_fabric(fabric_file)
    prior = load_previous(previous) if previous is not None else None
    return validate(plan_fabric(fabric, prior))


def _print_findings_only(result: Plan, fmt: str | None) -> None:
    from multinic.plan.report import dump, findings_document

    if fmt:
        click.echo(dump(findings_document(result.findings), fmt), nl=False)
    else:
        _print_findings(_console(), result.findings)


def _print_plan(result: Plan, fmt: str | None) -> None:
    from multinic.plan.report import dump, plan_document

    if fmt:
        click.echo(dump(plan_document(result), fmt), nl=False)
        return
    console = _console()
    _print_blocks(console, result)
    _print_clusters(console, result)
    _print_findings(console, result.findings)


def _write_outputs(result: Plan, map_path: Path | None, export_dir: Path | None) -> None:
    if map_path is not None:
        from multinic.plan.svgmap import render_html, render_svg

        render = render_html if map_path.suffix == ".html" else render_svg
        try:
            map_path.write_text(render(result))
        except OSError as exc:
            raise write_failed(map_path, exc) from exc
        click.echo(f"map written to {map_path}", err=True)
    if export_dir is None:
        return
    if result.errors:
        click.echo("exports not written: the plan has errors", err=True)
        return
    from multinic.plan.export import write_exports

    try:
        written = write_exports(result, export_dir)
    except OSError as exc:
        raise write_failed(getattr(exc, "filename", None) or export_dir, exc) from exc
    click.echo(f"{len(written)} files written under {export_dir}", err=True)


def _console() -> Console:
    # rich is imported here only: the rest of the CLI starts without it.
    from multinic.cli import render

    return render.console()


def _table(title: str, *columns: str) -> Table:
    from multinic.cli import render

    return render.table(title, columns)


def _add_row(table: Table, *cells: str) -> None:
    from multinic.cli import render

    render.add_row(table, *cells)


def _print_table(console: Console, table: Table) -> None:
    from multinic.cli import render

    render.print_table(console, table)


def _print_blocks(console: Console, result: Plan) -> None:
    from multinic.plan.report import block_usage

    table = _table(f"fabric {result.fabric.name}: blocks", *BLOCK_COLUMNS)
    for row in block_usage(result):
        _add_row(
            table,
            row["block"],
            row["prefix"],
            f"{row['allocated']:,}",
            f"{row['free']:,}",
            row["largest_free"] or "-",
            str(row["free_prefixes"]),
        )
    _print_table(console, table)


def _print_clusters(console: Console, result: Plan) -> None:
    table = _table("clusters", "cluster", "nodes (max)", "node subnet", "pod CIDR", "service CIDR")
    for cp in result.clusters:
        nodes = f"{cp.cluster.expected_nodes} ({cp.cluster.max_nodes})"
        _add_row(table, cp.name, nodes, _joined(cp.node), _joined(cp.pod), _joined(cp.service))
    _print_table(console, table)
    networks = _table("secondary networks", *NETWORK_COLUMNS)
    for cp in result.clusters:
        for np in cp.networks:
            net = np.network
            _add_row(
                networks,
                f"{cp.name}/{net.name}",
                f"{net.kind.value} {net.mode} on {net.master}",
                net.ipam.value,
                str(net.expected_addresses),
                _joined(np.ranges),
            )
    if networks.rows:
        _print_table(console, networks)


def _print_findings(console: Console, findings: list[Finding]) -> None:
    from multinic.cli.render import line

    if not findings:
        line(console, ("no findings", "green"), ": the plan follows every rule")
        return
    for finding in findings:
        style = "bold red" if finding.severity.value == "error" else "yellow"
        # One finding per line (line() never wraps): grep and copy work.
        line(
            console,
            (finding.severity.value, style),
            " ",
            (finding.rule, "dim"),
            " ",
            finding.message,
        )
    errors = sum(1 for f in findings if f.severity.value == "error")
    line(console, f"{errors} error(s), {len(findings) - errors} warning(s)")


def _joined(by_version: Mapping[int, object]) -> str:
    return "\n".join(str(by_version[v]) for v in sorted(by_version)) or "-"
