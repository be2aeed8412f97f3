"""Side by side: the ``multinic-bridge`` executable vs the reference ``bridge``.

Each round runs one ADD and one DEL of a pod namespace, executing the plugin
directly as a runtime would (config on stdin, CNI_* in the environment), both
with the reference ``host-local`` for IPAM, alternating plugin by plugin in one
run so machine noise hits both alike. Reported: medians per ADD+DEL and the
median of the per-round ratios multinic / reference, plus where the executable's
start-up time goes (bare Python, the plugin entry, the whole plugin module).

Run as root:  .venv/bin/python benchmarks/plugin_bridge.py [--rounds N]
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

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support import third_party  # noqa: E402
from tests.support.conflists import bridge_plugin, host_local  # noqa: E402

from multinic.lab import netns as lab  # noqa: E402
from multinic.plugins.install import install_plugins  # noqa: E402

REFERENCE = third_party.reference_plugins()


def execute(plugin: Path, command: str, netns: str, conf: bytes, bin_dir: Path) -> bytes:
    env = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": "bench-pod",
        "CNI_NETNS": netns,
        "CNI_IFNAME": "eth0",
        "CNI_PATH": f"{bin_dir}:{REFERENCE}",
    }
    done = subprocess.run([str(plugin)], input=conf, env=env, capture_output=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{plugin.name} {command} failed: {done.stdout!r} {done.stderr!r}")
    return done.stdout


def cycle_seconds(plugin: Path, netns: str, conf: bytes, bin_dir: Path) -> float:
    """One ADD, then one DEL given ADD's result as prevResult, as libcni and podman do."""
    start = time.perf_counter()
    added = execute(plugin, "ADD", netns, conf, bin_dir)
    del_conf = json.dumps({**json.loads(conf), "prevResult": json.loads(added)}).encode()
    execute(plugin, "DEL", netns, del_conf, bin_dir)
    return time.perf_counter() - start


def start_up(code: str, rounds: int) -> float:
    """Median wall time of ``python -I -S -c code`` (how our executables start)."""
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-I", "-S", "-c", code], check=True, env={})
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    rounds = parser.parse_args().rounds
    scratch = Path(tempfile.mkdtemp(prefix="multinic-bench-"))
    tag = os.getpid() % 10000
    pod, bridges = f"mn-bbench-{tag}", (f"mnbref{tag}", f"mnbour{tag}")
    try:
        report(scratch, pod, bridges, rounds)
    finally:
        lab.delete_netns(pod)
        for bridge in bridges:
            lab.delete_link(bridge)
        shutil.rmtree(scratch, ignore_errors=True)


def report(scratch: Path, pod: str, bridges: tuple[str, str], rounds: int) -> None:
    bin_dir = scratch / "bin"
    install_plugins(str(bin_dir))
    netns = str(lab.create_netns(pod))
    contenders = {
        "reference bridge": (REFERENCE / "bridge", bridges[0], "198.18.44.0/24"),
        "multinic-bridge": (bin_dir / "multinic-bridge", bridges[1], "198.18.45.0/24"),
    }
    confs = {}
    for name, (_, bridge, subnet) in contenders.items():
        plugin = bridge_plugin(bridge, host_local(scratch / name, subnet))
        confs[name] = json.dumps({"cniVersion": "1.0.0", "name": "bench", **plugin}).encode()
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for warm_up in (True,) * 2 + (False,) * rounds:
        for name, (plugin, _, _) in contenders.items():
            seconds = cycle_seconds(plugin, netns, confs[name], bin_dir)
            if not warm_up:
                samples[name].append(seconds)
    base = samples["reference bridge"]
    ratios = [ours / ref for ours, ref in zip(samples["multinic-bridge"], base, strict=True)]
    print(f"ADD+DEL, plugin executed directly, host-local IPAM, {rounds} alternating rounds")
    print(f"{'plugin':<20}{'median ms':>10}{'ratio':>8}")
    print(f"{'reference bridge':<20}{statistics.median(base) * 1000:>10.1f}{1.0:>8.2f}")
    ours = statistics.median(samples["multinic-bridge"]) * 1000
    print(f"{'multinic-bridge':<20}{ours:>10.1f}{statistics.median(ratios):>8.2f}")
    bare = start_up("pass", rounds)
    prefix = f"import sys; sys.path.insert(0, {str(REPO / 'src')!r}); "
    entry = start_up(prefix + "import multinic.cni.skel", rounds)
    plugin_module = start_up(prefix + "import multinic.plugins.bridge", rounds)
    print(
        f"start-up (python -I -S): bare {bare * 1000:.1f} ms, plugin entry "
        f"{entry * 1000:.1f} ms, multinic.plugins.bridge {plugin_module * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
