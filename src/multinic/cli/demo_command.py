"""``multinic demo``: the main job, on embedded defaults."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table

from multinic.cli import render
from multinic.cli.render import line
from multinic.cni.errors import CNIError
from multinic.cni.types import Result
from multinic.lab import demo as lab_demo
from multinic.lab import netns as lab


def interfaces_table(results: dict[tuple[str, str], Result]) -> Table:
    """One row per pod interface: what a person wants to see after the ADDs."""
    table = render.table(
        "pod interfaces (from the CNI results)",
        ("pod", "interface", "plugin chain", "mac", "address", "gateway"),
    )
    chains = {"eth0": "multinic-bridge + host-local", "net1": "multinic-macvlan + multinic-ipam"}
    for (pod, ifname), result in results.items():
        iface = next(i for i in result.interfaces if i.name == ifname and i.sandbox)
        ips = [ip for ip in result.ips if result.interfaces[ip.interface or 0].name == ifname]
        render.add_row(
            table,
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
    table = render.table("pod a -> pod b", ("network", "from", "to", "ping"))
    a, b = plan.pods
    every_ping_answered = True
    for network, ifname in ((plan.primary, "eth0"), (plan.secondary, "net1")):
        source = lab_demo.pod_address(results[(a, ifname)], ifname)
        target = lab_demo.pod_address(results[(b, ifname)], ifname)
        answered = lab_demo.ping(a, target)
        every_ping_answered &= answered
        ping = render.text(("ok", "green") if answered else ("no reply", "red"))
        render.add_row(table, network, source, target, ping)
    return table, every_ping_answered


def run_demo() -> None:
    """Two pods, each on a primary and a secondary network; ping; CHECK; DEL; nothing left."""
    console = render.console()  # tables widen as needed: MACs and paths are never cut
    plan = lab_demo.DemoPlan.for_process()
    try:
        with lab_demo.demo_environment(plan) as paths:
            runtime = lab_demo.make_runtime(paths)
            nets = (
                lab_demo.primary_network(plan, paths),
                lab_demo.secondary_network(plan, paths),
            )
            _introduce(console, plan, str(paths.bin))
            results = lab_demo.attach_all(runtime, plan, nets)
            render.print_table(console, interfaces_table(results))
            pings, pings_ok = ping_table(plan, results)
            render.print_table(console, pings)
            lab_demo.check_and_delete_all(runtime, plan, nets)
            line(
                console,
                ("CHECK", "bold green"),
                " ok for all 4 attachments; ",
                ("DEL", "bold green"),
                " ok, twice each",
            )
            remaining = lab_demo.leftovers(plan, paths, runtime, results)
    except (CNIError, lab.LabError) as err:
        line(console, ("demo failed:", "bold red"), " ", str(err))
        sys.exit(1)
    if remaining:
        line(console, ("left behind:", "bold red"), " ", str(remaining))
        sys.exit(1)
    if not pings_ok:
        line(console, ("a ping across the pods got no reply", "bold red"))
        sys.exit(1)
    line(
        console,
        ("nothing left behind", "bold green"),
        ": pod namespaces, links, cache entries, IPAM reservations and scratch files removed",
    )


def _introduce(console: Console, plan: lab_demo.DemoPlan, bin_dir: str) -> None:
    cyan = "cyan"
    line(
        console,
        ("multinic demo", "bold"),
        ": pods ",
        (plan.pods[0], cyan),
        " and ",
        (plan.pods[1], cyan),
        "; primary network ",
        (plan.primary, cyan),
        f" on bridge {plan.bridge}, secondary ",
        (plan.secondary, cyan),
        f" (macvlan on {plan.data_nic}); plugins installed in {bin_dir}",
    )
