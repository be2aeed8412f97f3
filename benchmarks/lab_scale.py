"""Scale: ``lab up`` of N nodes x M pods (primary + secondaries), timed, sampled, torn down.

What is measured is the network part of pod start-up only: every pod's CNI
ADD through ``multinic-shim`` -> node daemon -> meta plugin -> bridge +
host-local (primary) and macvlan + cluster-wide IPAM on the SQLite store
(secondaries), 16 ADDs in flight at once as kubelets on several nodes would
send them. Reported: the phases of ``lab up`` (namespaces, daemons, pods),
per-pod ADD p50/p99/max, each daemon's resident memory (now and peak) and
open file descriptors, a sampled connectivity check (every pod to one pod of
its own node and one of the next node, on every network: the full matrix of
500 pods would be 500 x 499 x networks pings and overflow the kernel's
shared neighbour table, which is not what is measured here), and ``lab down``.

There is no anchor to run beside it on this machine (a real cluster is
needed for whole-pod start-up); docs/benchmarks.md puts the figures beside
published ones and says what they cover.

Run as root:  .venv/bin/python benchmarks/lab_scale.py [--nodes 10 --pods 50
              --secondaries 1 --overlay host-gw|vxlan] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from multinic.lab import netns as nsutil  # noqa: E402
from multinic.lab import run  # noqa: E402
from multinic.lab.probe import ping_many  # noqa: E402
from multinic.lab.topology import LabLayout  # noqa: E402


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def daemon_figures(pid: int) -> dict[str, int]:
    """Resident memory (kB, now and peak) and open file descriptors of one daemon."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    fields["fds"] = len(list(Path(f"/proc/{pid}/fd").iterdir()))
    return fields


def sample(layout: LabLayout, known: dict[str, dict[str, str]]) -> list[run.Probe]:
    """Per source and network: the next pod on its node and the same-numbered pod of the next
    node (built directly: the full list of 500 x 499 x networks probes is not)."""
    placed = layout.all_pods()
    per_node = len(layout.nodes[0].pods)
    chosen = []
    for i, (node, source) in enumerate(placed):
        same_node = i - i % per_node + (i + 1) % per_node
        for j in dict.fromkeys((same_node, (i + per_node) % len(placed))):
            target_node, target = placed[j]
            if j == i:
                continue
            for network, address in known.get(target, {}).items():
                chosen.append(
                    run.Probe(network, source, node.name, target, target_node.name, address)
                )
    return chosen


def sampled_check(name: str) -> list[run.Probe]:
    """The sample's probes, each with its outcome."""
    _, layout, paths = run.require(name)
    todo = sample(layout, run.addresses(layout, paths))
    by_source: dict[str, list[run.Probe]] = {}
    for probe in todo:
        by_source.setdefault(probe.source, []).append(probe)
    for source, mine in by_source.items():
        path = str(nsutil.netns_path(layout.pod_netns(source)))
        for probe, ok in zip(mine, ping_many(path, [p.address for p in mine]), strict=True):
            probe.ok = ok
    return todo


def measure(args: argparse.Namespace) -> dict[str, Any]:
    spec = run.LabSpec(
        name=args.name,
        nodes=args.nodes,
        pods=args.pods,
        secondaries=args.secondaries,
        overlay=args.overlay,
    )
    load_before = os.getloadavg()[0]
    began = time.monotonic()
    try:
        report = run.up(spec)
        up_seconds = time.monotonic() - began
        load_after = os.getloadavg()[0]
        state, _, _ = run.require(args.name)
        daemons = {n: daemon_figures(pid) for n, pid in state.data["daemons"].items()}
        probes = sampled_check(args.name)
    finally:
        mark = time.monotonic()
        problems = run.down(args.name)
        down_seconds = time.monotonic() - mark
    attach = list(report.attach.values())
    left = [p.name for p in nsutil.NETNS_DIR.iterdir() if p.name.startswith(f"{args.name}-")]
    return {
        "nodes": args.nodes,
        "podsPerNode": args.pods,
        "pods": len(attach),
        "secondaries": args.secondaries,
        "overlay": args.overlay,
        # The machine is shared: the 1-minute load average before and after `up` says how much.
        "loadAverage": [round(load_before, 1), round(load_after, 1)],
        "upSeconds": round(up_seconds, 2),
        "phases": {k: round(v, 2) for k, v in report.seconds.items()},
        "attachSeconds": {
            "p50": round(statistics.median(attach), 3),
            "p99": round(percentile(attach, 0.99), 3),
            "max": round(max(attach), 3),
        },
        "daemonRssMiB": {
            "max": round(max(d["VmRSS"] for d in daemons.values()) / 1024, 1),
            "mean": round(statistics.mean(d["VmRSS"] for d in daemons.values()) / 1024, 1),
            "peakMax": round(max(d["VmHWM"] for d in daemons.values()) / 1024, 1),
        },
        "daemonFdsMax": max(d["fds"] for d in daemons.values()),
        "sampledProbes": {
            "answered": sum(p.ok for p in probes),
            "sent": len(probes),
            "failed": [
                f"{p.network}: {p.source} -> {p.target} {p.address}" for p in probes if not p.ok
            ],
        },
        "hostChanges": report.host_changes,
        "downSeconds": round(down_seconds, 2),
        "downProblems": problems,
        "left": left,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="h13scale")
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--pods", type=int, default=50)
    parser.add_argument("--secondaries", type=int, default=1)
    parser.add_argument("--overlay", choices=["host-gw", "vxlan"], default="host-gw")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = measure(args)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    a, r = result["attachSeconds"], result["daemonRssMiB"]
    print(
        f"lab up {result['nodes']} nodes x {result['podsPerNode']} pods "
        f"({result['pods']} pods, primary + {result['secondaries']} secondary, "
        f"{result['overlay']}): {result['upSeconds']} s, load average "
        f"{result['loadAverage'][0]} -> {result['loadAverage'][1]} "
        f"(phases {result['phases']})\n"
        f"per-pod ADD: p50 {a['p50']} s, p99 {a['p99']} s, max {a['max']} s\n"
        f"daemon RSS per node: max {r['max']} MiB, mean {r['mean']} MiB, "
        f"peak {r['peakMax']} MiB; open fds max {result['daemonFdsMax']}\n"
        f"sampled probes answered: {result['sampledProbes']['answered']}/"
        f"{result['sampledProbes']['sent']} {result['sampledProbes']['failed'][:10]}\n"
        f"raised for the lab: {result['hostChanges']}\n"
        f"lab down: {result['downSeconds']} s, problems {result['downProblems']}, "
        f"left {result['left']}"
    )
    if result["left"] or result["sampledProbes"]["answered"] != result["sampledProbes"]["sent"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
