"""Cluster-wide IPAM at scale: 1000 allocations by 10 concurrent nodes on a 3-member etcd.

Contenders, in one run against the same etcd cluster (a fresh key prefix each):

* ``blocks``: multinic-ipam as shipped (per-node blocks with affinity), each
  ADD through the plugin's CNI entry in the node's process, opening its own
  store connection as an executable would;
* ``blocks, executables``: the same, but each ADD runs the installed plugin
  executable (a process per ADD: what a runtime without a node daemon pays);
* ``single key``: the Whereabouts design, measured here rather than quoted:
  the whole range is one document every node compare-and-swaps (same store,
  same allocator, same etcd), so the difference is the design alone.

Each node is a process; all start together on a signal. Reported: total
seconds for the 1000 ADDs, p50 and p99 per ADD, the CPU seconds the etcd
members and the node processes (with their executables) spent on them (start-up
before the signal not counted), and the single-key/blocks ratio;
and, first, one node alone: store requests per ADD/DEL, ms per request, and the
executable's time per ADD against its start-up (benchmarks/ipam_profile.py).

With ``--baseline SRC`` the same rounds also run ``blocks`` (and, with
executables, ``blocks-exec``) on multinic from another tree's ``src/``, so a
change is measured against what it replaces under the same load.

Run:  .venv/bin/python benchmarks/ipam_cluster.py [--nodes 10] [--per-node 100] [--rounds 3]
      [--with-executables] [--modes blocks,single-key] [--baseline SRC]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.etcd_cluster import EtcdCluster  # noqa: E402

from multinic.plugins.install import install_plugins  # noqa: E402

RANGE = "10.128.0.0/16"
DEADLINE = 300.0


def network_config(endpoints: list[str], prefix: str) -> dict[str, Any]:
    return {
        "cniVersion": "1.1.0",
        "name": "bench-net",
        "type": "macvlan",
        "ipam": {
            "type": "multinic-ipam",
            "range": RANGE,
            "store": {
                "type": "etcd",
                "endpoints": endpoints,
                "prefix": prefix,
                "deadline": DEADLINE,
            },
        },
    }


# --- the node processes ------------------------------------------------------------


def cni_env(cid: str, bin_dir: str = "/opt/cni/bin") -> dict[str, str]:
    return {
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": f"/var/run/netns/{cid}",
        "CNI_IFNAME": "net1",
        "CNI_PATH": bin_dir,
    }


def add_blocks(spec: dict[str, Any], cid: str) -> int:
    from multinic.cni import skel
    from multinic.plugins.cluster_ipam import PLUGIN

    status, out = skel.run(PLUGIN, cni_env(cid), json.dumps(spec["config"]).encode())
    return 0 if status == 0 else int(json.loads(out)["code"])


def add_executable(spec: dict[str, Any], cid: str) -> int:
    done = subprocess.run(
        [str(Path(spec["bin_dir"]) / "multinic-ipam")],
        input=json.dumps(spec["config"]).encode(),
        env=cni_env(cid, spec["bin_dir"]),
        capture_output=True,
        check=False,
    )
    return 0 if done.returncode == 0 else int(json.loads(done.stdout)["code"])


def add_single_key(spec: dict[str, Any], cid: str) -> int:
    """Whereabouts' shape: one document holds the whole range; every ADD CASes it."""
    from multinic.cni.config import Attachment
    from multinic.ipam.allocator import AddressAllocator
    from multinic.ipam.etcd_store import EtcdStore
    from multinic.ipam.ranges import RangeSet, parse_whereabouts_range
    from multinic.ipam.store import Conflict, deadline_after, retry_cas

    store_conf = spec["config"]["ipam"]["store"]
    store = EtcdStore(store_conf["endpoints"], prefix=store_conf["prefix"])
    ip_range = RangeSet((parse_whereabouts_range(RANGE),))
    deadline = deadline_after(DEADLINE)

    def attempt() -> None:
        seen = store.snapshot(["pool"], deadline=deadline)["pool"]
        doc = json.loads(seen.value) if seen.value else {"ips": {}, "last": None}
        held = [(ipaddress.ip_address(a), Attachment(*o)) for a, o in doc["ips"].items()]
        last = None if doc["last"] is None else ipaddress.ip_address(doc["last"])
        got = AddressAllocator(ip_range, held, last).allocate(Attachment(cid, "net1"))
        doc["ips"][str(got.address)] = [cid, "net1"]
        doc["last"] = str(got.address)
        changed = {"pool": json.dumps(doc).encode()}
        if store.commit({"pool": seen.revision}, changed, deadline=deadline) is None:
            raise Conflict

    try:
        retry_cas(attempt, deadline, what="single-key allocation")
    finally:
        store.close()
    return 0


ADDERS = {"blocks": add_blocks, "blocks-exec": add_executable, "single-key": add_single_key}


def worker(spec: dict[str, Any]) -> None:
    add = ADDERS[spec["mode"]]
    sys.stdin.readline()  # everyone starts together
    latencies, codes = [], []
    for n in range(spec["count"]):
        start = time.perf_counter()
        code = add(spec, f"{spec['node']}-{n}")
        latencies.append(time.perf_counter() - start)
        if code:
            codes.append(code)
    cpu = os.times()  # the process's own and its children's (the executables')
    used = cpu.user + cpu.system + cpu.children_user + cpu.children_system
    sys.stdout.write(json.dumps({"latencies": latencies, "codes": codes, "cpu": used}) + "\n")


# --- the driver --------------------------------------------------------------------------


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes ``pids`` have used so far (from /proc)."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def run_mode(
    mode: str, nodes: int, per_node: int, base: dict[str, Any], store_pids: list[int]
) -> dict[str, Any]:
    procs = []
    env = dict(os.environ)
    if base.get("baseline"):  # multinic from the baseline tree, ahead of this one
        env["PYTHONPATH"] = base["baseline"]
    for n in range(nodes):
        spec = {**base, "mode": mode.removesuffix("-baseline"), "node": f"node{n}"}
        spec["count"] = per_node
        spec["config"] = json.loads(json.dumps(base["config"]))
        spec["config"]["ipam"]["node_name"] = f"node{n}"
        procs.append(
            subprocess.Popen(
                [sys.executable, __file__, "--worker", json.dumps(spec)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                cwd=REPO,
                env=env,
            )
        )
    time.sleep(2.0)  # let every node finish importing before the start signal
    node_cpu = cpu_seconds([p.pid for p in procs])  # their start-up, not counted
    store_cpu = cpu_seconds(store_pids)
    start = time.perf_counter()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
    outputs = [proc.communicate()[0] for proc in procs]
    total = time.perf_counter() - start
    store_cpu = cpu_seconds(store_pids) - store_cpu
    results = [json.loads(out) for out in outputs]
    latencies = sorted(x for r in results for x in r["latencies"])
    return {
        "mode": mode,
        "total_s": total,
        "etcd_cpu_s": store_cpu,
        "node_cpu_s": sum(r["cpu"] for r in results) - node_cpu,
        "count": len(latencies),
        "errors": [c for r in results for c in r["codes"]],
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--per-node", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3, help="blocks vs single-key rounds")
    parser.add_argument(
        "--with-executables", action="store_true", help="one round of a process per ADD too"
    )
    parser.add_argument(
        "--baseline",
        metavar="SRC",
        help="also run blocks (and blocks-exec) with multinic from SRC (a tree's src/, e.g. "
        "`git archive REV | tar -x -C DIR`), interleaved in the same rounds",
    )
    parser.add_argument("--modes", default="blocks,single-key", help="modes of every round")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return
    # Not at the top: a baseline tree's workers import this file and may lack what it uses.
    from benchmarks import ipam_profile

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ipam-bench-") as tmp:
        bin_dir = Path(tmp) / "bin"
        install_plugins(str(bin_dir))
        bin_dirs = {"": str(bin_dir)}
        if args.baseline:
            bin_dirs["-baseline"] = install_baseline(args.baseline, Path(tmp) / "bin-baseline")
        with EtcdCluster(Path(tmp) / "etcd", size=3) as cluster:
            config = network_config(cluster.endpoints, "/bench-profile/")
            config["ipam"]["node_name"] = "profile-node"
            found = ipam_profile.profile(config, bin_dir)
            print(f"one node, etcd: {ipam_profile.format_profile(found)}", file=sys.stderr)
            modes = args.modes.split(",")
            if args.baseline:
                modes.append("blocks-baseline")
            plan = [modes if n % 2 == 0 else modes[::-1] for n in range(args.rounds)]
            if args.with_executables:
                plan.append(["blocks-exec", "blocks-exec-baseline"][: len(bin_dirs)])
            for n, round_modes in enumerate(plan):
                for mode in round_modes:
                    base = {
                        "config": network_config(cluster.endpoints, f"/bench-{mode}-{n}/"),
                        "bin_dir": bin_dirs["-baseline" if mode.endswith("-baseline") else ""],
                        "baseline": args.baseline if mode.endswith("-baseline") else None,
                    }
                    row = run_mode(mode, args.nodes, args.per_node, base, cluster.pids)
                    rows.append({**row, "round": n})
                    print(json.dumps(rows[-1]), file=sys.stderr)
    report(rows, args.nodes, args.per_node)
    print(f"One node alone (benchmarks/ipam_profile.py): {ipam_profile.format_profile(found)}")


def install_baseline(src: str, bin_dir: Path) -> str:
    """The baseline tree's plugin executables (they import multinic from ``src``)."""
    code = (
        f"from multinic.plugins.install import install_plugins; install_plugins({str(bin_dir)!r})"
    )
    env = {**os.environ, "PYTHONPATH": src}
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    return str(bin_dir)


def report(rows: list[dict[str, Any]], nodes: int, per_node: int) -> None:
    print(
        f"{nodes} nodes x {per_node} ADDs, 3-member etcd 3.6 on loopback, "
        f"{os.cpu_count()} cores; medians over rounds"
    )
    print("| contender | rounds | total s | p50 ms | p99 ms | errors | etcd CPU s | nodes' CPU s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for mode in ("blocks", "blocks-baseline", "single-key", "blocks-exec", "blocks-exec-baseline"):
        mine = [r for r in rows if r["mode"] == mode]
        if not mine:
            continue

        def med(key: str, mine: list[dict[str, Any]] = mine) -> float:
            return statistics.median(r[key] for r in mine)

        errors = sum(len(r["errors"]) for r in mine)
        print(
            f"| {mode} | {len(mine)} | {med('total_s'):.2f} | {med('p50_ms'):.1f} "
            f"| {med('p99_ms'):.1f} | {errors} | {med('etcd_cpu_s'):.2f} "
            f"| {med('node_cpu_s'):.2f} |"
        )
    by_round: dict[int, dict[str, float]] = {}
    for r in rows:
        by_round.setdefault(r["round"], {})[r["mode"]] = r["total_s"]
    for top, bottom in (
        ("single-key", "blocks"),
        ("blocks", "blocks-baseline"),
        ("blocks-exec", "blocks-exec-baseline"),
    ):
        ratios = [t[top] / t[bottom] for t in by_round.values() if top in t and bottom in t]
        if ratios:
            print(
                f"{top} / {bottom} total time, median of per-round ratios: "
                f"{statistics.median(ratios):.2f} ({', '.join(f'{x:.2f}' for x in ratios)})"
            )


if __name__ == "__main__":
    main()
