"""What a lab made, on disk, so ``lab status`` and ``lab down`` work from any process.

Written before each thing is created (intent first): a ``lab up`` that dies
half-way still leaves a state that ``lab down`` can clean up from.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from multinic.lab.topology import STATE_ROOT


class LabState:
    """The lab's record: layout summary, namespaces, daemon pids."""

    def __init__(self, root: Path, data: dict[str, Any]) -> None:
        self.root = root
        self.data = data
        self._lock = threading.Lock()  # pods are added from many threads

    @property
    def path(self) -> Path:
        return self.root / "state.json"

    @classmethod
    def create(cls, root: Path, data: dict[str, Any]) -> LabState:
        state = cls(root, {"namespaces": [], "daemons": {}, **data})
        root.mkdir(parents=True, exist_ok=False)
        state.save()
        return state

    @classmethod
    def load(cls, name: str) -> LabState | None:
        root = STATE_ROOT / name
        try:
            data = json.loads((root / "state.json").read_text())
        except (OSError, ValueError):
            return None
        return cls(root, data)

    def save(self) -> None:
        with self._lock:
            partial = self.path.with_name(f".state.{os.getpid()}")
            partial.write_text(json.dumps(self.data, indent=2))
            partial.replace(self.path)

    def add_namespace(self, name: str) -> None:
        with self._lock:
            self.data["namespaces"].append(name)
        self.save()

    def set_helper(self, name: str, pid: int) -> None:
        """A process the lab runs besides the daemons (etcd members, the API relay)."""
        self.data.setdefault("helpers", {})[name] = pid
        self.save()

    def set_daemon(self, node: str, pid: int | None) -> None:
        if pid is None:
            self.data["daemons"].pop(node, None)
        else:
            self.data["daemons"][node] = pid
        self.save()


def lab_names() -> list[str]:
    """The labs with a state on this machine."""
    if not STATE_ROOT.exists():
        return []
    return sorted(p.name for p in STATE_ROOT.iterdir() if (p / "state.json").exists())
