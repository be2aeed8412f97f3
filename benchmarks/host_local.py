"""Side by side: ``multinic-host-local`` vs the reference ``host-local``, per executable call.

Each round runs one ADD and one DEL of each plugin, alternating which goes
first, on two data dirs that fill alike (every round adds one attachment and
deletes the one added ``--keep`` rounds earlier, so both dirs hold the same
number of reservations throughout). Reported: median wall milliseconds per
call, and the median of per-round ratios ours / reference. Also ours called
in-process through ``skel.run`` (what a node daemon pays).

Run:  .venv/bin/python benchmarks/host_local.py [--rounds N] [--keep N]
"""

from __future__ import annotations

import argparse
import json
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
from multinic.plugins.host_local import PLUGIN  # noqa: E402
from multinic.plugins.install import executable_text, package_root  # noqa: E402

REFERENCE = third_party.reference_plugins() / "host-local"


def write_ours(bin_dir: Path) -> Path:
    """The executable exactly as `multinic install-plugins` writes it."""
    path = bin_dir / "multinic-host-local"
    path.write_text(executable_text("multinic-host-local"))
    path.chmod(0o755)
    return path


def config(data_dir: Path, plugin: str) -> bytes:
    ranges = [[{"subnet": "10.90.0.0/16"}], [{"subnet": "fd00:90::/64"}]]
    ipam: dict[str, Any] = {"type": plugin, "dataDir": str(data_dir), "ranges": ranges}
    return json.dumps({"cniVersion": "1.0.0", "name": "bench", "ipam": ipam}).encode()


def env(command: str, cid: str) -> dict[str, str]:
    return {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": "/var/run/netns/bench",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(REFERENCE.parent),
    }


def call(executable: Path, command: str, cid: str, stdin: bytes) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        [str(executable)], input=stdin, env=env(command, cid), capture_output=True
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{executable} {command} failed: {done.stdout!r} {done.stderr!r}")
    return elapsed


def in_process(command: str, cid: str, stdin: bytes) -> float:
    start = time.perf_counter()
    status, out = skel.run(PLUGIN, env(command, cid), stdin)
    elapsed = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"in-process {command} failed: {out!r}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--keep", type=int, default=50, help="attachments held meanwhile")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="multinic-bench-hl-"))
    try:
        ours = write_ours(scratch)
        confs = {
            "ours": config(scratch / "ours", "multinic-host-local"),
            "ref": config(scratch / "ref", "host-local"),
            "daemon": config(scratch / "daemon", "multinic-host-local"),
        }
        runners = {
            "ours": lambda c, cid, s: call(ours, c, cid, s),
            "ref": lambda c, cid, s: call(REFERENCE, c, cid, s),
            "daemon": in_process,
        }
        times: dict[str, dict[str, list[float]]] = {k: {"ADD": [], "DEL": []} for k in runners}
        for n in range(args.rounds + args.keep):
            order = ["ours", "ref", "daemon"] if n % 2 else ["ref", "ours", "daemon"]
            for name in order:
                add = runners[name]("ADD", f"c{n}", confs[name])
                delete = (
                    runners[name]("DEL", f"c{n - args.keep}", confs[name])
                    if n >= args.keep
                    else None
                )
                if n >= args.keep:  # measure once `keep` reservations are held
                    times[name]["ADD"].append(add)
                    times[name]["DEL"].append(delete or 0.0)
        report(times, args)
        startup(args.rounds // 3)
    finally:
        shutil.rmtree(scratch)


def report(times: dict[str, dict[str, list[float]]], args: argparse.Namespace) -> None:
    print(f"rounds {args.rounds}, {args.keep} attachments held, dual-stack (a /16 and a /64)\n")
    print("| plugin | ADD median ms | DEL median ms | ADD ratio to reference | DEL ratio |")
    print("|---|---:|---:|---:|---:|")
    labels = {
        "ref": "reference `host-local` (Go)",
        "ours": "`multinic-host-local` executable",
        "daemon": "`multinic-host-local` in-process (`skel.run`)",
    }
    for name in ("ref", "ours", "daemon"):
        ratios = {
            verb: statistics.median(
                a / b for a, b in zip(times[name][verb], times["ref"][verb], strict=True)
            )
            for verb in ("ADD", "DEL")
        }
        print(
            f"| {labels[name]} | {statistics.median(times[name]['ADD']) * 1e3:.2f} "
            f"| {statistics.median(times[name]['DEL']) * 1e3:.2f} "
            f"| {ratios['ADD']:.2f} | {ratios['DEL']:.2f} |"
        )


def startup(rounds: int) -> None:
    """Where an executable call's time goes: the interpreter, then our imports."""
    root = package_root()
    codes = {
        "`python -IS -c pass`": "pass",
        "+ import `multinic.cni.skel`": f"import sys; sys.path.insert(0, {root!r}); "
        "import multinic.cni.skel",
        "+ import `multinic.plugins.host_local`": f"import sys; sys.path.insert(0, {root!r}); "
        "import multinic.plugins.host_local",
    }
    print("\n| start-up | median ms |\n|---|---:|")
    for label, code in codes.items():
        samples = []
        for _ in range(rounds):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-IS", "-c", code], check=True)
            samples.append(time.perf_counter() - start)
        print(f"| {label} | {statistics.median(samples) * 1e3:.1f} |")


if __name__ == "__main__":
    main()
