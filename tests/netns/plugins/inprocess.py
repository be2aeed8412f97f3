"""Driving one of our plugins in-process against a real pod namespace, for the plugin tests.

Calls run in the active scratch node (tests.support.lower_plugins.on_node) when a
test entered one; in the QEMU guest, a VM of its own, there is none and they run
in the calling thread's namespace.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from multinic.cni import skel
from multinic.lab import netns as lab
from tests.netns.conftest import REFERENCE_PLUGIN_DIR, unique
from tests.support.lower_plugins import on_node


class Pod:
    """One attachment of the plugin to a pod namespace, driven in-process."""

    def __init__(
        self, plugin: skel.Plugin, netns: str, conf: dict[str, Any], container_id: str = ""
    ) -> None:
        self.plugin = plugin
        self.netns = netns
        self.conf = conf
        self.container_id = container_id or unique("ctr-")
        self.ifname = "eth0"
        self.result: dict[str, Any] | None = None

    def env(self, command: str) -> dict[str, str]:
        return {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": self.container_id,
            "CNI_NETNS": str(lab.netns_path(self.netns)),
            "CNI_IFNAME": self.ifname,
            "CNI_PATH": str(REFERENCE_PLUGIN_DIR),
        }

    def run(self, command: str, **extra: Any) -> tuple[int, dict[str, Any]]:
        conf = {**self.conf, **extra}
        if command == "CHECK" and self.result is not None:
            conf.setdefault("prevResult", self.result)
        env, stdin = self.env(command), json.dumps(conf).encode()
        status, out = on_node(lambda: skel.run(self.plugin, env, stdin))
        return status, json.loads(out) if out.strip() else {}

    def add(self) -> dict[str, Any]:
        status, out = self.run("ADD")
        assert status == 0, out
        self.result = out
        return out

    def ok(self, command: str, **extra: Any) -> None:
        status, out = self.run(command, **extra)
        assert status == 0, out


def reservations(data_dir: Path, network: str) -> list[str]:
    """Addresses host-local holds (its data dir's address files)."""
    folder = data_dir / network
    if not folder.exists():
        return []
    return sorted(p.name for p in folder.iterdir() if p.name[0].isdigit() or ":" in p.name)


def ping(netns: str, address: str) -> bool:
    done = subprocess.run(
        ["ip", "netns", "exec", netns, "ping", "-c", "1", "-W", "2", address],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0
