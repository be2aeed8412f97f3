"""host-local's files on disk, byte for byte, so the reference plugin and ours share a node.

The layout of containernetworking/plugins ``host-local`` (backend/disk):

* ``<dataDir>/<network>/<ip>``: one file per reserved address, named as Go
  prints the address (``10.1.0.2``, ``2001:db8::10``) and holding
  ``<containerID>\\r\\n<ifname>`` with no trailing newline (mode 0644, created
  with O_EXCL). Files of old versions hold only the container id.
* ``<dataDir>/<network>/last_reserved_ip.<n>``: the last address reserved from
  range set ``n``, no newline; allocation continues after it.
* ``<dataDir>/<network>/lock``: an empty file (mode 0750, as go-filemutex
  creates it) locked with ``flock(LOCK_EX)`` around every read-modify-write.
  Both plugins lock the same file, so they exclude each other.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import ipaddress
import os
from collections.abc import Iterator

from multinic.cni.config import Attachment
from multinic.cni.errors import IOFailureError
from multinic.ipam.ranges import IPAddress

DEFAULT_DATA_DIR = "/var/lib/cni/networks"
LINE_BREAK = "\r\n"
LAST_IP_PREFIX = "last_reserved_ip."
LOCK_NAME = "lock"


class HostLocalStore:
    """One network's directory; every method but :meth:`locked` expects the lock held."""

    def __init__(self, network: str, data_dir: str = "") -> None:
        self.dir = os.path.join(data_dir or DEFAULT_DATA_DIR, network)

    def exists(self) -> bool:
        return os.path.isdir(self.dir)

    @contextlib.contextmanager
    def locked(self) -> Iterator[HostLocalStore]:
        """Create the directory if needed and hold its lock, as host-local does."""
        try:
            os.makedirs(self.dir, mode=0o755, exist_ok=True)
            fd = os.open(os.path.join(self.dir, LOCK_NAME), os.O_RDONLY | os.O_CREAT, 0o750)
        except OSError as exc:
            raise IOFailureError(f"cannot open IPAM data dir {self.dir}", str(exc)) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield self
        finally:
            os.close(fd)  # closing drops the flock

    def held(self) -> list[tuple[IPAddress, Attachment]]:
        """Every reservation: the address a file is named for, and who holds it.

        A file of the old format (the container id alone) is held by
        ``Attachment(id, "")``; files not named for an address are not ours.
        """
        out = []
        for name in self._names():
            address = parse_file_name(name)
            if address is None:
                continue
            content = self._read(name)
            if content is not None:
                out.append((address, parse_owner(content)))
        return out

    def last_reserved(self, index: int) -> IPAddress | None:
        content = self._read(f"{LAST_IP_PREFIX}{index}")
        if content is None:
            return None
        try:
            return ipaddress.ip_address(content.strip())
        except ValueError:
            return None  # as host-local: a bad cursor only loses round-robin once

    def last_reserved_bytes(self, index: int) -> bytes | None:
        """The cursor file as it is, to put back if an ADD fails."""
        try:
            with open(os.path.join(self.dir, f"{LAST_IP_PREFIX}{index}"), "rb") as src:
                return src.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise IOFailureError(f"cannot read {LAST_IP_PREFIX}{index}", str(exc)) from exc

    def restore_last_reserved(self, index: int, content: bytes | None) -> None:
        """Put the cursor file back as :meth:`last_reserved_bytes` found it."""
        name = f"{LAST_IP_PREFIX}{index}"
        if content is None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.dir, name))
        else:
            self._write(name, content)

    def reserve(self, address: IPAddress, owner: Attachment, index: int) -> bool:
        """Create the file for ``address``; False when it already exists."""
        path = os.path.join(self.dir, str(address))
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        except OSError as exc:
            raise IOFailureError(f"cannot reserve {address}", str(exc)) from exc
        try:
            try:
                os.write(fd, format_owner(owner))
            finally:
                os.close(fd)
            self._write(f"{LAST_IP_PREFIX}{index}", str(address).encode())
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise IOFailureError(f"cannot reserve {address}", str(exc)) from exc
        return True

    def release(self, address: IPAddress) -> None:
        """Remove the file for ``address``; one already gone is fine."""
        try:
            os.unlink(os.path.join(self.dir, str(address)))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise IOFailureError(f"cannot release {address}", str(exc)) from exc

    def writable(self) -> str:
        """Why reservations cannot be written here, or "" when they can."""
        if not os.access(self.dir, os.W_OK | os.X_OK):
            return f"{self.dir} is not writable"
        return ""

    def _names(self) -> list[str]:
        try:
            return os.listdir(self.dir)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise IOFailureError(f"cannot list IPAM data dir {self.dir}", str(exc)) from exc

    def _read(self, name: str) -> str | None:
        try:
            with open(os.path.join(self.dir, name), "rb") as src:
                return src.read().decode("utf-8", "replace")
        except (FileNotFoundError, IsADirectoryError):
            return None
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise IOFailureError(f"cannot read {name} in {self.dir}", str(exc)) from exc

    def _write(self, name: str, data: bytes) -> None:
        # As Go's os.WriteFile: truncate in place, mode 0644 when created.
        fd = os.open(os.path.join(self.dir, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)


def parse_file_name(name: str) -> IPAddress | None:
    """The address a reservation file is named for, or None for other files."""
    if not name or name.startswith(LAST_IP_PREFIX) or name == LOCK_NAME:
        return None
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def parse_owner(content: str) -> Attachment:
    """``<containerID>\\r\\n<ifname>`` (whitespace trimmed, as host-local compares)."""
    container_id, _, ifname = content.strip().partition(LINE_BREAK)
    return Attachment(container_id.strip(), ifname.strip())


def format_owner(owner: Attachment) -> bytes:
    return f"{owner.container_id.strip()}{LINE_BREAK}{owner.ifname}".encode()


def owned_by(holder: Attachment, owner: Attachment) -> bool:
    """Whether a file held by ``holder`` belongs to ``owner``; an old-format file
    (no ifname) belongs to every interface of its container, as in host-local."""
    return holder == owner or (holder.ifname == "" and holder.container_id == owner.container_id)
