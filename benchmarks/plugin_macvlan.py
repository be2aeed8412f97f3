"""Side by side: ``multinic-macvlan`` and ``multinic-host-device`` vs the reference plugins.

Each round runs one ADD and one DEL of a pod namespace per contender, executing
the plugin directly as a runtime would (config on stdin, CNI_* in the
environment), all with the reference ``host-local`` for IPAM, alternating
contender by contender in one run so machine noise hits all alike. The macvlan
master is a veth pair made for the run; host-device moves one veth end (its
own per contender) into the pod and back; ours also run in-process
(``skel.run``, as a node daemon would), IPAM still the reference executable.
Reported: median ms per ADD+DEL and the median of the per-round ratios
multinic / reference.

Run as root:  .venv/bin/python benchmarks/plugin_macvlan.py [--rounds N]
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
from tests.support.conflists import host_local  # noqa: E402

from multinic.lab import netns as lab  # noqa: E402
from multinic.plugins.install import install_plugins  # noqa: E402

REFERENCE = third_party.reference_plugins()


#: Contenders run in-process (``skel.run``, as a node daemon would call them).
IN_PROCESS = "(in-process)"


def execute(plugin: Path, command: str, netns: str, conf: bytes, bin_dir: Path) -> None:
    env = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": "bench-pod",
        "CNI_NETNS": netns,
        "CNI_IFNAME": "net1",
        "CNI_PATH": f"{bin_dir}:{REFERENCE}",
    }
    if plugin.name.endswith(IN_PROCESS):
        from multinic.cni import skel
        from multinic.plugins.registry import load_plugin

        plugin_type = plugin.name.removesuffix(IN_PROCESS).strip()
        status, out = skel.run(load_plugin(plugin_type), env, conf)
        if status != 0:
            raise SystemExit(f"{plugin.name} {command} failed: {out!r}")
        return
    done = subprocess.run([str(plugin)], input=conf, env=env, capture_output=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{plugin.name} {command} failed: {done.stdout!r} {done.stderr!r}")


def cycle_seconds(plugin: Path, netns: str, conf: bytes, bin_dir: Path) -> float:
    start = time.perf_counter()
    execute(plugin, "ADD", netns, conf, bin_dir)
    execute(plugin, "DEL", netns, conf, bin_dir)
    return time.perf_counter() - start


def veth(name: str) -> None:
    lab.ip("link", "add", name, "type", "veth", "peer", "name", f"{name}p")
    lab.ip("link", "set", name, "up")
    lab.ip("link", "set", f"{name}p", "up")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    rounds = parser.parse_args().rounds
    scratch = Path(tempfile.mkdtemp(prefix="multinic-bench-"))
    tag = os.getpid() % 10000
    pod = f"mn-mvbench-{tag}"
    links = [f"mnmvb{tag}", f"mnhdr{tag}", f"mnhdo{tag}"]
    try:
        for name in links:
            veth(name)
        report(scratch, pod, links, rounds)
    finally:
        lab.delete_netns(pod)
        for name in links:
            lab.delete_link(name)
        shutil.rmtree(scratch, ignore_errors=True)


def report(scratch: Path, pod: str, links: list[str], rounds: int) -> None:
    bin_dir = scratch / "bin"
    install_plugins(str(bin_dir))
    netns = str(lab.create_netns(pod))
    master, ref_device, our_device = links
    contenders: dict[str, tuple[Path, dict[str, Any], str]] = {
        "reference macvlan": (REFERENCE / "macvlan", {"master": master}, "198.18.93.0/24"),
        "multinic-macvlan": (bin_dir / "multinic-macvlan", {"master": master}, "198.18.94.0/25"),
        "multinic-macvlan in-process": (
            Path(f"multinic-macvlan {IN_PROCESS}"),
            {"master": master},
            "198.18.94.128/25",
        ),
        "reference host-device": (
            REFERENCE / "host-device",
            {"device": ref_device},
            "198.18.95.0/25",
        ),
        "multinic-host-device": (
            bin_dir / "multinic-host-device",
            {"device": our_device},
            "198.18.95.128/26",
        ),
        "multinic-host-device in-process": (
            Path(f"multinic-host-device {IN_PROCESS}"),
            {"device": our_device},
            "198.18.95.192/26",
        ),
    }
    confs = {}
    for name, (plugin, fields, subnet) in contenders.items():
        plugin_type = plugin.name.removesuffix(IN_PROCESS).strip()
        conf = {"cniVersion": "1.0.0", "name": "bench", "type": plugin_type, **fields}
        conf["ipam"] = host_local(scratch / name.replace(" ", "-"), subnet)
        confs[name] = json.dumps(conf).encode()
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for warm_up in (True,) * 2 + (False,) * rounds:
        for name, (plugin, _, _) in contenders.items():
            seconds = cycle_seconds(plugin, netns, confs[name], bin_dir)
            if not warm_up:
                samples[name].append(seconds)
    print(f"ADD+DEL, plugin executed directly, host-local IPAM, {rounds} alternating rounds")
    print(f"{'plugin':<32}{'median ms':>10}{'ratio':>8}")
    for kind in ("macvlan", "host-device"):
        base = samples[f"reference {kind}"]
        print(f"{'reference ' + kind:<32}{statistics.median(base) * 1000:>10.1f}{1.0:>8.2f}")
        for name in (f"multinic-{kind}", f"multinic-{kind} in-process"):
            ours = samples[name]
            ratios = [o / r for o, r in zip(ours, base, strict=True)]
            print(
                f"{name:<32}{statistics.median(ours) * 1000:>10.1f}"
                f"{statistics.median(ratios):>8.2f}"
            )


if __name__ == "__main__":
    main()
