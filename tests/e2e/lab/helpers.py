"""What the lab tests look at: failed probes, a node's routes and FDB, the nodes owning
the cluster-wide IPAM's blocks (what a lab left: tests.support.labs.leftovers)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from multinic.lab import netns as nsutil
from multinic.lab import run
from multinic.lab.topology import NodeLayout


def processes_under(root: Path) -> list[int]:
    """Live processes with a path under ``root`` in their command line (a zombie has none)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if str(root).encode() in cmdline:
                found.append(int(entry.name))
    return found


def failed(name: str, only: Callable[[run.Probe], bool] = lambda p: True) -> list[run.Probe]:
    return [p for p in run.check(name) if only(p) and not p.ok]


def routes(node: NodeLayout) -> list[dict[str, Any]]:
    """The node's routes of protocol 77 (podnet's)."""
    return [
        r for r in nsutil.ip_json("route", "show", netns=node.netns) if r.get("protocol") == "77"
    ]


def fdb(node: NodeLayout) -> list[dict[str, Any]]:
    """The VXLAN device's FDB entries with a remote address."""
    out = subprocess.run(
        ["bridge", "-n", node.netns, "-j", "fdb", "show", "dev", "mnvx0"],
        capture_output=True,
        check=True,
    ).stdout
    return [e for e in json.loads(out or b"[]") if e.get("dst")]


def eventually(what: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def block_nodes(name: str) -> set[str]:
    """The nodes that own blocks of the cluster-wide IPAM (``blocks/<pool>/<node>``)."""
    _, _, paths = run.require(name)
    store = run.open_lab_store(paths)
    try:
        keys = store.scan("blocks/", deadline=time.monotonic() + 30)
    finally:
        store.close()
    return {key.rsplit("/", 1)[1] for key in keys}
