"""Which Kubernetes client library for ``multinic.kube``: import time and memory, measured.

Contenders: the official ``kubernetes`` client, ``kubernetes_asyncio`` and
``lightkube``. Each is installed alone in a virtual environment of its own
(under ``--venvs``, reused between runs) from the package registry, so one
library's dependencies never count against another. For each:

* import: wall clock of ``python -I -c 'import ...'`` (the imports our code
  would need), median of ``--runs`` runs, minus the median of ``python -I -c
  pass`` in the same venv (the interpreter's own start-up);
* RSS: a fresh process imports the library, makes a client from a kubeconfig
  and does one GET (the ``default`` Namespace) against a real kube-apiserver
  (tests/support/kube.py, started on loopback for the run); it reports its
  VmRSS and VmHWM and the time the client creation and the GET took.

Run:  .venv/bin/python benchmarks/kube_client.py [--runs 15] [--venvs DIR]
"""

from __future__ import annotations

import argparse
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

from tests.support.kube import KubeCluster  # noqa: E402

VENVS = Path("/var/cache/multinic/bench-venvs")

#: What ``multinic.kube`` would import from each library.
IMPORTS = {
    "kubernetes": "from kubernetes import client, config",
    "kubernetes_asyncio": "import asyncio\nfrom kubernetes_asyncio import client, config",
    "lightkube": (
        "from lightkube import Client, KubeConfig\n"
        "from lightkube.resources.core_v1 import Namespace"
    ),
}

#: Make a client from the kubeconfig in KC and GET the default Namespace once.
CLIENT_AND_GET = {
    "kubernetes": (
        "api = config.new_client_from_config(config_file=KC)\n"
        "client.CoreV1Api(api).read_namespace('default')\n"
    ),
    "kubernetes_asyncio": (
        "async def main():\n"
        "    api = await config.new_client_from_config(config_file=KC)\n"
        "    async with api:\n"
        "        await client.CoreV1Api(api).read_namespace('default')\n"
        "asyncio.run(main())\n"
    ),
    "lightkube": ("c = Client(config=KubeConfig.from_file(KC))\nc.get(Namespace, 'default')\n"),
}

PROBE = """
import time
t0 = time.perf_counter()
{imports}
t1 = time.perf_counter()
KC = {kubeconfig!r}
{client_and_get}
t2 = time.perf_counter()
import json
status = dict(
    line.split(":", 1) for line in open("/proc/self/status") if line.startswith(("VmRSS", "VmHWM"))
)
print(json.dumps({{
    "import_ms": (t1 - t0) * 1000,
    "client_get_ms": (t2 - t1) * 1000,
    "rss_kib": int(status["VmRSS"].split()[0]),
    "hwm_kib": int(status["VmHWM"].split()[0]),
}}))
"""

RSS_ONLY_IMPORT = """
{imports}
print(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1])
"""


def ensure_venv(venvs: Path, package: str) -> Path:
    """A venv with only ``package`` (and its dependencies) installed; its python."""
    python = venvs / package / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venvs / package)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, package], check=True)
    return python


def version_of(python: Path, package: str) -> str:
    dist = {"kubernetes_asyncio": "kubernetes_asyncio"}.get(package, package)
    code = f"import importlib.metadata as m; print(m.version({dist!r}))"
    return subprocess.run(
        [str(python), "-I", "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


def wall_ms(python: Path, code: str, runs: int) -> float:
    """Median wall clock of ``python -I -c code`` from exec to exit."""
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run([str(python), "-I", "-c", code], check=True)
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def probe(python: Path, package: str, kubeconfig: Path) -> dict[str, Any]:
    code = PROBE.format(
        imports=IMPORTS[package], kubeconfig=str(kubeconfig), client_and_get=CLIENT_AND_GET[package]
    )
    done = subprocess.run(
        [str(python), "-I", "-c", code], capture_output=True, text=True, check=True
    )
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def measure(python: Path, package: str, kubeconfig: Path, runs: int) -> dict[str, Any]:
    # Warm the page cache and the .pyc files first: every contender is measured warm.
    wall_ms(python, IMPORTS[package], 2)
    baseline = wall_ms(python, "pass", runs)
    imported = wall_ms(python, IMPORTS[package], runs)
    rss_import = subprocess.run(
        [str(python), "-I", "-c", RSS_ONLY_IMPORT.format(imports=IMPORTS[package])],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    probes = [probe(python, package, kubeconfig) for _ in range(3)]
    return {
        "package": package,
        "version": version_of(python, package),
        "import_ms": imported - baseline,
        "rss_import_mib": int(rss_import) / 1024,
        "client_get_ms": statistics.median(p["client_get_ms"] for p in probes),
        "rss_mib": statistics.median(p["rss_kib"] for p in probes) / 1024,
        "hwm_mib": statistics.median(p["hwm_kib"] for p in probes) / 1024,
        "baseline_ms": baseline,
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    header = (
        f"{'library':<20} {'version':<10} {'import ms':>10} {'RSS import MiB':>15} "
        f"{'client+GET ms':>14} {'RSS after GET MiB':>18} {'peak MiB':>9}"
    )
    print(header)
    for r in rows:
        print(
            f"{r['package']:<20} {r['version']:<10} {r['import_ms']:>10.1f} "
            f"{r['rss_import_mib']:>15.1f} {r['client_get_ms']:>14.1f} "
            f"{r['rss_mib']:>18.1f} {r['hwm_mib']:>9.1f}"
        )
    base = statistics.median(r["baseline_ms"] for r in rows)
    print(f"(interpreter start-up, subtracted from import ms: {base:.1f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--venvs", type=Path, default=VENVS)
    args = parser.parse_args()
    pythons = {p: ensure_venv(args.venvs, p) for p in IMPORTS}
    with (
        tempfile.TemporaryDirectory(prefix="kube-client-bench-") as tmp,
        KubeCluster(Path(tmp) / "kube") as cluster,
    ):
        rows = [measure(pythons[p], p, cluster.kubeconfig, args.runs) for p in IMPORTS]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {args.runs} runs each")
    print_table(rows)


if __name__ == "__main__":
    main()
