"""Import time of multinic modules in two source trees, interleaved in one run.

A plugin executable imports its module on every call (``python -IS``, as
``multinic install-plugins`` writes it), so import time is start-up time. This
compares a git revision's ``src/`` (``git archive``) with the working tree:
each round imports every module once from each tree in a fresh interpreter,
alternating which tree goes first, so load on the machine hits both alike.
Reported: median CPU ms per tree (the interpreter's start included) and the
median of per-round ratios (working tree / revision). The control
``multinic.cni.skel`` shows the noise floor when it is unchanged in both.

Run:  .venv/bin/python benchmarks/import_trees.py REVISION [--rounds 60] [MODULE ...]
"""

from __future__ import annotations

import argparse
import io
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MODULES = (
    "multinic.cni.skel",
    "multinic.plugins.cluster_ipam",
    "multinic.plugins.cluster_ipam,multinic.ipam.etcd_store",
    "multinic.plugins.cluster_ipam,multinic.ipam.kube_store",
)


def export(revision: str, into: Path) -> Path:
    """The revision's ``src`` directory, unpacked under ``into``."""
    tar = subprocess.run(
        ["git", "-C", str(REPO), "archive", revision, "src"], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        archive.extractall(into, filter="data")
    return into / "src"


def import_once(tree: Path, modules: str) -> float:
    """CPU seconds (user + system) a fresh ``python -IS`` spends to import ``modules``
    (comma-separated), start-up included: CPU time, not wall time, so the load other
    work puts on the machine barely moves it."""
    code = f"import sys; sys.path.insert(0, {str(tree)!r})\n"
    code += "".join(f"import {m}\n" for m in modules.split(","))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-IS", "-c", code], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revision")
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("modules", nargs="*", default=list(DEFAULT_MODULES))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="import-trees-") as tmp:
        trees = {"before": export(args.revision, Path(tmp)), "after": REPO / "src"}
        for tree in trees.values():  # compile the bytecode once, outside the timing
            import_once(tree, ",".join(args.modules))
        times: dict[tuple[str, str], list[float]] = {
            (m, t): [] for m in args.modules for t in trees
        }
        for n in range(args.rounds):
            order = ["before", "after"] if n % 2 == 0 else ["after", "before"]
            for module in args.modules:
                for name in order:
                    times[(module, name)].append(import_once(trees[name], module))
    print(f"{args.rounds} rounds, before = {args.revision}, after = the working tree")
    print("| modules | before CPU ms | after CPU ms | median per-round ratio after / before |")
    print("|---|---:|---:|---:|")
    for module in args.modules:
        before, after = times[(module, "before")], times[(module, "after")]
        ratio = statistics.median(a / b for a, b in zip(after, before, strict=True))
        print(
            f"| `{module}` | {1000 * statistics.median(before):.1f} "
            f"| {1000 * statistics.median(after):.1f} | {ratio:.2f} |"
        )


if __name__ == "__main__":
    main()
