"""``multinic lab up|status|check|down``: the whole design as a cluster of namespaces."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import click

NAME_HELP = "The lab's name: it prefixes every namespace the lab makes."


def _fail(message: str) -> NoReturn:
    click.echo(f"multinic lab: {message}", err=True)
    sys.exit(1)


@click.group()
def lab() -> None:
    """A small cluster on this machine: nodes, pods and networks as namespaces."""


@lab.command()
@click.option("--name", default="mnlab", show_default=True, help=NAME_HELP)
@click.option(
    "--fabric",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Fabric file for the address plan (default: examples/fabric.yaml).",
)
@click.option(
    "--cluster",
    help="Which cluster of the plan (default: the first with enough secondary networks).",
)
@click.option("--nodes", default=3, show_default=True, type=int)
@click.option("--pods", default=4, show_default=True, type=int, help="Pods per node.")
@click.option(
    "--secondaries",
    default=2,
    show_default=True,
    type=int,
    help="Secondary networks per pod (the cluster's first ones).",
)
@click.option(
    "--overlay",
    type=click.Choice(["host-gw", "vxlan"]),
    default="host-gw",
    show_default=True,
    help="host-gw: nodes share the management segment; vxlan: "
    "each node on its own routed segment, so pods cross nodes through VXLAN.",
)
@click.option(
    "--secondary-type",
    type=click.Choice(["macvlan", "planned"]),
    default="macvlan",
    show_default=True,
    help="macvlan: every secondary as macvlan (bridge), on any kernel; planned: the link "
    "type and mode the plan gives each network (the seed's ipvlan l2/l3: needs ipvlan).",
)
@click.option(
    "--store",
    type=click.Choice(["sqlite", "etcd"]),
    default="sqlite",
    show_default=True,
    help="The cluster store of both IPAMs: embedded SQLite, or a 3-member etcd the lab runs.",
)
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Run against this API server: Nodes registered, pod CIDRs from its "
    "controller-manager, NADs and Pods as API objects (docs/lab.md).",
)
@click.option(
    "--kube",
    is_flag=True,
    help="Run a Kubernetes control plane of the lab's own (etcd, kube-apiserver, "
    "kube-controller-manager from scripts/build-third-party) and use it as --kubeconfig.",
)
@click.option(
    "--pod-block",
    help="With --kubeconfig: the controller-manager's --cluster-cidr (default: the plan's).",
)
@click.option(
    "--check/--no-check",
    "then_check",
    default=True,
    show_default=True,
    help="Run the connectivity matrix once it is up.",
)
@click.option(
    "--picture",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the lab's picture here (.svg or .html).",
)
@click.option("--down-after", is_flag=True, help="Remove the lab at the end, whatever happened.")
def up(
    name: str,
    fabric: Path | None,
    cluster: str | None,
    nodes: int,
    pods: int,
    secondaries: int,
    overlay: str,
    secondary_type: str,
    store: str,
    kubeconfig: Path | None,
    kube: bool,
    pod_block: str | None,
    then_check: bool,
    picture: Path | None,
    down_after: bool,
) -> None:
    """Build the lab (and check it); `multinic lab down` removes it."""  # fmt: skip
    from multinic.cli import render
    from multinic.lab import run

    console = render.console(stderr=True)
    spec = run.LabSpec(name=name, nodes=nodes, pods=pods, secondaries=secondaries,
                       overlay=overlay, cluster=cluster, store=store,
                       kubeconfig=None if kubeconfig is None else kubeconfig.resolve(),
                       pod_block=pod_block, kube=kube,
                       secondary_type=secondary_type)  # fmt: skip
    if fabric is not None:
        spec.fabric = fabric
    try:
        with console.status("building the lab") as shown:
            report = run.up(spec, progress=lambda m: shown.update(f"lab {name}: {m}"))
    except run.LabError as exc:
        _fail(str(exc))
    lay = report.layout
    render.line(
        console,
        "lab ",
        (name, "bold"),
        f": {len(lay.nodes)} nodes x {pods} pods, cluster {lay.cluster} "
        f"of {lay.fabric}, pod block {', '.join(lay.pod_block)}, {lay.underlay} underlay; "
        + ", ".join(f"{k} {v:.2f} s" for k, v in report.seconds.items()),
    )
    for change in report.host_changes:
        render.line(console, "raised for the lab's size (kept after down): ", change)
    ok = True
    try:
        if picture is not None:
            _picture(name, picture)
        ok = not then_check or _check(name, console)
    finally:
        if down_after:
            began = time.monotonic()
            for problem in run.down(name):
                click.echo(f"multinic lab: while removing: {problem}", err=True)
            console.print(f"lab {name} removed in {time.monotonic() - began:.2f} s")
    if not ok:
        sys.exit(1)


def _picture(name: str, path: Path) -> None:
    from multinic.lab import run
    from multinic.lab.picture import render_html, render_svg

    status = run.status(name)
    path.write_text(render_html(status) if path.suffix == ".html" else render_svg(status))
    click.echo(f"picture: {path}", err=True)


def _check(name: str, console: Any) -> bool:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from multinic.cli import render
    from multinic.lab import run
    from multinic.lab.fabric import l3_networks

    began = time.monotonic()
    _, layout, paths = run.require(name)
    total = len(run.probes(layout, paths))
    columns = (TextColumn("pinging"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("ping", total=total)
        results = run.check(name, progress=lambda n: bar.advance(task, n))
    table = render.table(
        f"lab {name}: every pod to every other pod ({time.monotonic() - began:.1f} s)",
        ("network", "same node", "across nodes", "how across"),
    )
    how = {"primary": {"l2": "host-gw routes", "routed": "VXLAN overlay"}[layout.underlay]}
    routed = l3_networks(layout)
    for secondary in layout.secondaries:
        way = "routes to the node" if secondary.name in routed else "L2 segment"
        how[secondary.name] = f"{way} ({' '.join(layout.link(secondary))})"
    for network in dict.fromkeys(p.network for p in results):
        mine = [p for p in results if p.network == network]
        same = [p for p in mine if p.source_node == p.target_node]
        cross = [p for p in mine if p.source_node != p.target_node]
        base = network.removesuffix(" (IPv6)")
        render.add_row(table, network, _count(same), _count(cross), how[base])
    render.print_table(console, table)
    failed = [p for p in results if not p.ok]
    for p in failed[:20]:
        render.line(
            console,
            ("no answer", "red"),
            f": {p.source} -> {p.target} on {p.network} ({p.address or 'no address'})",
        )
    return not failed


def _count(probes: list[Any]) -> Any:
    from multinic.cli import render

    ok = sum(p.ok for p in probes)
    colour = "green" if ok == len(probes) else "red"
    return render.text((f"{ok}/{len(probes)}", colour))


@lab.command()
@click.argument("name", default="mnlab")
def check(name: str) -> None:
    """Run the connectivity matrix of a running lab again."""
    from multinic.cli import render
    from multinic.lab import run

    try:
        ok = _check(name, render.console())
    except run.LabError as exc:
        _fail(str(exc))
    sys.exit(0 if ok else 1)


@lab.command()
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="JSON for programs.")
@click.option(
    "--picture",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the lab's picture here (.svg or .html).",
)
def status(name: str | None, as_json: bool, picture: Path | None) -> None:
    """Nodes, daemons, pod CIDRs, pods and their addresses (every lab when no name)."""
    from multinic.cli import render
    from multinic.lab import run
    from multinic.lab.state import lab_names

    names = [name] if name else lab_names()
    try:
        found = [run.status(n) for n in names]
    except run.LabError as exc:
        _fail(str(exc))
    if picture is not None and names:
        _picture(names[0], picture)
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    console = render.console()
    if not found:
        render.line(console, "no labs on this machine")
    for doc in found:
        lab_doc = doc["lab"]
        seen = {n for node in lab_doc["nodes"] for a in node["pods"].values() for n in a}
        networks = ["primary", *(s["name"] for s in lab_doc["secondaries"])]
        networks += [f"{n} (IPv6)" for n in networks if f"{n} (IPv6)" in seen]
        table = render.table(
            f"lab {lab_doc['name']} ({lab_doc['underlay']} underlay, {lab_doc['store']} store"
            + (", API server" if lab_doc["kubeconfig"] else "")
            + ")",
            ("node", "address", "pod CIDRs", "daemon", "pod", *networks),
        )
        for node in lab_doc["nodes"]:
            daemon = f"pid {node['daemon']}" if node["daemon"] else render.text(("down", "red"))
            first = True
            for pod, addrs in (node["pods"] or {"-": {}}).items():
                head = (node["name"], node["address"], ", ".join(node["podCIDRs"]), daemon)
                render.add_row(table, *(head if first else ("", "", "", "")), pod,
                               *(addrs.get(n, "-") for n in networks))  # fmt: skip
                first = False
        render.print_table(console, table)


@lab.command()
@click.argument("name", default="mnlab")
def down(name: str) -> None:
    """Remove the lab: pods DELeted, daemons stopped, namespaces and files gone."""
    from multinic.lab import run
    from multinic.lab.state import LabState

    if LabState.load(name) is None:
        _fail(f"no lab named {name} on this machine")
    began = time.monotonic()
    problems = run.down(name)
    for problem in problems:
        click.echo(f"multinic lab: while removing: {problem}", err=True)
    click.echo(f"lab {name} removed in {time.monotonic() - began:.2f} s", err=True)
