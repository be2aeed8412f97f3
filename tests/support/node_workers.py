"""Node processes that run an IPAM plugin for many containers, for the reliability tests.

Each worker is ``python -m <module> SPEC`` (a test's node_worker) printing one
JSON line per call; the etcd and the Kubernetes-store suites share this.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


class Worker:
    """One node process running the plugin for a list of containers."""

    def __init__(self, out: Path, spec: dict[str, Any], module: str) -> None:
        self.out = out
        self._file = out.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, json.dumps(spec)],
            cwd=ROOT,
            stdout=self._file,
            stderr=subprocess.PIPE,
        )

    def lines(self) -> list[dict[str, Any]]:
        text = self.out.read_text()
        return [json.loads(line) for line in text.splitlines() if line.endswith("}")]

    def wait(self, timeout: float = 900) -> int:
        _, stderr = self.process.communicate(timeout=timeout)
        self._file.close()
        if self.process.returncode not in (0, -9):
            raise AssertionError(f"worker failed: {stderr.decode(errors='replace')[-3000:]}")
        return self.process.returncode

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._file.close()


def start_workers(
    stack: contextlib.ExitStack,
    tmp_path: Path,
    config: dict[str, Any],
    command: str,
    containers: dict[str, list[str]],
    *,
    module: str,
    **extra: Any,
) -> list[Worker]:
    """One worker per node of ``containers``, each stopped when ``stack`` closes."""
    workers = []
    for node, cids in containers.items():
        spec = {"config": config, "node": node, "command": command, "containers": cids, **extra}
        worker = Worker(tmp_path / f"{node}-{command}.jsonl", spec, module)
        stack.callback(worker.stop)
        workers.append(worker)
    return workers
