"""Side by side: multinic's CNI runtime vs the reference runtime library (libcni).

Both drive the same reference plugins (bridge + host-local, then tuning) through
an ADD+DEL cycle of one pod namespace, alternating round by round in one run so
that machine noise hits both alike. Reported: medians and the median ratio
multinic / libcni, for

* ``multinic cni`` as a process per verb (what cnitool-style callers pay), and
* multinic's ``Runtime`` in-process (what a node daemon pays),

plus the start-up cost of a plugin executable's import path (``multinic.cni.skel``).

Run as root:  .venv/bin/python benchmarks/cni_runtime.py [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support import third_party  # noqa: E402
from tests.support.conflists import bridge_conflist  # noqa: E402
from tests.support.refruntime import refruntime, refruntime_binary  # noqa: E402

from multinic.cni.conffiles import load_network  # noqa: E402
from multinic.cni.runtime import Runtime, RuntimeConf  # noqa: E402
from multinic.lab import netns as lab  # noqa: E402

PLUGINS = third_party.reference_plugins()
MULTINIC = Path(sys.executable).parent / "multinic"
NETWORK = "bench-net"


def write_conflist(conf_dir: Path, data_dir: Path, bridge: str) -> None:
    tuning = {"type": "tuning", "mtu": 1450}
    conflist = bridge_conflist(NETWORK, bridge, data_dir, "198.18.40.0/24", then=(tuning,))
    conf_dir.mkdir(parents=True)
    (conf_dir / "10-bench.conflist").write_text(json.dumps(conflist))


def timed(action: Callable[[], None]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def run_checked(command: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {done.stderr}")


def import_cost(rounds: int) -> tuple[float, float]:
    """Median wall time of `python -c pass` and of importing the plugin entry."""

    def median_of(code: str) -> float:
        return statistics.median(
            timed(lambda: run_checked([sys.executable, "-c", code], dict(os.environ)))
            for _ in range(rounds)
        )

    return median_of("pass"), median_of("import multinic.cni.skel")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    rounds = parser.parse_args().rounds
    scratch = Path(tempfile.mkdtemp(prefix="multinic-bench-"))
    bridge, pod = f"mnbench{os.getpid() % 10000}", f"mn-bench-{os.getpid()}"
    try:
        report(scratch, bridge, pod, rounds)
    finally:
        lab.delete_netns(pod)
        lab.delete_link(bridge)
        shutil.rmtree(scratch, ignore_errors=True)


def report(scratch: Path, bridge: str, pod: str, rounds: int) -> None:
    conf_dir, cache_dir = scratch / "net.d", scratch / "cache"
    write_conflist(conf_dir, scratch / "ipam", bridge)
    binary = refruntime_binary()
    netns = str(lab.create_netns(pod))
    rt = RuntimeConf("bench-pod", netns, "eth0")
    env = {
        **os.environ,
        "NETCONFPATH": str(conf_dir),
        "CNI_PATH": str(PLUGINS),
        "CNI_CACHE_DIR": str(cache_dir),
        "CNI_CONTAINERID": rt.container_id,
        "CNI_IFNAME": rt.ifname,
    }
    runtime = Runtime([PLUGINS], cache_dir=cache_dir)
    net = load_network(conf_dir, NETWORK)

    def libcni_cycle() -> None:
        for verb in ("add", "del"):
            if refruntime(binary, verb, NETWORK, netns, env).returncode != 0:
                raise SystemExit(f"libcni {verb} failed")

    def cli_cycle() -> None:
        for verb in ("add", "del"):
            run_checked([str(MULTINIC), "cni", verb, NETWORK, netns], env)

    def in_process_cycle() -> None:
        runtime.add(net, rt)
        runtime.delete(net, rt)

    samples: dict[str, list[float]] = {"libcni": [], "cli": [], "in-process": []}
    cycles = {"libcni": libcni_cycle, "cli": cli_cycle, "in-process": in_process_cycle}
    for _ in range(2):  # warm page cache and the bridge
        for cycle in cycles.values():
            cycle()
    for _ in range(rounds):
        for name, cycle in cycles.items():
            samples[name].append(timed(cycle))

    base = statistics.median(samples["libcni"])
    print(f"ADD+DEL of bridge+host-local -> tuning, {rounds} alternating rounds")
    print(f"{'runtime':<28}{'median ms':>10}{'ratio':>8}")
    print(f"{'libcni (refruntime)':<28}{base * 1000:>10.1f}{1.0:>8.2f}")
    for name, label in (("cli", "multinic cni (process)"), ("in-process", "multinic Runtime")):
        ratios = [
            ours / theirs for ours, theirs in zip(samples[name], samples["libcni"], strict=True)
        ]
        median = statistics.median(samples[name])
        print(f"{label:<28}{median * 1000:>10.1f}{statistics.median(ratios):>8.2f}")
    bare, skel = import_cost(rounds)
    print(
        f"python -c pass: {bare * 1000:.1f} ms; import multinic.cni.skel: {skel * 1000:.1f} ms "
        f"(+{(skel - bare) * 1000:.1f} ms)"
    )


if __name__ == "__main__":
    main()
