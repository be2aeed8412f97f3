"""What containerd 1.6 and kubelet 1.37 write outside the directories they are given.

Found by running a test node and listing what changed under /run, /var and /etc
(``find ... -newer``):

- ``/run/containerd/s/<sha256 of address/namespace/id>``: a shim's socket (the
  CRI runs one shim per sandbox), whatever containerd's state dir; a shim
  killed with its containers leaves it;
- ``/var/lib/cni/results/<network>-<sandbox id>-<ifname>``: libcni's result
  cache (containerd's CRI gives libcni no cache dir); every DEL removes its
  entry, a sandbox never torn down leaves it;
- ``/var/lib/kubelet/device-plugins/kubelet.sock``: kubelet's device-plugin
  socket, at a fixed path whatever ``--root-dir``;
- ``/var/log/containers/<pod>_<namespace>_<container>-<id>.log``: kubelet's
  legacy log links (to files under its ``podLogsDir``).

:class:`RuntimeLeftovers` removes exactly the node's own: by container id, by
link target, and the directories only when the node made them and they are
empty (another test node may be using them meanwhile).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable
from pathlib import Path

SHIM_SOCKETS = Path("/run/containerd/s")
CNI_RESULTS = Path("/var/lib/cni/results")
DEVICE_SOCKET = Path("/var/lib/kubelet/device-plugins/kubelet.sock")
LOG_LINKS = Path("/var/log/containers")
#: The directories, deepest first (each is removed only if the node made it and it is empty).
DIRECTORIES = (
    SHIM_SOCKETS,
    SHIM_SOCKETS.parent,
    CNI_RESULTS,
    CNI_RESULTS.parent,
    DEVICE_SOCKET.parent,
    DEVICE_SOCKET.parent.parent,
    LOG_LINKS,
)


class RuntimeLeftovers:
    """Made before the node starts: remembers which of the paths above it will have made."""

    def __init__(self) -> None:
        self.made = [d for d in DIRECTORIES if not d.exists()]
        self.made_device_socket = not DEVICE_SOCKET.exists()

    @staticmethod
    def shim_socket(containerd_address: Path, container_id: str) -> Path:
        name = hashlib.sha256(f"{containerd_address}/k8s.io/{container_id}".encode())
        return SHIM_SOCKETS / name.hexdigest()

    def remove(self, containerd_address: Path, container_ids: Iterable[str], base: Path) -> None:
        """Remove the node's: its containers' sockets and cache entries, its log links."""
        for cid in container_ids:
            self.shim_socket(containerd_address, cid).unlink(missing_ok=True)
            for entry in CNI_RESULTS.glob(f"*-{cid}-*") if CNI_RESULTS.is_dir() else []:
                entry.unlink(missing_ok=True)
        for link in self.log_links(base):
            link.unlink(missing_ok=True)
        if self.made_device_socket:
            DEVICE_SOCKET.unlink(missing_ok=True)
        for directory in self.made:
            with contextlib.suppress(OSError):
                directory.rmdir()

    @staticmethod
    def log_links(base: Path) -> list[Path]:
        """kubelet's log links that point into ``base``."""
        links = LOG_LINKS.glob("*.log") if LOG_LINKS.is_dir() else []
        found = []
        for link in links:
            with contextlib.suppress(OSError):
                if str(link.readlink()).startswith(f"{base}/"):
                    found.append(link)
        return found

    def left(self, containerd_address: Path, container_ids: Iterable[str], base: Path) -> list[str]:
        """What of the node's is still there (a test's check)."""
        ids = list(container_ids)
        found = [
            str(p) for p in (self.shim_socket(containerd_address, c) for c in ids) if p.exists()
        ]
        if CNI_RESULTS.is_dir():
            found += [str(e) for c in ids for e in CNI_RESULTS.glob(f"*-{c}-*")]
        found += [str(link) for link in self.log_links(base)]
        if self.made_device_socket and DEVICE_SOCKET.exists():
            found.append(str(DEVICE_SOCKET))
        return found
