"""OCI image archives made from local files, for runtimes that cannot reach a registry.

:func:`write_image_archive` writes an OCI image layout as one tar (what
``ctr images import`` reads): one uncompressed layer holding the given files
and symlinks, a config with the entrypoint, a manifest, and an index naming
the image. Nothing is pulled from anywhere.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

LAYER = "application/vnd.oci.image.layer.v1.tar"
CONFIG = "application/vnd.oci.image.config.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _add(archive: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    archive.addfile(info, io.BytesIO(data))


def _layer(files: Mapping[str, Path], links: Mapping[str, str]) -> bytes:
    """A tar of ``files`` (path in the image -> file here, executable) and symlinks."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as layer:
        directories = sorted(
            {str(Path(p).parent) for p in [*files, *links] if str(Path(p).parent) != "."}
        )
        for directory in directories:
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            layer.addfile(info)
        for path, source in sorted(files.items()):
            _add(layer, path, source.read_bytes(), 0o755)
        for path, target in sorted(links.items()):
            info = tarfile.TarInfo(path)
            info.type, info.linkname = tarfile.SYMTYPE, target
            layer.addfile(info)
    return buffer.getvalue()


def _blob(archive: tarfile.TarFile, data: bytes, media_type: str) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    _add(archive, f"blobs/sha256/{digest}", data)
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}


def write_image_archive(
    path: Path,
    name: str,
    files: Mapping[str, Path],
    links: Mapping[str, str] | None = None,
    entrypoint: Sequence[str] = (),
) -> None:
    """Write the image ``name`` (``host/repo:tag``) as an OCI layout tar at ``path``."""
    layer = _layer(files, links or {})
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": list(entrypoint), "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(layer).hexdigest()}"]},
    }
    with tarfile.open(path, "w") as archive:
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": _blob(archive, json.dumps(config).encode(), CONFIG),
            "layers": [_blob(archive, layer, LAYER)],
        }
        descriptor = _blob(archive, json.dumps(manifest).encode(), MANIFEST)
        descriptor["annotations"] = {
            "io.containerd.image.name": name,
            "org.opencontainers.image.ref.name": name.rpartition(":")[2],
        }
        descriptor["platform"] = {"architecture": "amd64", "os": "linux"}
        index = {"schemaVersion": 2, "manifests": [descriptor]}
        _add(archive, "index.json", json.dumps(index).encode())
        _add(archive, "oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
