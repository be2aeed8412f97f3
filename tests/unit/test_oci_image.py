"""The OCI image archives the real-node tests import into containerd (tests/support/oci_image.py).

containerd checks every digest on import; these checks catch a wrong one here,
without a runtime.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

from tests.support.oci_image import write_image_archive


def _blob(archive: tarfile.TarFile, descriptor: dict[str, Any]) -> bytes:
    algorithm, digest = descriptor["digest"].split(":")
    member = archive.extractfile(f"blobs/{algorithm}/{digest}")
    assert member is not None
    data = member.read()
    assert hashlib.sha256(data).hexdigest() == digest
    assert len(data) == descriptor["size"]
    return data


def test_an_archive_names_its_image_and_every_digest_matches(tmp_path: Path) -> None:
    tool = tmp_path / "tool"
    tool.write_bytes(b"#!/bin/sh\n")
    path = tmp_path / "image.tar"

    write_image_archive(
        path, "localhost/test/tool:7", {"bin/tool": tool}, {"bin/alias": "tool"}, ["/bin/tool"]
    )

    with tarfile.open(path) as archive:
        assert json.loads(_read(archive, "oci-layout")) == {"imageLayoutVersion": "1.0.0"}
        (descriptor,) = json.loads(_read(archive, "index.json"))["manifests"]
        assert descriptor["annotations"]["io.containerd.image.name"] == "localhost/test/tool:7"
        assert descriptor["annotations"]["org.opencontainers.image.ref.name"] == "7"
        manifest = json.loads(_blob(archive, descriptor))
        config = json.loads(_blob(archive, manifest["config"]))
        layer = _blob(archive, manifest["layers"][0])
    assert config["rootfs"]["diff_ids"] == [f"sha256:{hashlib.sha256(layer).hexdigest()}"]
    assert config["config"]["Entrypoint"] == ["/bin/tool"]
    with tarfile.open(fileobj=io.BytesIO(layer)) as files:
        assert files.getmember("bin").isdir()
        assert files.getmember("bin/tool").mode == 0o755
        assert files.extractfile("bin/tool").read() == b"#!/bin/sh\n"  # type: ignore[union-attr]
        assert files.getmember("bin/alias").linkname == "tool"


def _read(archive: tarfile.TarFile, name: str) -> bytes:
    member = archive.extractfile(name)
    assert member is not None
    return member.read()
