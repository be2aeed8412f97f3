"""Cluster-wide IPAM on the Kubernetes API: multinic-ipam vs real Whereabouts, side by side.

One control plane (tests/support/kube.py: etcd 3.6, kube-apiserver 1.37) on
loopback; the same 1000 ADDs by 10 node processes that start together, each ADD
an executable run as a runtime runs it (a process per ADD, stdin config, CNI_*
environment), against the same API server:

* ``multinic``: the installed ``multinic-ipam`` with ``store: {type: kubernetes}``
  (its objects under a scope of their own);
* ``multinic-inproc``: the same plugin object called in the node's process, as the
  node daemon runs it (no interpreter start per ADD);
* ``whereabouts``: Whereabouts v0.9.2 (``make anchors``) in its default mode:
  one IPPool per range, a cluster-wide leader-election lease per ADD;
* ``whereabouts-nodeslice``: its node-slice ("fast IPAM") mode, ``node_slice_size``
  with a NodeSlicePool per network. Whereabouts' node-slice controller is not
  built here, so this script writes the pool and its per-node slices as that
  controller would (one /24 of the /16 per node), and each node process sets
  NODENAME.

Reported per contender: total seconds, ADDs done, p50/p99 per ADD, errors (by
code or message), duplicate addresses. A contender still running at ``--cap``
seconds is stopped and reported with what it finished (marked "capped").
Ratios multinic/Whereabouts are medians of per-round ratios (``--rounds``: the
order of contenders reverses every round, so load drift hits both alike; a
capped run gives no ratio). Also measured first, one node alone: API requests
per ADD/DEL, ms per request, and the executable's ADD against its start-up
(benchmarks/ipam_profile.py).

Run:  .venv/bin/python benchmarks/ipam_kube.py [--nodes 10] [--per-node 100] [--cap 900]
      [--rounds 1] [--only multinic,whereabouts,...]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks import ipam_profile  # noqa: E402
from benchmarks.anchors import (  # noqa: E402
    WHEREABOUTS_NAMESPACE,
    Whereabouts,
    cni_args,
)
from tests.support.kube import KubeCluster  # noqa: E402

from multinic.plugins.install import install_plugins  # noqa: E402

RANGE = "10.128.0.0/16"
CONTENDERS = ("multinic", "multinic-inproc", "whereabouts", "whereabouts-nodeslice")


# --- the node processes ---------------------------------------------------------------


def one_add(spec: dict[str, Any], cid: str) -> tuple[float, str, list[str]]:
    """(seconds, error or "", addresses) of one ADD."""
    env = {
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": f"/var/run/netns/{cid}",
        "CNI_IFNAME": "net1",
        "CNI_PATH": str(Path(spec["binary"]).parent),
        "CNI_ARGS": cni_args(K8S_POD_NAMESPACE="bench", K8S_POD_NAME=f"pod-{cid}"),
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        **spec.get("env", {}),
    }
    stdin = json.dumps(spec["config"]).encode()
    start = time.perf_counter()
    if spec["inproc"]:
        from multinic.cni import skel
        from multinic.plugins.cluster_ipam import PLUGIN

        status, out = skel.run(PLUGIN, env, stdin)
    else:
        done = subprocess.run(
            [spec["binary"]], input=stdin, env=env, capture_output=True, check=False, timeout=600
        )
        status, out = done.returncode, done.stdout
    seconds = time.perf_counter() - start
    try:
        answer = json.loads(out) if out.strip() else {}
    except ValueError:
        answer = {"code": "?", "msg": out[:200].decode(errors="replace")}
    if status != 0:
        return seconds, f"code {answer.get('code')}: {answer.get('msg', '')}"[:160], []
    return seconds, "", [ip["address"].split("/")[0] for ip in answer.get("ips", [])]


def worker(spec: dict[str, Any]) -> None:
    sys.stdin.readline()  # everyone starts together
    for n in range(spec["count"]):
        seconds, error, ips = one_add(spec, f"{spec['node']}-{n}")
        line = {"seconds": seconds, "error": error, "ips": ips}
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()


# --- the driver -----------------------------------------------------------------------


def run_contender(name: str, specs: list[dict[str, Any]], cap: float, work: Path) -> dict[str, Any]:
    procs, outs = [], []
    for spec in specs:
        out = work / f"{name}-{spec['node']}.jsonl"
        outs.append(out)
        procs.append(
            subprocess.Popen(
                [sys.executable, __file__, "--worker", json.dumps(spec)],
                stdin=subprocess.PIPE,
                stdout=out.open("wb"),
                cwd=REPO,
            )
        )
    time.sleep(3.0)  # let every node finish importing before the start signal
    start = time.perf_counter()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
    capped = False
    while any(p.poll() is None for p in procs):
        if time.perf_counter() - start > cap:
            capped = True
            for p in procs:
                p.kill()
            break
        time.sleep(0.2)
    for p in procs:
        p.wait()
    total = time.perf_counter() - start
    lines = [json.loads(x) for out in outs for x in out.read_text().splitlines() if x.strip()]
    latencies = sorted(x["seconds"] for x in lines)
    addresses = [a for x in lines for a in x["ips"]]
    errors = [x["error"] for x in lines if x["error"]]
    return {
        "contender": name,
        "total_s": total,
        "done": len(lines),
        "wanted": sum(s["count"] for s in specs),
        "capped": capped,
        "p50_ms": 1000 * statistics.median(latencies) if latencies else None,
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))] if latencies else None,
        "errors": len(errors),
        "error_kinds": sorted(set(errors))[:5],
        "duplicates": len(addresses) - len(set(addresses)),
    }


def multinic_specs(
    cluster: KubeCluster, bin_dir: Path, nodes: int, per_node: int, inproc: bool
) -> list[dict[str, Any]]:
    scope = f"bench-{secrets.token_hex(3)}"
    specs = []
    for n in range(nodes):
        config = {
            "cniVersion": "1.0.0",
            "name": "bench-net",
            "type": "bridge",
            "ipam": {
                "type": "multinic-ipam",
                "range": RANGE,
                "node_name": f"node{n}",
                "store": {
                    "type": "kubernetes",
                    "kubeconfig": str(cluster.kubeconfig),
                    "scope": scope,
                    "deadline": 120,
                },
            },
        }
        specs.append(
            {
                "node": f"node{n}",
                "count": per_node,
                "config": config,
                "binary": str(bin_dir / "multinic-ipam"),
                "inproc": inproc,
            }
        )
    return specs


def whereabouts_specs(
    cluster: KubeCluster, wb: Whereabouts, nodes: int, per_node: int, node_slice: bool
) -> list[dict[str, Any]]:
    name = f"wb-{'slice' if node_slice else 'default'}-{secrets.token_hex(2)}"
    config = wb.config(RANGE, name=name)
    if node_slice:
        config["ipam"]["node_slice_size"] = "/24"
        write_node_slices(cluster, name, nodes)
    return [
        {
            "node": f"node{n}",
            "count": per_node,
            "config": config,
            "binary": str(wb.binary),
            "inproc": False,
            "env": {"NODENAME": f"node{n}"} if node_slice else {},
        }
        for n in range(nodes)
    ]


def write_node_slices(cluster: KubeCluster, name: str, nodes: int) -> None:
    """The NodeSlicePool Whereabouts' node-slice controller would write: a /24 per node."""
    base = RANGE.split(".")
    allocations = [
        {"nodeName": f"node{n}", "sliceRange": f"{base[0]}.{base[1]}.{n}.0/24"}
        for n in range(nodes)
    ]
    cluster.apply(
        {
            "apiVersion": "whereabouts.cni.cncf.io/v1alpha1",
            "kind": "NodeSlicePool",
            "metadata": {"name": name, "namespace": WHEREABOUTS_NAMESPACE},
            "spec": {"range": RANGE, "sliceSize": "/24"},
            "status": {"allocations": allocations},
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--per-node", type=int, default=100)
    parser.add_argument("--cap", type=float, default=900.0, help="seconds per contender")
    parser.add_argument("--rounds", type=int, default=1, help="the order reverses each round")
    parser.add_argument("--only", default=",".join(CONTENDERS))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return
    chosen = [c for c in args.only.split(",") if c]
    rows = []
    with tempfile.TemporaryDirectory(prefix="ipam-kube-bench-") as tmp:
        work = Path(tmp)
        bin_dir = work / "bin"
        install_plugins(str(bin_dir))
        with KubeCluster(work / "kube") as cluster, Whereabouts(cluster, work) as wb:
            wb.install_crds()
            print(f"control plane up in {cluster.started_in:.1f} s", file=sys.stderr)
            config = multinic_specs(cluster, bin_dir, 1, 0, True)[0]["config"]
            config["ipam"]["node_name"] = "profile-node"
            found = ipam_profile.profile(config, bin_dir)
            print(f"one node: {ipam_profile.format_profile(found)}", file=sys.stderr)
            for n in range(args.rounds):
                for name in chosen if n % 2 == 0 else chosen[::-1]:
                    specs = contender_specs(name, cluster, wb, bin_dir, args)
                    rows.append({**run_contender(name, specs, args.cap, work), "round": n})
                    print(json.dumps(rows[-1]), file=sys.stderr)
    report(rows, found, args)


def contender_specs(
    name: str, cluster: KubeCluster, wb: Whereabouts, bin_dir: Path, args: Any
) -> list[dict[str, Any]]:
    if name.startswith("multinic"):
        inproc = name.endswith("inproc")
        return multinic_specs(cluster, bin_dir, args.nodes, args.per_node, inproc)
    node_slice = name.endswith("nodeslice")
    return whereabouts_specs(cluster, wb, args.nodes, args.per_node, node_slice)


def report(rows: list[dict[str, Any]], found: dict[str, Any], args: Any) -> None:
    print(
        f"{args.nodes} nodes x {args.per_node} ADDs, one kube-apiserver 1.37 + etcd 3.6 on "
        f"loopback, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end"
    )
    print("| round | contender | total s | ADDs done | p50 ms | p99 ms | errors | duplicates |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        total = f"{r['total_s']:.1f}" + (" (capped)" if r["capped"] else "")
        p50 = "-" if r["p50_ms"] is None else f"{r['p50_ms']:.0f}"
        p99 = "-" if r["p99_ms"] is None else f"{r['p99_ms']:.0f}"
        print(
            f"| {r['round']} | {r['contender']} | {total} | {r['done']}/{r['wanted']} | {p50} "
            f"| {p99} | {r['errors']} | {r['duplicates']} |"
        )
    for r in rows:
        if r["error_kinds"]:
            print(f"{r['contender']} errors, e.g.: {r['error_kinds']}")
    for ours in ("multinic", "multinic-inproc"):
        for theirs in ("whereabouts", "whereabouts-nodeslice"):
            ratios = round_ratios(rows, ours, theirs)
            if ratios:
                print(
                    f"{ours} / {theirs} total time, median of per-round ratios: "
                    f"{statistics.median(ratios):.3f} ({', '.join(f'{x:.3f}' for x in ratios)})"
                )
    print(f"One node alone (benchmarks/ipam_profile.py): {ipam_profile.format_profile(found)}")


def round_ratios(rows: list[dict[str, Any]], ours: str, theirs: str) -> list[float]:
    """ours/theirs total per round, for rounds where both finished every ADD."""
    by_round: dict[int, dict[str, dict[str, Any]]] = {}
    for r in rows:
        by_round.setdefault(r["round"], {})[r["contender"]] = r
    return [
        got[ours]["total_s"] / got[theirs]["total_s"]
        for got in by_round.values()
        if ours in got and theirs in got and not got[ours]["capped"] and not got[theirs]["capped"]
    ]


if __name__ == "__main__":
    main()
