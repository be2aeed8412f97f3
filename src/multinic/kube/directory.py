"""A directory of Kubernetes-style YAML objects as a :class:`~multinic.kube.objects.KubeSource`.

For single hosts and the lab, where there is no API server: the same Pod and
NetworkAttachmentDefinition objects one would ``kubectl apply``, in ``*.yaml``,
``*.yml`` or ``*.json`` files (several objects per file, ``---``-separated or in
a ``kind: List``); other kinds are ignored, so a directory of manifests can be
pointed at as it is. A namespace left out is ``default``, as kubectl does.

The directory is read again on every call: an edit counts from the next
request, and nothing depends on file times (tests need no sleeps). Only the
parsing is cached, keyed by a file's bytes: a lab of 500 pods spent 76 ms per
look-up parsing the same unchanged pods file (docs/benchmarks.md, lab scale).

The network-status annotation is not written into the YAML (that would lose
people's comments and layout) but into ``<status dir>/<namespace>/<pod>.json``,
and :meth:`DirectorySource.get_pod` shows it among the pod's annotations, as the
API server would.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from multinic.cni.errors import DecodingError, InvalidConfigError, IOFailureError, PodNotFoundError
from multinic.kube.objects import (
    NAD_API_VERSION,
    NAD_KIND,
    NETWORK_STATUS_ANNOTATION,
    Pod,
    encode_network_status,
    namespace_problem,
    object_name_problem,
)

SUFFIXES = (".yaml", ".yml", ".json")
DEFAULT_NAMESPACE = "default"
#: Where the status goes unless told: hidden inside the directory, which is read non-recursively.
STATUS_SUBDIR = ".status"

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: (apiVersion, kind) of the objects this source serves.
KINDS = {("v1", "Pod"): "Pod", (NAD_API_VERSION, NAD_KIND): NAD_KIND}


class _Entry(NamedTuple):
    """One object found: where, and what."""

    path: Path
    obj: Mapping[str, Any]


class _Index(NamedTuple):
    """Every served object by (kind, namespace, name), and the files that could not be read."""

    objects: dict[tuple[str, str, str], list[_Entry]]
    broken: list[str]


class DirectorySource:
    """Pods and NADs from YAML files in ``directory``."""

    def __init__(self, directory: Path, status_dir: Path | None = None) -> None:
        self.directory = directory
        self.status_dir = status_dir if status_dir is not None else directory / STATUS_SUBDIR

    def get_pod(self, namespace: str, name: str) -> Pod:
        entry = self._find("Pod", namespace, name)
        if entry is None:
            raise PodNotFoundError(f"no pod {namespace}/{name}", f"no such Pod in {self.directory}")
        meta = entry.obj.get("metadata") or {}
        spec = entry.obj.get("spec") or {}
        uid = _string(meta.get("uid"))
        annotations = _annotations(meta, entry.path)
        status = self._stored_status(namespace, name, uid)
        if status is not None:
            annotations[NETWORK_STATUS_ANNOTATION] = status
        node = spec.get("nodeName") if isinstance(spec, Mapping) else None
        return Pod(namespace, name, uid, _string(node), annotations)

    def get_network_config(self, namespace: str, name: str) -> str | None:
        entry = self._find(NAD_KIND, namespace, name)
        if entry is None:
            return None
        spec = entry.obj.get("spec")
        config = spec.get("config") if isinstance(spec, Mapping) else None
        if config is None:
            return ""
        if not isinstance(config, str):
            raise InvalidConfigError(
                f"invalid NetworkAttachmentDefinition {namespace}/{name} in {entry.path}",
                "spec.config must be a string (JSON text), as the CRD requires",
            )
        return config

    def set_network_status(
        self, namespace: str, name: str, status: Sequence[Mapping[str, Any]], uid: str = ""
    ) -> None:
        pod = self.get_pod(namespace, name)
        if uid and pod.uid and uid != pod.uid:
            raise PodNotFoundError(
                f"no pod {namespace}/{name} with uid {uid}", f"its uid is {pod.uid}"
            )
        record = {"uid": uid or pod.uid, "annotation": encode_network_status(status)}
        _write_atomically(self._status_path(namespace, name), json.dumps(record).encode())

    # -- reading -----------------------------------------------------------------

    def _find(self, kind: str, namespace: str, name: str) -> _Entry | None:
        """The one object of that kind and name; a clear error when it is ambiguous."""
        if namespace_problem(namespace) or object_name_problem(name):
            return None  # no object can have that name, and it must never become a path
        index = self._index()
        entries = index.objects.get((kind, namespace, name), [])
        if len(entries) > 1:
            raise InvalidConfigError(
                f"{kind} {namespace}/{name} is defined more than once in {self.directory}",
                "in " + ", ".join(str(e.path) for e in entries),
            )
        if not entries and index.broken:
            # It may be in a file we could not read: say so rather than "not found".
            raise DecodingError(
                f"{kind} {namespace}/{name} not found, and files in {self.directory} are broken",
                "; ".join(index.broken),
            )
        return entries[0] if entries else None

    def _index(self) -> _Index:
        index = _Index({}, [])
        for path in self._files():
            try:
                objects = list(_objects_in(path))
            except DecodingError as problem:
                index.broken.append(str(problem))
                continue
            for obj in objects:
                key = _key(obj)
                if key is not None:
                    index.objects.setdefault(key, []).append(_Entry(path, obj))
        return index

    def _files(self) -> list[Path]:
        try:
            entries = sorted(self.directory.iterdir())
        except OSError as exc:
            raise IOFailureError(
                f"cannot read objects directory {self.directory}", str(exc)
            ) from exc
        return [p for p in entries if p.suffix in SUFFIXES and p.is_file()]

    # -- status ------------------------------------------------------------------

    def _status_path(self, namespace: str, name: str) -> Path:
        # Both were checked as DNS names by get_pod(): no '/', no '..'.
        return self.status_dir / namespace / f"{name}.json"

    def _stored_status(self, namespace: str, name: str, uid: str) -> str | None:
        """The annotation last written for this pod; None if none, or for another uid."""
        path = self._status_path(namespace, name)
        try:
            record = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise IOFailureError(f"cannot read network status {path}", str(exc)) from exc
        if not isinstance(record, dict) or not isinstance(record.get("annotation"), str):
            raise IOFailureError(f"cannot read network status {path}", "not a status record")
        written_for = record.get("uid") or ""
        if uid and written_for and written_for != uid:
            return None  # a pod of the same name from before
        return str(record["annotation"])


@functools.lru_cache(maxsize=64)
def _documents(data: bytes) -> tuple[Any, ...]:
    """The YAML documents of a file's bytes (shared between callers: never mutated)."""
    return tuple(yaml.load_all(data, Loader=_Loader))


def _objects_in(path: Path) -> Iterator[Mapping[str, Any]]:
    """Every object in one file: each document, and each item of a ``kind: List``."""
    try:
        documents = _documents(path.read_bytes())
    except (OSError, yaml.YAMLError, RecursionError) as exc:
        raise DecodingError(f"{path}: not YAML", str(exc).replace("\n", " ")) from exc
    for document in documents:
        if document is None:
            continue
        if not isinstance(document, dict):
            raise DecodingError(f"{path}: not Kubernetes objects", "a document is not an object")
        if document.get("kind") == "List" and isinstance(document.get("items"), list):
            yield from (item for item in document["items"] if isinstance(item, dict))
        else:
            yield document


def _key(obj: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """(kind, namespace, name) of an object this source serves, or None to ignore it."""
    kind = KINDS.get((obj.get("apiVersion"), obj.get("kind")))  # type: ignore[arg-type]
    meta = obj.get("metadata")
    if kind is None or not isinstance(meta, Mapping) or not isinstance(meta.get("name"), str):
        return None
    namespace = meta.get("namespace") or DEFAULT_NAMESPACE
    return (kind, str(namespace), meta["name"])


def _annotations(meta: object, path: Path) -> dict[str, str]:
    annotations = meta.get("annotations") if isinstance(meta, Mapping) else None
    if annotations is None:
        return {}
    if not isinstance(annotations, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
    ):
        raise InvalidConfigError(
            f"invalid Pod in {path}", "metadata.annotations must map strings to strings"
        )
    return dict(annotations)


def _string(value: object) -> str:
    return value if isinstance(value, str) else ""


def _write_atomically(path: Path, data: bytes) -> None:
    """Readers see the old file or the new one, never half of one."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            Path(tmp).replace(path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise IOFailureError(f"cannot write network status {path}", str(exc)) from exc
