"""What ADD attached to a pod, on the node's disk, so DEL works from it alone.

DEL must succeed with the API server down, the NetworkAttachmentDefinition
deleted or the Pod object gone (Multus issues #920 and #1372), so it never asks
the API: it walks the record ADD wrote, which holds each delegate's exact
config. The record is written *before* the first delegate attaches and removed
only when every delegate's DEL succeeded, so a process that dies at any moment
leaves a record a later DEL finishes from.

One JSON file per container, ``<records_dir>/<containerID>.json``, written
atomically (a reader never sees half a file), 0600 in a 0700 directory.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from multinic.cni import jsontext
from multinic.cni.args import CniArgs, validate_container_id
from multinic.cni.errors import IOFailureError

DEFAULT_STATE_DIR = Path("/var/lib/multinic/meta")
_NOTHING: Mapping[str, Any] = MappingProxyType({})


class PodRef(NamedTuple):
    """The Kubernetes pod an attachment belongs to (empty outside Kubernetes)."""

    namespace: str = ""
    name: str = ""
    uid: str = ""


class PodAttachment(NamedTuple):
    """One attachment of a pod: which network, which interface, the exact config.

    ``name`` is the network as the pod's status names it (``namespace/nad`` for
    a NetworkAttachmentDefinition); ``config`` the conflist (or single config)
    bytes the delegate plugins get, kept byte for byte for DEL.
    """

    name: str
    ifname: str
    config: bytes
    cni_args: CniArgs = ()
    capability_args: Mapping[str, Any] = _NOTHING
    default: bool = False
    #: The gateways of the pod's ``default-route`` request for this attachment.
    gateways: tuple[str, ...] = ()

    def to_obj(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ifname": self.ifname,
            "config": base64.b64encode(self.config).decode(),
            "cniArgs": [list(pair) for pair in self.cni_args],
            "capabilityArgs": dict(self.capability_args),
            "default": self.default,
            "gateways": list(self.gateways),
        }

    @classmethod
    def from_obj(cls, obj: Mapping[str, Any]) -> PodAttachment:
        return cls(
            name=str(obj["name"]),
            ifname=str(obj["ifname"]),
            config=base64.b64decode(str(obj["config"]), validate=True),
            cni_args=tuple((str(k), str(v)) for k, v in obj.get("cniArgs", [])),
            capability_args=dict(obj.get("capabilityArgs") or {}),
            default=bool(obj.get("default", False)),
            gateways=tuple(str(g) for g in obj.get("gateways", [])),
        )


class PodRecord(NamedTuple):
    """Everything DEL needs for one container: its namespace and its delegates, in order."""

    container_id: str
    netns: str
    pod: PodRef
    delegates: tuple[PodAttachment, ...]

    def to_json(self) -> bytes:
        obj = {
            "containerId": self.container_id,
            "netns": self.netns,
            "pod": self.pod._asdict(),
            "delegates": [d.to_obj() for d in self.delegates],
        }
        return json.dumps(obj, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> PodRecord:
        obj = jsontext.loads(data)
        if not isinstance(obj, dict):
            raise TypeError("a record is a JSON object")
        return cls(
            container_id=str(obj["containerId"]),
            netns=str(obj.get("netns", "")),
            pod=PodRef(**{k: str(v) for k, v in obj.get("pod", {}).items()}),
            delegates=tuple(PodAttachment.from_obj(d) for d in obj["delegates"]),
        )


class RecordStore:
    """The records of one node, under ``state_dir/records``."""

    def __init__(self, state_dir: Path = DEFAULT_STATE_DIR) -> None:
        self.directory = state_dir / "records"

    def path(self, container_id: str) -> Path:
        validate_container_id(container_id)  # it names a file: no '/', no '..'
        return self.directory / f"{container_id}.json"

    def save(self, record: PodRecord) -> None:
        target = self.path(record.container_id)
        tmp = self.directory / f".tmp-{record.container_id}-{os.getpid()}-{os.urandom(4).hex()}"
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            with contextlib.ExitStack() as undo:
                undo.callback(_unlink_quietly, tmp)
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as out:
                    out.write(record.to_json())
                    out.flush()
                    os.fsync(out.fileno())  # the record must survive a node crash
                tmp.replace(target)
                undo.pop_all()
        except OSError as exc:
            raise IOFailureError(f"cannot write attachment record {target}", str(exc)) from exc

    def load(self, container_id: str) -> PodRecord | None:
        """The container's record; None when there is none, or it was corrupt (moved aside)."""
        path = self.path(container_id)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise IOFailureError(f"cannot read attachment record {path}", str(exc)) from exc
        try:
            return PodRecord.from_json(data)
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            # Failing would make this container's DEL fail for ever (a stuck
            # pod); the file is kept aside for a person, and GC's IPAM pass
            # releases what it held.
            aside = path.with_name(f"{path.name}.corrupt")
            with contextlib.suppress(OSError):
                path.replace(aside)
            print(
                f"multinic-meta: attachment record {path} is corrupt ({exc}); moved to {aside}",
                file=sys.stderr,
            )
            return None

    def remove(self, container_id: str) -> None:
        _unlink_quietly(self.path(container_id))

    def container_ids(self) -> Iterator[str]:
        """Every container with a record (GC walks them)."""
        try:
            names = sorted(path.name for path in self.directory.iterdir())
        except FileNotFoundError:
            return
        for name in names:
            if name.endswith(".json") and not name.startswith("."):
                yield name.removesuffix(".json")


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
