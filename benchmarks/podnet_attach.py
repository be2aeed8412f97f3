"""Pods on one node, two ways: the gateway bridge (podnet's choice) vs a routed veth per pod.

*bridge*: ``multinic-bridge`` as the primary network's conflist has it
(``isGateway``, ``isDefaultGateway``, every pod a port of one bridge holding
the node's gateway address). *routed*: ``multinic-ptp``, a veth per pod whose
host end holds the gateway as a /32 and a /32 route to the pod (what
Calico-style routed pods do). Both with ``multinic-host-local`` on a /24, both
called in-process as the node daemon calls them, from inside a scratch "node"
namespace (the benchmark re-runs itself there), so nothing touches the host.

Per round and way: N ADDs one after the other (each timed), then between the
first two pods: TCP round trips of one byte (median RTT) and one TCP stream
(throughput), then N DELs (each timed). Rounds alternate the ways so machine
noise hits both alike. All traffic stays between the benchmark's own
namespaces. Reported: medians over the rounds, and the median of the
per-round routed / bridge ratios.

Run as root:  .venv/bin/python benchmarks/podnet_attach.py [--pods 50 --rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from multinic import dataplane as dp  # noqa: E402
from multinic.cni.skel import run as run_plugin  # noqa: E402
from multinic.lab import netns as lab  # noqa: E402
from multinic.plugins.registry import load_plugin  # noqa: E402

WAYS = {
    "bridge": ("multinic-bridge", "10.244.1.0/24"),
    "routed": ("multinic-ptp", "10.244.2.0/24"),
}
ROUND_TRIPS = 2000
STREAM_BYTES = 256 << 20
PORT = 5201


def conf(way: str, data_dir: Path) -> bytes:
    plugin_type, subnet = WAYS[way]
    ipam = {
        "type": "multinic-host-local",
        "ranges": [[{"subnet": subnet}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": str(data_dir),
    }
    obj: dict[str, Any] = {"cniVersion": "1.1.0", "name": f"bench-{way}", "type": plugin_type}
    if way == "bridge":
        obj.update(bridge="mnbench0", isGateway=True, isDefaultGateway=True)
        ipam.pop("routes")
    return json.dumps({**obj, "ipam": ipam}).encode()


def call(way: str, command: str, pod: str, stdin: bytes) -> tuple[float, dict[str, Any]]:
    env = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": f"bench-{pod}",
        "CNI_NETNS": str(lab.netns_path(pod)),
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/nonexistent",
    }
    began = time.perf_counter()
    status, out = run_plugin(load_plugin(WAYS[way][0]), env, stdin)
    seconds = time.perf_counter() - began
    if status != 0:
        raise SystemExit(f"{way} {command} of {pod} failed: {out!r}")
    return seconds, (json.loads(out) if out.strip() else {})


def pod_socket(pod: str) -> socket.socket:
    with dp.open_netns(str(lab.netns_path(pod))) as ns:
        return dp.run_in_netns(ns, lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))


def connected_pair(client_pod: str, server_pod: str, address: str) -> tuple[socket.socket, ...]:
    server = pod_socket(server_pod)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((address, PORT))
    server.listen(1)
    client = pod_socket(client_pod)
    client.connect((address, PORT))
    accepted, _ = server.accept()
    server.close()
    for s in (client, accepted):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return client, accepted


def round_trip_us(client: socket.socket, server: socket.socket) -> float:
    def echo() -> None:
        for _ in range(ROUND_TRIPS):
            server.sendall(server.recv(1))

    thread = threading.Thread(target=echo)
    thread.start()
    samples = []
    for _ in range(ROUND_TRIPS):
        began = time.perf_counter()
        client.sendall(b"x")
        client.recv(1)
        samples.append(time.perf_counter() - began)
    thread.join()
    return statistics.median(samples) * 1e6


def stream_gbit(client: socket.socket, server: socket.socket) -> float:
    def drain() -> None:
        left = STREAM_BYTES
        while left > 0:
            left -= len(server.recv(1 << 20))

    thread = threading.Thread(target=drain)
    chunk = b"\0" * (1 << 20)
    began = time.perf_counter()
    thread.start()
    for _ in range(STREAM_BYTES >> 20):
        client.sendall(chunk)
    thread.join()
    return STREAM_BYTES * 8 / (time.perf_counter() - began) / 1e9


def one_round(way: str, pods: list[str], scratch: Path) -> dict[str, Any]:
    stdin = conf(way, scratch / way)
    adds, results = [], []
    for pod in pods:
        seconds, result = call(way, "ADD", pod, stdin)
        adds.append(seconds)
        results.append(result)
    target = results[1]["ips"][0]["address"].split("/")[0]
    client, server = connected_pair(pods[0], pods[1], target)
    with client, server:
        rtt, gbit = round_trip_us(client, server), stream_gbit(client, server)
    dels = []
    for pod, result in zip(pods, results, strict=True):
        prev = json.dumps({**json.loads(stdin), "prevResult": result}).encode()
        dels.append(call(way, "DEL", pod, prev)[0])
    return {"add": adds, "del": dels, "rttUs": rtt, "gbit": gbit}


def worker(pods: list[str], rounds: int) -> None:
    """Inside the node namespace: every round, each way; JSON on stdout."""
    scratch = Path(tempfile.mkdtemp(prefix="multinic-podnet-bench-"))
    out: dict[str, list[dict[str, Any]]] = {way: [] for way in WAYS}
    try:
        for number in range(rounds):
            order = list(WAYS) if number % 2 == 0 else list(reversed(WAYS))
            for way in order:
                out[way].append(one_round(way, pods, scratch))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps(out))


KEYS = ("addMs", "delMs", "rttUs", "gbit")


def per_round(r: dict[str, Any]) -> dict[str, float]:
    return {
        "addMs": statistics.median(r["add"]) * 1000,
        "delMs": statistics.median(r["del"]) * 1000,
        "rttUs": r["rttUs"],
        "gbit": r["gbit"],
    }


def summary(
    raw: dict[str, list[dict[str, Any]]],
) -> tuple[dict[str, dict[str, float]], list[dict[str, float]]]:
    """Medians per way over the rounds; the per-round routed/bridge ratios and their median
    (the ways of one round ran back to back, so they met the same machine)."""
    rounds = {way: [per_round(r) for r in found] for way, found in raw.items()}
    figures = {
        way: {k: statistics.median(r[k] for r in found) for k in KEYS}
        for way, found in rounds.items()
    }
    ratios = [
        {k: r[k] / b[k] for k in KEYS}
        for b, r in zip(rounds["bridge"], rounds["routed"], strict=True)
    ]
    figures["ratio"] = {k: statistics.median(x[k] for x in ratios) for k in KEYS}
    return figures, ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--worker", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        worker(args.worker, args.rounds)
        return
    tag = os.getpid() % 100000
    node, pods = f"mnpb-node-{tag}", [f"mnpb-pod-{tag}-{i}" for i in range(max(2, args.pods))]
    try:
        lab.create_netns(node)
        for pod in pods:
            lab.create_netns(pod)
        command = ["ip", "netns", "exec", node, sys.executable, __file__]
        done = subprocess.run(
            [*command, "--rounds", str(args.rounds), "--worker", *pods],
            capture_output=True,
            check=True,
        )
    finally:
        for name in [*pods, node]:
            lab.delete_netns(name)
    figures, ratios = summary(json.loads(done.stdout))
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    b, r, ratio = figures["bridge"], figures["routed"], figures["ratio"]
    print(f"{len(pods)} pods on one node, {args.rounds} alternating rounds, in-process plugins")
    print(f"{'':<26}{'bridge':>10}{'routed':>10}{'routed/bridge':>15}")
    for key, label in (
        ("addMs", "ADD median (ms)"),
        ("delMs", "DEL median (ms)"),
        ("rttUs", "TCP 1-byte RTT (us)"),
        ("gbit", "TCP stream (Gbit/s)"),
    ):
        print(f"{label:<26}{b[key]:>10.2f}{r[key]:>10.2f}{ratio[key]:>15.2f}")
    for key in KEYS:
        print(f"routed/bridge {key} per round: " + " ".join(f"{x[key]:.2f}" for x in ratios))


if __name__ == "__main__":
    main()
