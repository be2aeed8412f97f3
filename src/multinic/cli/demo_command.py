"""``multinic demo``: the main job, on embedded defaults."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from multinic.cni.errors import CNIError
from multinic.cni.runtime import Runtime, RuntimeConf
from multinic.cni.types import Result
from multinic.lab import demo as lab_demo
from multinic.lab import netns as lab


class RichDemoReport(lab_demo.DemoReport):
    """Prints each step of the demo for a person."""

    def __init__(self, console: Console, netns: str) -> None:
        self.console = console
        self.netns = netns

    def added(self, result: Result, cache_file: Path) -> None:
        self.console.print(f"[bold green]ADD[/] ok: result in CNI {result.cni_version}")
        self.console.print(result_table(result))
        cached = json.loads(cache_file.read_bytes())
        self.console.print(
            f"libcni cache entry [cyan]{cache_file}[/] (kind {cached['kind']}, "
            f"network {cached['networkName']}, netns {cached['netns']})"
        )
        pod_view = lab.ip("-br", "addr", "show", netns=self.netns).rstrip()
        self.console.print(f"inside the pod ([cyan]ip -n {self.netns} -br addr[/]):")
        self.console.print(pod_view, highlight=False)

    def checked(self) -> None:
        self.console.print("[bold green]CHECK[/] ok: the pod matches the cached result")

    def deleted(self) -> None:
        self.console.print("[bold green]DEL[/] ok, and a second DEL ok (DEL is idempotent)")


def result_table(result: Result) -> Table:
    table = Table(title="CNI result", show_lines=False)
    for column in ("interface", "sandbox", "mac", "address", "gateway"):
        table.add_column(column)
    for index, iface in enumerate(result.interfaces):
        ips = [ip for ip in result.ips if ip.interface == index]
        address = ", ".join(str(ip.address) for ip in ips) or "-"
        gateway = ", ".join(str(ip.gateway) for ip in ips if ip.gateway) or "-"
        table.add_row(iface.name, iface.sandbox or "(host)", iface.mac, address, gateway)
    for route in result.routes:
        table.add_row("route", "", "", str(route.dst), str(route.gw or "-"))
    return table


def run_demo() -> None:
    """ADD, CHECK and DEL a pod namespace through multinic's CNI runtime."""
    console = Console()
    if not console.is_terminal:
        console = Console(width=120)  # logs and CI: do not truncate MACs and paths
    plan = lab_demo.DemoPlan.for_process()
    try:
        plugin_dirs = lab_demo.find_reference_plugins()
        with lab_demo.demo_environment(plan) as (netns_path, scratch):
            runtime = Runtime(plugin_dirs, cache_dir=scratch / "cache")
            net = lab_demo.demo_network(plan, scratch / "ipam")
            rt = RuntimeConf(plan.container_id, str(netns_path), plan.ifname)
            console.print(
                f"[bold]multinic demo[/]: pod namespace [cyan]{plan.netns}[/], network "
                f"[cyan]{net.name}[/] = bridge + host-local -> tuning, plugins from "
                f"{[str(d) for d in plugin_dirs]}, negotiated cniVersion "
                f"{net.negotiated_version()}"
            )
            lab_demo.run_cycle(runtime, net, rt, RichDemoReport(console, plan.netns))
            remaining = lab_demo.leftovers(plan, runtime)
    except (CNIError, lab.LabError) as err:
        console.print(f"[bold red]demo failed:[/] {err}")
        sys.exit(1)
    if remaining:
        console.print(f"[bold red]left behind:[/] {remaining}")
        sys.exit(1)
    console.print("[bold green]nothing left behind[/]: namespace, bridge and scratch dir removed")
