"""libcni's result cache, byte-compatible so multinic and Go runtimes share a node.

One file per attachment, ``<cacheDir>/results/<network>-<containerID>-<ifname>``,
holding compact JSON of kind ``cniCacheV1``: the config as read (base64), the
netns, CNI args, capability args and the final result of the ADD.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import re
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from multinic.cni import jsontext
from multinic.cni.args import CniArgs
from multinic.cni.errors import CNIError, DecodingError, IOFailureError
from multinic.cni.types import Result

CACHE_KIND = "cniCacheV1"
#: Half-written cache files; one older than this was left by a process that died.
_TMP_PREFIX = ".tmp-"
_ABANDONED_AFTER_SECONDS = 600.0
#: A shared, read-only empty default (NamedTuple defaults are shared objects).
NO_CAPABILITY_ARGS: Mapping[str, Any] = MappingProxyType({})
DEFAULT_CACHE_DIR = Path("/var/lib/cni")


class CachedAttachment(NamedTuple):
    """What the runtime remembers about one successful ADD."""

    network_name: str
    container_id: str
    ifname: str
    config: bytes
    netns: str = ""
    cni_args: CniArgs = ()
    capability_args: Mapping[str, Any] = NO_CAPABILITY_ARGS
    result: Mapping[str, Any] | None = None

    def to_json(self) -> bytes:
        """Compact JSON with libcni's keys, in libcni's order."""
        obj: dict[str, Any] = {
            "kind": CACHE_KIND,
            "containerId": self.container_id,
            "config": base64.b64encode(self.config).decode(),
            "ifName": self.ifname,
            "networkName": self.network_name,
        }
        if self.netns:
            obj["netns"] = self.netns
        if self.cni_args:
            obj["cniArgs"] = [list(pair) for pair in self.cni_args]
        # capabilityArgs and result are Go maps in libcni: keys sorted at every level.
        if self.capability_args:
            obj["capabilityArgs"] = _sorted_keys(self.capability_args)
        if self.result is not None:
            obj["result"] = _sorted_keys(self.result)
        return _go_json(obj)

    @classmethod
    def from_json(cls, data: bytes) -> CachedAttachment | None:
        """Decode a cache file, or None when it is not a cniCacheV1 entry."""
        try:
            obj = jsontext.loads(data)
        except (ValueError, UnicodeDecodeError):
            return None
        return cls.from_obj(obj)

    @classmethod
    def from_obj(cls, obj: object) -> CachedAttachment | None:
        """Decode a cache file's JSON value, or None when it is not a cniCacheV1 entry."""
        if not isinstance(obj, dict) or obj.get("kind") != CACHE_KIND:
            return None
        try:
            return cls(
                network_name=_text(obj, "networkName"),
                container_id=_text(obj, "containerId"),
                ifname=_text(obj, "ifName"),
                config=base64.b64decode(obj.get("config") or "", validate=True),
                netns=_text(obj, "netns"),
                cni_args=tuple((str(k), str(v)) for k, v in obj.get("cniArgs") or []),
                capability_args=obj.get("capabilityArgs") or {},
                result=obj.get("result"),
            )
        except (TypeError, ValueError, binascii.Error):
            return None


class ResultCache:
    """The cache directory of one runtime (``/var/lib/cni`` by default)."""

    def __init__(self, cache_dir: Path = DEFAULT_CACHE_DIR) -> None:
        self.cache_dir = cache_dir
        self.results_dir = cache_dir / "results"

    def path(self, network: str, container_id: str, ifname: str) -> Path:
        if not (network and container_id and ifname):
            raise CNIError(
                "cache file path requires network name, container ID and interface name",
                f"got {network!r}, {container_id!r}, {ifname!r}",
            )
        return self.results_dir / f"{network}-{container_id}-{ifname}"

    def save(self, entry: CachedAttachment) -> None:
        """Write atomically (a reader never sees half a file), 0600 in a 0700 directory."""
        target = self.path(entry.network_name, entry.container_id, entry.ifname)
        try:
            self.results_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = (
                self.results_dir / f"{_TMP_PREFIX}{target.name}-{os.getpid()}-{os.urandom(4).hex()}"
            )
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with contextlib.ExitStack() as undo:
                undo.callback(_unlink_quietly, tmp)
                with os.fdopen(fd, "wb") as out:
                    out.write(entry.to_json())
                tmp.replace(target)
                undo.pop_all()
        except OSError as exc:
            raise IOFailureError(f"cannot write result cache {target}", str(exc)) from exc

    def load_raw(self, network: str, container_id: str, ifname: str) -> bytes | None:
        """The cache file's bytes, or None when there is none (or it cannot be read)."""
        try:
            return self.path(network, container_id, ifname).read_bytes()
        except OSError:
            return None

    def load(self, network: str, container_id: str, ifname: str) -> CachedAttachment | None:
        data = self.load_raw(network, container_id, ifname)
        return None if data is None else CachedAttachment.from_json(data)

    def remove(self, network: str, container_id: str, ifname: str) -> None:
        _unlink_quietly(self.path(network, container_id, ifname))

    def attachments(self, network: str | None = None) -> Iterator[CachedAttachment]:
        """Every readable cniCacheV1 entry, in file-name order, optionally of one network."""
        try:
            paths = sorted(self.results_dir.iterdir())
        except FileNotFoundError:
            return
        except OSError as exc:
            raise IOFailureError(f"cannot list result cache {self.results_dir}", str(exc)) from exc
        for path in paths:
            if path.name.startswith(_TMP_PREFIX):
                _remove_if_abandoned(path)
                continue
            try:
                entry = CachedAttachment.from_json(path.read_bytes())
            except OSError:
                continue
            if entry is None or not entry.ifname or not entry.network_name:
                continue
            if network is None or entry.network_name == network:
                yield entry


def cached_result(data: bytes, cni_version: str) -> Result | None:
    """The result in a cache file, converted to ``cni_version``.

    Older libcni wrote the bare result JSON to the same path; that is read too.
    """
    try:
        raw: object = jsontext.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(raw, dict) and raw.get("kind") == CACHE_KIND:
        entry = CachedAttachment.from_obj(raw)
        if entry is None:
            raise DecodingError(
                "corrupt result cache entry", "a cniCacheV1 field has the wrong type"
            )
        raw = entry.result
    if not isinstance(raw, dict):
        return None
    version = raw.get("cniVersion") or cni_version
    return Result.from_dict(raw, str(version)).convert(cni_version)


def _sorted_keys(obj: Mapping[str, Any]) -> Any:
    return json.loads(json.dumps(obj, sort_keys=True))


#: Go's encoding/json escapes these for HTML safety and writes other text as UTF-8.
_GO_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_GO_ESCAPE_RE = re.compile("[<>&\u2028\u2029]")


def _go_json(obj: object) -> bytes:
    """Compact JSON byte-for-byte as Go's json.Marshal writes it (given the same key order)."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    return _GO_ESCAPE_RE.sub(lambda m: _GO_ESCAPES[m.group()], text).encode()


def _text(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key, "")
    if not isinstance(value, str):
        raise TypeError(f"{key} is not a string")
    return value


def _remove_if_abandoned(path: Path) -> None:
    # Listing the cache is what GC does: the place to reclaim what a crash left.
    with contextlib.suppress(OSError):
        if time.time() - path.stat().st_mtime > _ABANDONED_AFTER_SECONDS:
            path.unlink()


def _unlink_quietly(path: Path) -> None:
    # Like libcni: once every plugin's DEL succeeded, a cache file that cannot be
    # removed must not turn the DEL into a failure (nor hide a rollback's cause).
    with contextlib.suppress(OSError):
        path.unlink()
