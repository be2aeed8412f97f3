"""``multinic demo``: the main job, on embedded defaults."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table

from multinic.cni.errors import CNIError
from multinic.cni.types import Result
from multinic.lab import demo as lab_demo
from multinic.lab import netns as lab


def interfaces_table(results: dict[tuple[str, str], Result]) -> Table:
    """One row per pod interface: what a person wants to see after the ADDs."""
    table = Table(title="pod interfaces (from the CNI results)")
    for column in ("pod", "interface", "plugin chain", "mac", "address", "gateway"):
        table.add_column(column)
    chains = {"eth0": "multinic-bridge + host-local", "net1": "multinic-macvlan + multinic-ipam"}
    for (pod, ifname), result in results.items():
        iface = next(i for i in result.interfaces if i.name == ifname and i.sandbox)
        ips = [ip for ip in result.ips if result.interfaces[ip.interface or 0].name == ifname]
        table.add_row(
            pod,
            ifname,
            chains[ifname],
            iface.mac,
            ", ".join(str(ip.address) for ip in ips),
            ", ".join(str(ip.gateway) for ip in ips if ip.gateway) or "-",
        )
    return table


def ping_table(
    plan: lab_demo.DemoPlan, results: dict[tuple[str, str], Result]
) -> tuple[Table, bool]:
    """Ping pod b from pod a over both networks; the table, and whether every ping answered."""
    table = Table(title="pod a -> pod b")
    for column in ("network", "from", "to", "ping"):
        table.add_column(column)
    a, b = plan.pods
    every_ping_answered = True
    for network, ifname in ((plan.primary, "eth0"), (plan.secondary, "net1")):
        source = lab_demo.pod_address(results[(a, ifname)], ifname)
        target = lab_demo.pod_address(results[(b, ifname)], ifname)
        answered = lab_demo.ping(a, target)
        every_ping_answered &= answered
        table.add_row(network, source, target, "[green]ok[/]" if answered else "[red]no reply[/]")
    return table, every_ping_answered


def run_demo() -> None:
    """Two pods, each on a primary and a secondary network; ping; CHECK; DEL; nothing left."""
    console = Console()
    if not console.is_terminal:
        console = Console(width=120)  # logs and CI: do not truncate MACs and paths
    plan = lab_demo.DemoPlan.for_process()
    try:
        with lab_demo.demo_environment(plan) as paths:
            runtime = lab_demo.make_runtime(paths)
            nets = (
                lab_demo.primary_network(plan, paths),
                lab_demo.secondary_network(plan, paths),
            )
            console.print(
                f"[bold]multinic demo[/]: pods [cyan]{plan.pods[0]}[/] and "
                f"[cyan]{plan.pods[1]}[/]; "
                f"primary network [cyan]{plan.primary}[/] on bridge {plan.bridge}, secondary "
                f"[cyan]{plan.secondary}[/] (macvlan on {plan.data_nic}); plugins installed in "
                f"{paths.bin}"
            )
            results = lab_demo.attach_all(runtime, plan, nets)
            console.print(interfaces_table(results))
            pings, pings_ok = ping_table(plan, results)
            console.print(pings)
            lab_demo.check_and_delete_all(runtime, plan, nets)
            console.print(
                "[bold green]CHECK[/] ok for all 4 attachments; [bold green]DEL[/] ok, twice each"
            )
            remaining = lab_demo.leftovers(plan, paths, runtime, results)
    except (CNIError, lab.LabError) as err:
        console.print(f"[bold red]demo failed:[/] {err}")
        sys.exit(1)
    if remaining:
        console.print(f"[bold red]left behind:[/] {remaining}")
        sys.exit(1)
    if not pings_ok:
        console.print("[bold red]a ping across the pods got no reply[/]")
        sys.exit(1)
    console.print(
        "[bold green]nothing left behind[/]: pod namespaces, links, cache entries, "
        "IPAM reservations and scratch files removed"
    )
