"""Side by side: multinic.dataplane vs pyroute2 for what a plugin does to a pod.

Per round, each contender gets two fresh namespaces ("node" and "pod") and times:
opening both (one netlink socket in each), a veth with its peer created in the
pod, bringing it up with an IPv4 and an IPv6 address, a route, and deleting the
veth. Rounds alternate the contenders. Import costs are measured in fresh
interpreters (median over runs, minus a bare ``python -c pass``).

Run as root:  .venv/bin/python benchmarks/dataplane_ops.py [--rounds N]
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from multinic import dataplane as dp  # noqa: E402
from multinic.lab import netns as lab  # noqa: E402

STEPS = ("open", "veth", "up+addrs", "route", "delete")


def ours(node_path: str, pod_path: str) -> dict[str, float]:
    t: dict[str, float] = {}
    start = time.perf_counter()
    node, pod = dp.open_netns(node_path), dp.open_netns(pod_path)
    node.rtnl, pod.rtnl  # noqa: B018 - the sockets are opened on first use
    t["open"] = time.perf_counter()
    _, eth0 = dp.create_veth(node, "veth-h", "eth0", peer_ns=pod, mtu=1450)
    t["veth"] = time.perf_counter()
    dp.set_up(pod, eth0)
    dp.add_address(pod, eth0, ipaddress.IPv4Interface("10.1.0.5/24"))
    dp.add_address(pod, eth0, ipaddress.IPv6Interface("fd00:1::5/64"), nodad=True)
    t["up+addrs"] = time.perf_counter()
    dp.add_route(pod, ipaddress.ip_network("10.2.0.0/24"), gateway=ipaddress.ip_address("10.1.0.1"))
    t["route"] = time.perf_counter()
    dp.delete_link(node, "veth-h")
    t["delete"] = time.perf_counter()
    node.close()
    pod.close()
    return _durations(start, t)


def pyroute2(node_path: str, pod_path: str) -> dict[str, float]:
    from pyroute2 import IPRoute

    t: dict[str, float] = {}
    start = time.perf_counter()
    node, pod = IPRoute(netns=node_path), IPRoute(netns=pod_path)
    t["open"] = time.perf_counter()
    fd = os.open(pod_path, os.O_RDONLY)
    node.link("add", ifname="veth-h", kind="veth", mtu=1450,
              peer={"ifname": "eth0", "net_ns_fd": fd, "mtu": 1450})  # fmt: skip
    (index,) = pod.link_lookup(ifname="eth0")
    t["veth"] = time.perf_counter()
    pod.link("set", index=index, state="up")
    pod.addr("add", index=index, address="10.1.0.5", prefixlen=24)
    pod.addr("add", index=index, address="fd00:1::5", prefixlen=64, flags=0x02)
    t["up+addrs"] = time.perf_counter()
    pod.route("add", dst="10.2.0.0/24", gateway="10.1.0.1")
    t["route"] = time.perf_counter()
    node.link("del", index=node.link_lookup(ifname="veth-h")[0])
    t["delete"] = time.perf_counter()
    os.close(fd)
    node.close()
    pod.close()
    return _durations(start, t)


def _durations(start: float, marks: dict[str, float]) -> dict[str, float]:
    out, last = {}, start
    for step in STEPS:
        out[step] = (marks[step] - last) * 1000
        last = marks[step]
    out["total"] = (last - start) * 1000
    return out


def one_round(contender: Callable[[str, str], dict[str, float]], tag: str) -> dict[str, float]:
    node, pod = f"mnt-bench-{tag}-node", f"mnt-bench-{tag}-pod"
    with lab.scratch_netns(node) as node_path, lab.scratch_netns(pod) as pod_path:
        return contender(str(node_path), str(pod_path))


def import_costs(statements: dict[str, str], runs: int) -> dict[str, float]:
    """Median over runs of (statement - bare interpreter), each run interleaving all of them."""

    def once(code: str) -> float:
        begin = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        return time.perf_counter() - begin

    deltas: dict[str, list[float]] = {label: [] for label in statements}
    for _ in range(runs):
        bare = once("pass")
        for label, code in statements.items():
            deltas[label].append((once(code) - bare) * 1000)
    return {label: statistics.median(values) for label, values in deltas.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    warm_node, warm_pod = _warm_up()
    pyroute2(warm_node, warm_pod)  # pyroute2's import is measured below, not in round 1
    results: dict[str, list[dict[str, float]]] = {"multinic": [], "pyroute2": []}
    for i in range(args.rounds):
        results["multinic"].append(one_round(ours, f"a{i}"))
        results["pyroute2"].append(one_round(pyroute2, f"b{i}"))
    print(f"per-operation medians over {args.rounds} rounds (ms)")
    print(f"{'step':<10}{'multinic':>10}{'pyroute2':>10}{'ratio':>8}")
    for step in (*STEPS, "total"):
        a = statistics.median(r[step] for r in results["multinic"])
        b = statistics.median(r[step] for r in results["pyroute2"])
        print(f"{step:<10}{a:>10.2f}{b:>10.2f}{a / b:>8.2f}")
    runs = max(10, args.rounds)
    print(f"start-up cost over a bare interpreter, median of {runs} paired runs (ms)")
    entry = "import multinic.cni.skel, multinic.cni.types"
    enter = f"{entry}, multinic.dataplane as d; d.open_netns({warm_pod!r}).rtnl"
    costs = import_costs(
        {
            "plugin entry (skel, types)": entry,
            "  + multinic.dataplane": f"{entry}, multinic.dataplane",
            "  + dataplane, netns socket": enter,
            "import multinic.dataplane": "import multinic.dataplane",
            "import pyroute2": "import pyroute2",
        },
        runs,
    )
    for label, ms in costs.items():
        print(f"  {label:<28}{ms:>8.1f}")


def _warm_up() -> tuple[str, str]:
    for name in ("mnt-bench-warm-node", "mnt-bench-warm-pod"):
        lab.delete_netns(name)
        lab.create_netns(name)
    return str(lab.netns_path("mnt-bench-warm-node")), str(lab.netns_path("mnt-bench-warm-pod"))


if __name__ == "__main__":
    try:
        main()
    finally:
        for leftover in ("mnt-bench-warm-node", "mnt-bench-warm-pod"):
            lab.delete_netns(leftover)
