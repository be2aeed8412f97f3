"""The attachment records: what ADD wrote is what DEL reads, and a broken one never sticks a pod."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from multinic.cni.errors import CNIError
from multinic.meta.records import PodAttachment, PodRecord, PodRef, RecordStore


def record(cid: str = "c1") -> PodRecord:
    return PodRecord(
        cid,
        "/var/run/netns/p",
        PodRef("ns", "pod", "uid"),
        (
            PodAttachment("cluster", "eth0", b'{"name": "cluster"}', default=True),
            PodAttachment(
                "ns/data",
                "net1",
                b'{"name": "data"}',
                (("K", "V"),),
                {"ips": ["10.0.0.5/24"]},
                gateways=("10.0.0.1",),
            ),
        ),
    )


def test_a_record_reads_back_as_written_and_is_private(tmp_path: Path) -> None:
    store = RecordStore(tmp_path)
    store.save(record())
    assert store.load("c1") == record()
    assert stat.S_IMODE(store.path("c1").stat().st_mode) == 0o600
    assert stat.S_IMODE(store.directory.stat().st_mode) == 0o700
    assert list(store.container_ids()) == ["c1"]
    store.remove("c1")
    store.remove("c1")  # again: nothing to remove is fine
    assert store.load("c1") is None


@pytest.mark.parametrize("garbage", [b"", b"{not json", b"[]", b'{"containerId": "c1"}'])
def test_a_corrupt_record_is_moved_aside_not_fatal(tmp_path: Path, garbage: bytes) -> None:
    store = RecordStore(tmp_path)
    store.save(record())
    store.path("c1").write_bytes(garbage)

    assert store.load("c1") is None  # so DEL succeeds instead of failing for ever
    assert not store.path("c1").exists()
    assert (store.directory / "c1.json.corrupt").read_bytes() == garbage
    assert list(store.container_ids()) == []


@pytest.mark.parametrize("cid", ["../x", "a/b", ""])
def test_a_container_id_that_is_not_a_file_name_is_refused(tmp_path: Path, cid: str) -> None:
    with pytest.raises(CNIError, match="container"):
        RecordStore(tmp_path).path(cid)
