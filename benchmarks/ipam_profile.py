"""Where one multinic-ipam ADD's time goes, on any store: requests, their time, start-up.

Shared by benchmarks/ipam_cluster.py (etcd) and benchmarks/ipam_kube.py (the
Kubernetes API). One node, one operation at a time, on an otherwise idle store:

* in-process (the node daemon's path): per ADD and per DEL, the store requests
  made (every request of both stores goes through ``multinic.minihttp``, which
  is where they are counted), the median time of one request, and the median
  time of the whole operation; the first ADD of a node also claims its block
  and is reported on its own;
* the installed executable (a runtime's path): the median wall time and CPU time
  of one ADD and one DEL, and of ``CNI_COMMAND=VERSION``, which starts the
  interpreter and imports the plugin but makes no request: the difference is the
  work (CPU time is the figure to trust on a loaded machine).

Reported, never asserted: the figures are for docs/benchmarks.md.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from multinic.minihttp import Connection


def cni_env(verb: str, cid: str, bin_dir: str = "/opt/cni/bin") -> dict[str, str]:
    return {
        "CNI_COMMAND": verb,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": f"/var/run/netns/{cid}",
        "CNI_IFNAME": "net1",
        "CNI_PATH": bin_dir,
        "CNI_ARGS": f"K8S_POD_NAMESPACE=bench;K8S_POD_NAME=pod-{cid};K8S_POD_UID=uid-{cid}",
    }


class RequestLog:
    """Times every request a store makes, by wrapping Connection.request while active."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._real = Connection.request

    def __enter__(self) -> RequestLog:
        real, log = self._real, self.seconds

        def timed(conn: Connection, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
            start = time.perf_counter()
            try:
                return real(conn, *args, **kwargs)
            finally:
                log.append(time.perf_counter() - start)

        Connection.request = timed  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        Connection.request = self._real  # type: ignore[method-assign]


def in_process(config: dict[str, Any], count: int = 20, tag: str = "prof") -> dict[str, Any]:
    """Requests and times per ADD and DEL through the plugin's CNI entry, one node."""
    from multinic.cni import skel
    from multinic.plugins.cluster_ipam import PLUGIN

    stdin = json.dumps(config).encode()
    out: dict[str, Any] = {}
    with RequestLog() as log:
        for verb in ("ADD", "DEL"):
            per_op: list[tuple[int, float]] = []
            for n in range(count):
                before = len(log.seconds)
                start = time.perf_counter()
                status, answer = skel.run(PLUGIN, cni_env(verb, f"{tag}-{n}"), stdin)
                per_op.append((len(log.seconds) - before, time.perf_counter() - start))
                if status != 0:
                    raise RuntimeError(f"{verb} failed: {answer!r}")
            if verb == "ADD":
                out["first ADD requests"] = per_op[0][0]  # it also claims the node's block
                per_op = per_op[1:]
            out[f"{verb} requests"] = statistics.mean(r for r, _ in per_op)
            out[f"{verb} ms"] = 1000 * statistics.median(s for _, s in per_op)
        out["ms per request"] = 1000 * statistics.median(log.seconds)
    return out


def executable(
    config: dict[str, Any], bin_dir: Path, count: int = 20, tag: str = "exe"
) -> dict[str, float]:
    """Median wall ms and CPU ms (the process's user + system: load barely moves it) of the
    installed executable: an ADD, a DEL, and VERSION (start-up and imports alone)."""
    binary = str(bin_dir / "multinic-ipam")
    stdin = json.dumps(config).encode()
    wall: dict[str, list[float]] = {"VERSION": [], "ADD": [], "DEL": []}
    cpu: dict[str, list[float]] = {verb: [] for verb in wall}
    for n in range(count):
        for verb in wall:  # interleaved: load hits all alike
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            done = subprocess.run(
                [binary],
                input=stdin,
                env=cni_env(verb, f"{tag}-{n}", str(bin_dir)),
                capture_output=True,
                check=False,
            )
            wall[verb].append(time.perf_counter() - start)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[verb].append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
            if done.returncode != 0:
                raise RuntimeError(f"{verb} failed: {done.stdout[:300]!r}")
    out = {f"exec {verb} ms": 1000 * statistics.median(t) for verb, t in wall.items()}
    out.update({f"exec {verb} CPU ms": 1000 * statistics.median(t) for verb, t in cpu.items()})
    return out


def profile(config: dict[str, Any], bin_dir: Path, count: int = 20) -> dict[str, Any]:
    """Both: in-process requests and times, and the executable's."""
    return {**in_process(config, count), **executable(config, bin_dir, count)}


def format_profile(found: dict[str, Any]) -> str:
    return ", ".join(
        f"{key} {value:.1f}" if isinstance(value, float) else f"{key} {value}"
        for key, value in found.items()
    )
