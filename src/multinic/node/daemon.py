"""The node daemon's life: serve CNI calls, report health, announce itself to the runtime.

Start-up order matters to the runtime: the socket listens first, then (once
the readiness indicator file exists, if one is configured: typically the
config of a CNI this node also needs) the daemon writes its conflist into the
CNI config dir. A runtime that sees the conflist therefore always finds the
daemon answering. On stop the conflist stays: during a restart the shim
answers code 11 and the runtime retries the pod, where a missing conflist
would mark the whole node's network not ready.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

from multinic.cni import skel
from multinic.cni.version import LATEST_VERSION
from multinic.node.health import HealthServer
from multinic.node.metrics import Metrics
from multinic.node.server import CniServer


class DaemonSettings(NamedTuple):
    """Where the daemon listens and what it writes; every field has a node's default."""

    socket_path: Path = Path("/run/multinic/cni.sock")
    cni_conf_dir: Path = Path("/etc/cni/net.d")
    #: Sorted first, so it is the runtime's default network (libcni loads in name order).
    conflist_name: str = "00-multinic.conflist"
    network_name: str = "multinic"
    #: The conflist's version: the newest the runtime's libcni reads (1.0.0 for
    #: containerd 1.6 and podman 4, whose libcni 1.1 has no 1.1.0).
    cni_version: str = LATEST_VERSION
    readiness_indicator_file: Path | None = None
    health_host: str = "127.0.0.1"
    health_port: int = 9489
    workers: int = 16


class NodeDaemon:
    """Runs ``plugin`` behind the CNI socket, with health, metrics and the conflist."""

    def __init__(self, plugin: skel.Plugin, settings: DaemonSettings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.server = CniServer(plugin, settings.socket_path, self.metrics, settings.workers)
        self.health = HealthServer(
            settings.health_host, settings.health_port, self.metrics, self.is_ready
        )
        self._ready = threading.Event()
        self._stopping = threading.Event()

    @property
    def conflist_path(self) -> Path:
        return self.settings.cni_conf_dir / self.settings.conflist_name

    def conflist(self) -> dict[str, Any]:
        """The network config list the runtime calls the shim with."""
        return {
            "cniVersion": self.settings.cni_version,
            "name": self.settings.network_name,
            "plugins": [
                {
                    "type": "multinic-shim",
                    "socketPath": str(self.settings.socket_path),
                    # What kubelet passes on for delegates that declare them.
                    "capabilities": {"portMappings": True, "bandwidth": True},
                }
            ],
        }

    def is_ready(self) -> bool:
        return self._ready.is_set()

    def start(self) -> None:
        """Listen, then announce the network once the readiness indicator exists."""
        self.server.start()
        self.health.start()
        threading.Thread(target=self._announce, name="announce", daemon=True).start()

    def wait_ready(self, timeout: float) -> bool:
        return self._ready.wait(timeout)

    def stop(self) -> None:
        self._stopping.set()
        self.health.stop()
        self.server.stop()

    def _announce(self) -> None:
        indicator = self.settings.readiness_indicator_file
        while indicator is not None and not indicator.exists():
            if self._stopping.wait(0.2):
                return
        _write_atomically(self.conflist_path, json.dumps(self.conflist(), indent=2).encode())
        self._ready.set()


def _write_atomically(path: Path, data: bytes) -> None:
    """A runtime scanning the config dir never reads half a conflist."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}")
    with contextlib.ExitStack() as undo:
        undo.callback(lambda: partial.unlink(missing_ok=True))
        partial.write_bytes(data)
        partial.chmod(0o644)
        partial.replace(path)
        undo.pop_all()
