"""Side by side: one ``podman run --rm`` on a network of the reference plugins vs of ours.

podman 4.3 with its CNI backend, isolated as the end-to-end test isolates it
(tests/e2e/podman/harness.py: its own config, storage, locks and network dir).
Each round runs ``podman run --rm IMAGE true`` once per contender, alternating, so
machine noise hits all alike: one CNI ADD and one DEL per run, plus everything
else podman does (storage, runc, conmon). ``--network none`` is the floor: what
a run costs without CNI. Reported: medians per run, the median of the per-round
ratios to the reference bridge, and each contender's time above the floor.

Run as root:  .venv/bin/python benchmarks/podman_run.py [--rounds N] [--stack NAME ...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.e2e.podman.harness import IMAGE, PODMAN_CNI_VERSION, PodmanHost, podman_host  # noqa: E402
from tests.support.conflists import bridge_conflist  # noqa: E402

#: name -> (bridge plugin type, IPAM type, subnet); apart from the tests' ranges.
STACKS = {
    "reference bridge": ("bridge", "host-local", "198.18.164.0/24"),
    "multinic-bridge": ("multinic-bridge", "host-local", "198.18.165.0/24"),
    "multinic-bridge + multinic-host-local": (
        "multinic-bridge",
        "multinic-host-local",
        "198.18.166.0/24",
    ),
}
BASELINE = "reference bridge"
FLOOR = "no network"


def network_for(host: PodmanHost, index: int, stack: str) -> str:
    """Write the conflist of one contender; returns the network's name."""
    bridge_type, ipam_type, subnet = STACKS[stack]
    name = f"mnbench-{index}"
    conf = bridge_conflist(name, f"mnbench{index}", host.base / "ipam", subnet)
    conf["cniVersion"] = PODMAN_CNI_VERSION
    conf["plugins"][0]["type"] = bridge_type
    conf["plugins"][0]["ipam"]["type"] = ipam_type
    host.write_network(conf)
    return name


def run_seconds(host: PodmanHost, network: str) -> float:
    flags = host.container_flags(network)
    start = time.perf_counter()
    host.podman("run", "--rm", *flags, IMAGE, "true")
    seconds = time.perf_counter() - start
    host.settle()  # conmon's cleanup must not overlap the next contender's run
    return seconds


def measure(host: PodmanHost, stacks: list[str], rounds: int) -> dict[str, list[float]]:
    networks = {FLOOR: "none"}
    networks.update({stack: network_for(host, i, stack) for i, stack in enumerate(stacks)})
    samples: dict[str, list[float]] = {name: [] for name in networks}
    for warm_up in (True,) * 2 + (False,) * rounds:
        for name, network in networks.items():
            seconds = run_seconds(host, network)
            if not warm_up:
                samples[name].append(seconds)
    return samples


def report(samples: dict[str, list[float]], rounds: int) -> None:
    print(f"podman run --rm IMAGE true (podman 4.3, CNI backend, runc), {rounds} rounds")
    print(f"{'network':<40}{'median ms':>10}{'above floor':>13}{'ratio':>8}")
    floor = statistics.median(samples[FLOOR])
    base = samples.get(BASELINE)
    for name, times in samples.items():
        median = statistics.median(times)
        ratio = (
            f"{statistics.median(t / b for t, b in zip(times, base, strict=True)):.2f}"
            if base
            else "-"
        )
        print(f"{name:<40}{median * 1000:>10.1f}{(median - floor) * 1000:>13.1f}{ratio:>8}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument(
        "--stack",
        action="append",
        choices=sorted(STACKS),
        help="a contender (repeatable); default: all",
    )
    args = parser.parse_args()
    stacks = args.stack or list(STACKS)
    # The harness's teardown also deletes the bridges of the conflists it holds.
    with podman_host() as host:
        samples = measure(host, stacks, args.rounds)
    report(samples, args.rounds)


if __name__ == "__main__":
    main()
