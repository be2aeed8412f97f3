"""Finding and removing what a runtime left on this machine: processes, mounts, cgroups.

containerd's shims and the containers they run outlive containerd when it is
stopped, and kubelet and containerd mount under their own directories (the
containers' root filesystems, /dev/shm of the sandboxes, network namespaces).
A test node removes all of it by what it owns: processes in its cgroup subtree
or naming its directory on their command line, mounts under its directory,
cgroups under its cgroup root. Nothing is found by a broad name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

CGROUP_MOUNT = Path("/sys/fs/cgroup")


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def processes_in_cgroup(root: str) -> list[int]:
    """Live processes in cgroup ``/root`` or below it, in any hierarchy.

    Not zombies: a killed container's processes are reparented and wait to be
    reaped by this machine's init, holding nothing (not even their cgroup).
    """
    prefix = f"/{root.strip('/')}"
    found = []
    for pid in _pids():
        if _zombie(pid):
            continue
        for line in _read(Path(f"/proc/{pid}/cgroup")).splitlines():
            path = line.split(":", 2)[-1]
            if path == prefix or path.startswith(f"{prefix}/"):
                found.append(pid)
                break
    return found


def processes_naming(text: str) -> list[int]:
    """Processes whose command line contains ``text`` (a directory only we use)."""
    needle = text.encode()
    own = os.getpid()
    found = []
    for pid in _pids():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if pid != own and needle in cmdline:
            found.append(pid)
    return found


def kill_all(find: Iterable[int], wait: float = 10.0) -> list[int]:
    """SIGKILL ``find``'s processes until none is left (or ``wait`` passes): what was left."""
    pids = list(find)
    deadline = time.monotonic() + wait
    while pids and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
        pids = [pid for pid in pids if Path(f"/proc/{pid}").exists() and not _zombie(pid)]
    return pids


def _zombie(pid: int) -> bool:
    return " Z " in _read(Path(f"/proc/{pid}/stat"))


def mounts_under(directory: Path) -> list[str]:
    """Mount points at or below ``directory``, deepest first (as ``umount`` needs them)."""
    prefix = str(directory).rstrip("/")
    points = []
    for line in _read(Path("/proc/self/mountinfo")).splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(f"{prefix}/"):
            points.append(point)
    return sorted(set(points), key=lambda p: p.count("/"), reverse=True)


def unmount_all(directory: Path) -> list[str]:
    """Detach every mount under ``directory``; the ones that stayed."""
    for point in mounts_under(directory):
        subprocess.run(["umount", "--lazy", point], capture_output=True, check=False)
    return mounts_under(directory)


def cgroup_dirs(root: str) -> list[Path]:
    """``root``'s directory in every cgroup hierarchy mounted here that has one."""
    return [
        hierarchy / root
        for hierarchy in sorted(CGROUP_MOUNT.iterdir())
        if (hierarchy / root).is_dir()
    ]


def make_cgroup(root: str) -> None:
    """Create cgroup ``root`` in every v1 and v2 hierarchy (kubelet checks it exists).

    A new v1 cpuset group has no CPUs and no memory nodes: it gets its parent's.
    """
    for hierarchy in sorted(CGROUP_MOUNT.iterdir()):
        if not (hierarchy / "cgroup.procs").exists():
            continue
        group = hierarchy / root
        group.mkdir(exist_ok=True)
        for name in ("cpuset.cpus", "cpuset.mems"):
            if (hierarchy / name).exists():
                (group / name).write_text(_read(hierarchy / name).strip() or "\n")


def remove_cgroup(root: str) -> list[Path]:
    """Remove ``root`` and everything below it, bottom-up; what could not be removed."""
    left = []
    for top in cgroup_dirs(root):
        for directory, _, _ in sorted(os.walk(top), key=lambda w: w[0].count("/"), reverse=True):
            try:
                Path(directory).rmdir()
            except OSError:
                left.append(Path(directory))
    return left
