"""Side by side: ``multinic-tuning`` and ``multinic-sbr`` vs the reference ``tuning`` and ``sbr``.

Each round runs one ADD and one DEL per contender on the same pod interface (a
veth end in a namespace made for the run, addressed 198.18.101.2/24 with a
gateway), executing the plugin directly as a runtime would: config with a
prevResult on stdin, CNI_* in the environment. Contenders alternate in one run
so machine noise hits all alike. Between cycles (untimed) the interface is set
down and up, which puts its connected route back in the main table that sbr
emptied. Reported: median ms per ADD+DEL, median of per-round ratios.

Run as root:  .venv/bin/python benchmarks/plugin_meta.py [--rounds N]
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
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support import third_party  # noqa: E402

from multinic.cni import skel  # noqa: E402
from multinic.lab import netns as lab  # noqa: E402
from multinic.plugins import sbr, tuning  # noqa: E402
from multinic.plugins.install import install_plugins  # noqa: E402

REFERENCE = third_party.reference_plugins()
TUNING = {
    "sysctl": {"net.ipv4.conf.IFNAME.arp_notify": "1", "net.core.somaxconn": "1024"},
    "mtu": 1400,
    "mac": "02:00:00:96:01:01",
    "promisc": True,
}


IN_PROCESS = {"multinic-tuning": tuning.PLUGIN, "multinic-sbr": sbr.PLUGIN}


def environment(command: str, netns: str) -> dict[str, str]:
    return {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": "bench-pod",
        "CNI_NETNS": netns,
        "CNI_IFNAME": "net1",
        "CNI_PATH": str(REFERENCE),
    }


def execute(plugin: Path | skel.Plugin, command: str, netns: str, conf: bytes) -> None:
    env = environment(command, netns)
    if not isinstance(plugin, Path):
        status, out = skel.run(plugin, env, conf)
        if status != 0:
            raise SystemExit(f"{plugin.name} {command} failed in-process: {out!r}")
        return
    done = subprocess.run([str(plugin)], input=conf, env=env, capture_output=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{plugin.name} {command} failed: {done.stdout!r} {done.stderr!r}")


def cycle_seconds(plugin: Path | skel.Plugin, pod: str, conf: bytes) -> float:
    netns = str(lab.netns_path(pod))
    start = time.perf_counter()
    execute(plugin, "ADD", netns, conf)
    execute(plugin, "DEL", netns, conf)
    seconds = time.perf_counter() - start
    lab.ip("link", "set", "net1", "down", netns=pod)
    lab.ip("link", "set", "net1", "up", netns=pod)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    rounds = parser.parse_args().rounds
    scratch = Path(tempfile.mkdtemp(prefix="multinic-bench-"))
    tag = os.getpid() % 10000
    pod, host = f"mn-metabench-{tag}", f"mnmeta{tag}"
    try:
        lab.create_netns(pod)
        lab.ip("link", "add", host, "type", "veth", "peer", "name", "net1", "netns", pod)
        lab.ip("link", "set", host, "up")
        lab.ip("addr", "add", "198.18.101.2/24", "dev", "net1", netns=pod)
        lab.ip("link", "set", "net1", "up", netns=pod)
        report(scratch, pod, rounds)
    finally:
        lab.delete_netns(pod)
        lab.delete_link(host)
        shutil.rmtree(scratch, ignore_errors=True)


def report(scratch: Path, pod: str, rounds: int) -> None:
    bin_dir = scratch / "bin"
    install_plugins(str(bin_dir))
    prev = {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "net1", "sandbox": str(lab.netns_path(pod))}],
        "ips": [{"address": "198.18.101.2/24", "gateway": "198.18.101.1", "interface": 0}],
    }
    contenders: dict[str, tuple[Path | skel.Plugin, dict[str, Any]]] = {
        "reference tuning": (REFERENCE / "tuning", {**TUNING, "dataDir": str(scratch / "ref")}),
        "multinic-tuning": (
            bin_dir / "multinic-tuning",
            {**TUNING, "dataDir": str(scratch / "mn")},
        ),
        "multinic-tuning in-process": (tuning.PLUGIN, {**TUNING, "dataDir": str(scratch / "ip")}),
        "reference sbr": (REFERENCE / "sbr", {}),
        "multinic-sbr": (bin_dir / "multinic-sbr", {}),
        "multinic-sbr in-process": (sbr.PLUGIN, {}),
    }
    confs = {
        name: json.dumps(
            {
                "cniVersion": "1.0.0",
                "name": "bench",
                "type": plugin.name,
                **fields,
                "prevResult": prev,
            }
        ).encode()
        for name, (plugin, fields) in contenders.items()
        for kind in [plugin.name]
    }
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for warm_up in (True,) * 2 + (False,) * rounds:
        for name, (plugin, _) in contenders.items():
            seconds = cycle_seconds(plugin, pod, confs[name])
            if not warm_up:
                samples[name].append(seconds)
    print(f"ADD+DEL with a prevResult, plugin executed directly, {rounds} alternating rounds")
    print(f"{'plugin':<30}{'median ms':>10}{'ratio':>8}")
    for kind in ("tuning", "sbr"):
        base = samples[f"reference {kind}"]
        for name in (f"reference {kind}", f"multinic-{kind}", f"multinic-{kind} in-process"):
            ratios = [o / r for o, r in zip(samples[name], base, strict=True)]
            print(
                f"{name:<30}{statistics.median(samples[name]) * 1000:>10.1f}"
                f"{statistics.median(ratios):>8.2f}"
            )


if __name__ == "__main__":
    main()
