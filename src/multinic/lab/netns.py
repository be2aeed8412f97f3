"""Named network namespaces and host links for lab pods, through iproute2's ``ip``.

The lab creates and removes whole namespaces; it does not configure links in
them (plugins do that, through the data plane).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from multinic.lab.errors import LabError

NETNS_DIR = Path("/var/run/netns")

# Names of the scratch namespaces this process has open: tests use them to tell
# their own links from those of other runs on the same machine.
_SCRATCH_HERE: set[str] = set()


def ip(*args: str, netns: str | None = None) -> str:
    """Run ``ip [-n NETNS] ARGS`` and return stdout; failures raise LabError with stderr."""
    command = ["ip", *(["-n", netns] if netns else []), *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise LabError(f"{' '.join(command)}: {done.stderr.strip()}")
    return done.stdout


def ip_json(*args: str, netns: str | None = None) -> list[dict[str, Any]]:
    """``ip -j ...`` decoded."""
    out = ip("-j", *args, netns=netns).strip()
    decoded: list[dict[str, Any]] = json.loads(out) if out else []
    return decoded


def netns_path(name: str) -> Path:
    return NETNS_DIR / name


def create_netns(name: str) -> Path:
    """Create a named namespace with loopback up; an existing one is an error."""
    if netns_path(name).exists():
        raise LabError(f"network namespace {name!r} already exists")
    ip("netns", "add", name)
    ip("link", "set", "lo", "up", netns=name)
    return netns_path(name)


def delete_netns(name: str) -> None:
    """Remove a named namespace; a missing one is fine (cleanup runs twice)."""
    if netns_path(name).exists():
        ip("netns", "delete", name)


def delete_link(name: str, netns: str | None = None) -> None:
    """Remove a link if it exists."""
    with contextlib.suppress(LabError):
        ip("link", "delete", name, netns=netns)


def link_names(netns: str | None = None) -> set[str]:
    return {link["ifname"] for link in ip_json("link", "show", netns=netns)}


def addresses(ifname: str, netns: str | None = None) -> list[str]:
    """``address/prefix`` of every global address on ``ifname``."""
    out: list[str] = []
    for link in ip_json("addr", "show", "dev", ifname, netns=netns):
        out.extend(
            f"{a['local']}/{a['prefixlen']}"
            for a in link.get("addr_info", [])
            if a.get("scope") == "global"
        )
    return out


@contextlib.contextmanager
def scratch_netns(name: str) -> Iterator[Path]:
    """A namespace that exists for the ``with`` block and is removed however it ends."""
    path = create_netns(name)
    _SCRATCH_HERE.add(name)
    try:
        yield path
    finally:
        _SCRATCH_HERE.discard(name)
        delete_netns(name)


def scratch_namespaces() -> frozenset[str]:
    """The names of the scratch namespaces this process has open right now."""
    return frozenset(_SCRATCH_HERE)
