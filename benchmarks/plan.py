"""Planner speed: a fabric of 1000 clusters x 200 nodes x 4 secondary networks.

    .venv/bin/python benchmarks/plan.py [--clusters 1000] [--rounds 5] [--write FILE]

There is no reference planner (the seed's admins use spreadsheets), so the side
by side is against the obvious script: first fit over ``ipaddress``'s
``subnets()`` with an overlap test against everything taken so far. That
script is quadratic, so it runs on a twentieth of the fabric, and so does ours
next to it for the ratio.

The fabric is IPv6 for pods and services (200,000 nodes' /24s cannot fit any
IPv4 block), IPv4 for nodes (a /24 per cluster from a /14) and dual-stack for
Multus (4000 ranges: /28s fill the seed's /16 exactly).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import yaml

from multinic.plan.allocate import plan_fabric
from multinic.plan.model import IPNetwork
from multinic.plan.parse import parse_fabric
from multinic.plan.validate import validate


def fabric_document(clusters: int, nodes: int = 200, networks: int = 4) -> dict[str, Any]:
    nics = [f"eth{n}" for n in range(1, networks + 1)]
    return {
        "fabric": "bench",
        "blocks": {
            "node": "10.0.0.0/14",
            "pod": "fd00:1::/40",
            "service": "fd00:2::/96",
            "multus": ["10.100.0.0/16", "fd00:3::/56"],
        },
        "routable": ["10.0.0.0/14", "10.100.0.0/16"],
        "clusters": [
            {
                "name": f"c{i}",
                "nodes": {"expected": nodes, "max": nodes},
                "interfaces": {"management": "eth0", "data_plane": nics},
                "networks": [
                    {
                        "name": f"n{n}",
                        "master": nic,
                        "expected_addresses": 10,
                        "ipam": "cluster-wide",
                    }
                    for n, nic in enumerate(nics)
                ],
            }
            for i in range(clusters)
        ],
    }


def ours(doc: dict[str, Any]) -> int:
    plan = validate(plan_fabric(parse_fabric(doc)))
    assert plan.errors == [], plan.errors[:3]
    return sum(1 for _ in plan.allocations())


def naive(doc: dict[str, Any]) -> int:
    """First fit over ipaddress.subnets(), checking each candidate against all taken."""
    taken: dict[str, list[IPNetwork]] = {}

    def first_fit(block: IPNetwork, length: int, key: str) -> IPNetwork:
        used = taken.setdefault(key, [])
        for candidate in block.subnets(new_prefix=length):
            if not any(candidate.overlaps(t) for t in used):  # type: ignore[arg-type]
                used.append(candidate)
                return candidate
        raise RuntimeError("full")

    blocks = {
        k: [ip_network(p) for p in (v if isinstance(v, list) else [v])]
        for k, v in doc["blocks"].items()
    }
    count = 0
    for cluster in doc["clusters"]:
        count += 3
        first_fit(blocks["node"][0], 24, "node")
        first_fit(blocks["pod"][0], 56, "pod")
        first_fit(blocks["service"][0], 112, "service")
        for _ in cluster["networks"]:
            first_fit(blocks["multus"][0], 28, "m4")
            first_fit(blocks["multus"][1], 124, "m6")
            count += 2
    return count


def median_seconds(work: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--write", metavar="FILE", help="also write the fabric file (for the CLI)")
    args = parser.parse_args()

    doc = fabric_document(args.clusters)
    text = yaml.safe_dump(doc)
    if args.write:
        Path(args.write).write_text(text)
    allocations = ours(doc)
    planned = median_seconds(lambda: ours(doc), args.rounds)
    loaded = median_seconds(lambda: yaml.load(text, Loader=yaml.CSafeLoader), args.rounds)
    print(f"fabric: {args.clusters} clusters x 200 nodes x 4 networks, {allocations} allocations")
    print(f"multinic plan (parse + allocate + validate): {planned * 1000:.0f} ms median")
    print(f"YAML load of the fabric file (libyaml): {loaded * 1000:.0f} ms median")

    small = fabric_document(max(args.clusters // 20, 1))
    assert ours(small) == naive(small)
    ours_small = median_seconds(lambda: ours(small), args.rounds)
    naive_small = median_seconds(lambda: naive(small), 1)
    print(
        f"{len(small['clusters'])} clusters: multinic {ours_small * 1000:.1f} ms, "
        f"first-fit script {naive_small * 1000:.0f} ms, ratio {ours_small / naive_small:.3f}"
    )


if __name__ == "__main__":
    main()
