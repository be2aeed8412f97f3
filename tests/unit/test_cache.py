"""Tests for multinic.cni.cache: libcni's cniCacheV1 result cache."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time

import pytest

from multinic.cni.cache import (
    CACHE_KIND,
    DEFAULT_CACHE_DIR,
    CachedAttachment,
    ResultCache,
    cached_result,
)
from multinic.cni.errors import CNIError, DecodingError, IncompatibleVersionError, IOFailureError
from multinic.cni.types import Result

CONFIG = b'{"cniVersion":"1.0.0","name":"dbnet","plugins":[{"type":"bridge","bridge":"cni0"}]}'
CONFIG_B64 = (
    "eyJjbmlWZXJzaW9uIjoiMS4wLjAiLCJuYW1lIjoiZGJuZXQiLCJwbHVnaW5zIjpbeyJ0eXBlIjoiYnJpZGdl"
    "IiwiYnJpZGdlIjoiY25pMCJ9XX0="
)

# A 1.0.0 result with its keys in the order libcni writes them in a cache file
# (alphabetical at every level: Go re-encodes the result through a map).
RESULT_1_0 = {
    "cniVersion": "1.0.0",
    "dns": {"nameservers": ["10.1.0.1"]},
    "interfaces": [
        {"mac": "00:11:22:33:44:55", "name": "cni0"},
        {"mac": "99:88:77:66:55:44", "name": "eth0", "sandbox": "/var/run/netns/blue"},
    ],
    "ips": [{"address": "10.1.0.5/16", "gateway": "10.1.0.1", "interface": 1}],
    "routes": [{"dst": "0.0.0.0/0"}],
}
RESULT_1_0_JSON = (
    b'{"cniVersion":"1.0.0","dns":{"nameservers":["10.1.0.1"]},'
    b'"interfaces":[{"mac":"00:11:22:33:44:55","name":"cni0"},'
    b'{"mac":"99:88:77:66:55:44","name":"eth0","sandbox":"/var/run/netns/blue"}],'
    b'"ips":[{"address":"10.1.0.5/16","gateway":"10.1.0.1","interface":1}],'
    b'"routes":[{"dst":"0.0.0.0/0"}]}'
)

FULL_ENTRY = CachedAttachment(
    network_name="dbnet",
    container_id="cnitool-77383ca0a0715733ca6f",
    ifname="eth0",
    config=CONFIG,
    netns="/var/run/netns/blue",
    cni_args=(("IgnoreUnknown", "1"), ("K8S_POD_NAME", "web-0")),
    capability_args={"portMappings": [{"containerPort": 80, "hostPort": 8080, "protocol": "tcp"}]},
    result=RESULT_1_0,
)
FULL_ENTRY_JSON = (
    b'{"kind":"cniCacheV1","containerId":"cnitool-77383ca0a0715733ca6f",'
    b'"config":"' + CONFIG_B64.encode() + b'",'
    b'"ifName":"eth0","networkName":"dbnet","netns":"/var/run/netns/blue",'
    b'"cniArgs":[["IgnoreUnknown","1"],["K8S_POD_NAME","web-0"]],'
    b'"capabilityArgs":{"portMappings":[{"containerPort":80,"hostPort":8080,"protocol":"tcp"}]},'
    b'"result":' + RESULT_1_0_JSON + b"}"
)

# What Debian's libcni 1.1 writes (no netns field), cut from a real cache file's shape.
LIBCNI_1_1_FILE = (
    b'{"kind":"cniCacheV1","containerId":"ctr-1","config":"' + CONFIG_B64.encode() + b'",'
    b'"ifName":"net1","networkName":"dbnet","cniArgs":[["IgnoreUnknown","true"]],'
    b'"result":{"cniVersion":"0.4.0","dns":{},"interfaces":[{"name":"net1",'
    b'"sandbox":"/proc/42/ns/net"}],"ips":[{"address":"192.168.5.3/24","gateway":"192.168.5.1",'
    b'"interface":0,"version":"4"}]}}'
)


def entry(network="dbnet", container_id="ctr1", ifname="eth0", **kwargs) -> CachedAttachment:
    kwargs.setdefault("config", CONFIG)
    kwargs.setdefault("result", RESULT_1_0)
    return CachedAttachment(network, container_id, ifname, **kwargs)


# --- CachedAttachment.to_json --------------------------------------------------------


def test_kind_is_cni_cache_v1():
    assert CACHE_KIND == "cniCacheV1"


def test_to_json_exact_bytes_for_a_full_entry():
    assert FULL_ENTRY.to_json() == FULL_ENTRY_JSON


def test_to_json_key_order_is_libcnis_struct_order():
    keys = list(json.loads(FULL_ENTRY.to_json()))
    assert keys == [
        "kind",
        "containerId",
        "config",
        "ifName",
        "networkName",
        "netns",
        "cniArgs",
        "capabilityArgs",
        "result",
    ]


def test_to_json_leaves_out_empty_optional_fields():
    minimal = CachedAttachment("dbnet", "ctr1", "eth0", CONFIG)
    assert minimal.to_json() == (
        b'{"kind":"cniCacheV1","containerId":"ctr1","config":"'
        + CONFIG_B64.encode()
        + b'","ifName":"eth0","networkName":"dbnet"}'
    )


def test_to_json_config_is_standard_padded_base64():
    data = CachedAttachment("n", "c", "eth0", b"\xfb\xff\xfe").to_json()
    assert json.loads(data)["config"] == "+//+"
    data = CachedAttachment("n", "c", "eth0", b"ab").to_json()
    assert json.loads(data)["config"] == "YWI="


def test_to_json_of_a_runtime_result_matches_libcni_bytes():
    # The runtime caches final.to_dict(); libcni would write the same result sorted.
    result = Result.from_dict(RESULT_1_0).to_dict()
    assert entry(result=result).to_json().endswith(b'"result":' + RESULT_1_0_JSON + b"}")


def test_to_json_of_a_0x_runtime_result_matches_libcni_bytes():
    result = Result.from_dict(RESULT_1_0).convert("0.4.0").to_dict()
    expected = RESULT_1_0_JSON.replace(b'"1.0.0"', b'"0.4.0"').replace(
        b'"interface":1}', b'"interface":1,"version":"4"}'
    )
    assert entry(result=result).to_json().endswith(b'"result":' + expected + b"}")


def test_to_json_writes_capability_args_in_libcni_key_order():
    caps = {
        "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
        "mac": "c2:11:22:33:44:55",
    }
    data = entry(capability_args=caps, result=None).to_json()
    assert data.endswith(
        b'"capabilityArgs":{"mac":"c2:11:22:33:44:55",'
        b'"portMappings":[{"containerPort":80,"hostPort":8080,"protocol":"tcp"}]}}'
    )


def test_to_json_encodes_strings_like_go():
    data = entry(netns="/run/netns/caf\u00e9", cni_args=(("K", "a&b<c>"),), result=None).to_json()
    assert '"netns":"/run/netns/caf\u00e9"'.encode() in data
    assert b'"cniArgs":[["K","a\\u0026b\\u003cc\\u003e"]]' in data


# --- CachedAttachment.from_json ------------------------------------------------------


def test_from_json_round_trips_to_json():
    assert CachedAttachment.from_json(FULL_ENTRY.to_json()) == FULL_ENTRY


def test_from_json_reads_a_libcni_written_file():
    got = CachedAttachment.from_json(LIBCNI_1_1_FILE)
    assert got is not None
    assert got.network_name == "dbnet"
    assert got.container_id == "ctr-1"
    assert got.ifname == "net1"
    assert got.config == CONFIG
    assert got.netns == ""
    assert got.cni_args == (("IgnoreUnknown", "true"),)
    assert dict(got.capability_args) == {}
    assert got.result["cniVersion"] == "0.4.0"
    assert got.result["ips"][0]["address"] == "192.168.5.3/24"


def test_from_json_reads_a_full_libcni_entry():
    got = CachedAttachment.from_json(FULL_ENTRY_JSON)
    assert got.netns == "/var/run/netns/blue"
    assert got.capability_args == {
        "portMappings": [{"containerPort": 80, "hostPort": 8080, "protocol": "tcp"}]
    }
    assert got.result == RESULT_1_0


def test_from_json_null_optional_fields_are_defaults():
    data = (
        b'{"kind":"cniCacheV1","containerId":"c","config":null,"ifName":"eth0",'
        b'"networkName":"n","cniArgs":null,"capabilityArgs":null,"result":null}'
    )
    got = CachedAttachment.from_json(data)
    assert (got.config, got.cni_args, dict(got.capability_args), got.result) == (
        b"",
        (),
        {},
        None,
    )


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"[]",
        b"null",
        RESULT_1_0_JSON,  # a legacy bare result
        FULL_ENTRY_JSON.replace(b"cniCacheV1", b"cniCacheV2"),
        FULL_ENTRY_JSON.replace(b'"kind":"cniCacheV1",', b""),
        FULL_ENTRY_JSON.replace(
            b'"containerId":"cnitool-77383ca0a0715733ca6f"', b'"containerId":7'
        ),
        FULL_ENTRY_JSON.replace(b'"ifName":"eth0"', b'"ifName":["eth0"]'),
        FULL_ENTRY_JSON.replace(CONFIG_B64.encode(), b"not base64!"),
        FULL_ENTRY_JSON.replace(CONFIG_B64.encode(), CONFIG_B64.encode()[:-1]),
        FULL_ENTRY_JSON.replace(b'["IgnoreUnknown","1"]', b'["IgnoreUnknown","1","x"]'),
        FULL_ENTRY_JSON.replace(b'"config":"' + CONFIG_B64.encode() + b'"', b'"config":5'),
    ],
)
def test_from_json_returns_none_for_anything_but_a_valid_v1_entry(data):
    assert CachedAttachment.from_json(data) is None


# --- ResultCache ----------------------------------------------------------------------


def test_default_cache_dir_is_var_lib_cni():
    assert DEFAULT_CACHE_DIR.as_posix() == "/var/lib/cni"
    assert ResultCache().results_dir.as_posix() == "/var/lib/cni/results"


def test_path_is_network_container_ifname_under_results(tmp_path):
    cache = ResultCache(tmp_path)
    assert cache.path("dbnet", "ctr1", "eth0") == tmp_path / "results" / "dbnet-ctr1-eth0"


@pytest.mark.parametrize(
    ("network", "container_id", "ifname"),
    [("", "c", "eth0"), ("n", "", "eth0"), ("n", "c", "")],
)
def test_path_requires_all_three_parts(tmp_path, network, container_id, ifname):
    with pytest.raises(CNIError) as err:
        ResultCache(tmp_path).path(network, container_id, ifname)
    assert err.value.code == 999
    assert err.value.details == f"got {network!r}, {container_id!r}, {ifname!r}"


def test_save_writes_to_json_bytes_at_the_path(tmp_path):
    cache = ResultCache(tmp_path / "cni")
    cache.save(FULL_ENTRY)
    target = tmp_path / "cni" / "results" / "dbnet-cnitool-77383ca0a0715733ca6f-eth0"
    assert target.read_bytes() == FULL_ENTRY_JSON


def test_save_uses_mode_0600_in_a_0700_directory(tmp_path):
    cache = ResultCache(tmp_path / "cni")
    cache.save(entry())
    assert stat.S_IMODE(cache.results_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(cache.path("dbnet", "ctr1", "eth0").stat().st_mode) == 0o600


def test_save_leaves_no_temporary_files(tmp_path):
    cache = ResultCache(tmp_path)
    cache.save(entry())
    cache.save(entry(ifname="net1"))
    assert sorted(p.name for p in cache.results_dir.iterdir()) == [
        "dbnet-ctr1-eth0",
        "dbnet-ctr1-net1",
    ]


def test_save_replaces_an_existing_entry(tmp_path):
    cache = ResultCache(tmp_path)
    cache.save(entry(netns="/var/run/netns/old"))
    cache.save(entry(netns="/var/run/netns/new"))
    assert cache.load("dbnet", "ctr1", "eth0").netns == "/var/run/netns/new"


def test_save_failure_is_an_io_error(tmp_path):
    (tmp_path / "results").write_text("not a directory")
    with pytest.raises(IOFailureError) as err:
        ResultCache(tmp_path).save(entry())
    assert err.value.code == 5
    assert str(tmp_path / "results" / "dbnet-ctr1-eth0") in err.value.msg


#: A writer's file-size limit, far below the big entry's size: the kernel stops the write
#: there and kills the writer with SIGXFSZ, mid-write.
WRITE_LIMIT = 64 * 1024
BIG_ENTRY = entry(config=b"x" * (16 * WRITE_LIMIT))

_DIE_MID_WRITE = f"""
import resource, signal, sys
sys.path[:0] = {sys.path!r}
from pathlib import Path
from tests.unit.test_cache import BIG_ENTRY
from multinic.cni.cache import ResultCache

cache = ResultCache(Path(sys.argv[1]))
resource.setrlimit(resource.RLIMIT_FSIZE, ({WRITE_LIMIT}, {WRITE_LIMIT}))
signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # Python ignores it; the kernel's default kills
cache.save(BIG_ENTRY)
"""


def test_a_writer_killed_mid_write_leaves_the_previous_entry_whole(tmp_path):
    cache = ResultCache(tmp_path)
    cache.save(FULL_ENTRY)
    old = cache.path("dbnet", "cnitool-77383ca0a0715733ca6f", "eth0")
    big = cache.path("dbnet", "ctr1", "eth0")
    cache.save(entry())  # BIG_ENTRY's path holds a small entry: the write replaces it
    before = big.read_bytes()

    done = subprocess.run(
        [sys.executable, "-B", "-c", _DIE_MID_WRITE, str(tmp_path)],
        capture_output=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == -signal.SIGXFSZ, done.stderr  # it died in the write
    assert big.read_bytes() == before  # never a partial file at the entry's path
    assert old.read_bytes() == FULL_ENTRY_JSON
    # What the dead writer left is a temporary file, which readers skip.
    assert [e.container_id for e in cache.attachments()] == [
        "cnitool-77383ca0a0715733ca6f",
        "ctr1",
    ]


def test_a_reader_sees_the_old_or_the_new_entry_never_part_of_one(tmp_path):
    cache = ResultCache(tmp_path)
    versions = [entry(config=fill * (1024 * 1024)) for fill in (b"a", b"b")]
    whole = {v.to_json() for v in versions}
    cache.save(versions[0])
    seen: list[bytes] = []

    def write() -> None:
        for n in range(20):
            cache.save(versions[n % 2])

    writer = threading.Thread(target=write)
    writer.start()
    while writer.is_alive():
        seen.append(cache.load_raw("dbnet", "ctr1", "eth0") or b"")
    writer.join()

    partial = [len(data) for data in seen if data not in whole]
    assert partial == [], f"{len(partial)} of {len(seen)} reads saw part of an entry"


def test_load_returns_what_save_wrote(tmp_path):
    cache = ResultCache(tmp_path)
    cache.save(FULL_ENTRY)
    assert cache.load("dbnet", "cnitool-77383ca0a0715733ca6f", "eth0") == FULL_ENTRY
    assert cache.load_raw("dbnet", "cnitool-77383ca0a0715733ca6f", "eth0") == FULL_ENTRY_JSON


def test_load_of_a_missing_entry_is_none(tmp_path):
    cache = ResultCache(tmp_path)
    assert cache.load("dbnet", "ctr1", "eth0") is None
    assert cache.load_raw("dbnet", "ctr1", "eth0") is None


def test_load_of_a_legacy_file_is_none_but_its_bytes_are_readable(tmp_path):
    cache = ResultCache(tmp_path)
    cache.results_dir.mkdir()
    cache.path("dbnet", "ctr1", "eth0").write_bytes(RESULT_1_0_JSON)
    assert cache.load("dbnet", "ctr1", "eth0") is None
    assert cache.load_raw("dbnet", "ctr1", "eth0") == RESULT_1_0_JSON


def test_remove_deletes_only_that_entry(tmp_path):
    cache = ResultCache(tmp_path)
    cache.save(entry())
    cache.save(entry(ifname="net1"))
    cache.remove("dbnet", "ctr1", "eth0")
    assert cache.load("dbnet", "ctr1", "eth0") is None
    assert cache.load("dbnet", "ctr1", "net1") is not None


def test_remove_of_a_missing_entry_is_quiet(tmp_path):
    ResultCache(tmp_path).remove("dbnet", "ctr1", "eth0")
    assert not (tmp_path / "results").exists()


def test_remove_ignores_other_os_errors(tmp_path):
    # Like libcni's cacheDel: a cache file that cannot be removed does not fail a DEL.
    (tmp_path / "results").write_text("not a directory")
    ResultCache(tmp_path).remove("dbnet", "ctr1", "eth0")
    assert (tmp_path / "results").read_text() == "not a directory"


def write_cache_dir(cache: ResultCache) -> None:
    """Entries of two networks among files that must be skipped."""
    cache.save(entry("netb", "ctr1", "eth0"))
    cache.save(entry("neta", "ctr2", "eth0"))
    cache.save(entry("neta", "ctr1", "net1"))
    results = cache.results_dir
    (results / "neta-junk-eth0").write_bytes(b"{not json")
    (results / "neta-legacy-eth0").write_bytes(RESULT_1_0_JSON)
    (results / "neta-kind-eth0").write_bytes(
        entry("neta", "kind", "eth0").to_json().replace(b"cniCacheV1", b"other")
    )
    (results / "neta-noif-eth0").write_bytes(
        entry("neta", "noif", "eth0").to_json().replace(b'"ifName":"eth0"', b'"ifName":""')
    )
    (results / "neta-dir-eth0").mkdir()
    (results / ".tmp-neta-tmp-eth0-1-abcd").write_bytes(entry("neta", "tmp", "eth0").to_json())


def test_attachments_yields_valid_entries_in_file_name_order(tmp_path):
    cache = ResultCache(tmp_path)
    write_cache_dir(cache)
    got = [(a.network_name, a.container_id, a.ifname) for a in cache.attachments()]
    assert got == [("neta", "ctr1", "net1"), ("neta", "ctr2", "eth0"), ("netb", "ctr1", "eth0")]


def test_attachments_filters_by_network(tmp_path):
    cache = ResultCache(tmp_path)
    write_cache_dir(cache)
    assert [a.container_id for a in cache.attachments("netb")] == ["ctr1"]
    assert [a.container_id for a in cache.attachments("neta")] == ["ctr1", "ctr2"]
    assert list(cache.attachments("netc")) == []


def test_attachments_returns_full_entries(tmp_path):
    cache = ResultCache(tmp_path)
    cache.save(FULL_ENTRY)
    assert list(cache.attachments()) == [FULL_ENTRY]


def test_attachments_of_a_missing_cache_is_empty(tmp_path):
    assert list(ResultCache(tmp_path / "nowhere").attachments()) == []


def test_attachments_of_an_unlistable_cache_is_an_io_error(tmp_path):
    (tmp_path / "results").write_text("not a directory")
    with pytest.raises(IOFailureError) as err:
        list(ResultCache(tmp_path).attachments())
    assert err.value.code == 5


# --- cached_result --------------------------------------------------------------------

EXPECTED_1_0 = Result.from_dict(RESULT_1_0)


def test_cached_result_reads_a_v1_entry():
    got = cached_result(FULL_ENTRY_JSON, "1.0.0")
    assert got == EXPECTED_1_0
    assert got.ips[0].address == ipaddress.IPv4Interface("10.1.0.5/16")


def test_cached_result_converts_to_the_requested_version():
    got = cached_result(FULL_ENTRY_JSON, "0.4.0")
    assert got.cni_version == "0.4.0"
    assert got.to_dict()["ips"][0]["version"] == "4"
    assert got.convert("1.0.0") == EXPECTED_1_0


def test_cached_result_reads_a_libcni_1_1_file():
    got = cached_result(LIBCNI_1_1_FILE, "1.0.0")
    assert got.cni_version == "1.0.0"
    assert got.interfaces[0].sandbox == "/proc/42/ns/net"
    assert got.ips[0].gateway == ipaddress.IPv4Address("192.168.5.1")


def test_cached_result_reads_the_legacy_bare_result_format():
    assert cached_result(RESULT_1_0_JSON, "1.0.0") == EXPECTED_1_0


def test_cached_result_converts_a_legacy_result():
    legacy = json.dumps(EXPECTED_1_0.convert("0.3.1").to_dict()).encode()
    assert cached_result(legacy, "1.0.0") == EXPECTED_1_0


def test_cached_legacy_result_without_a_version_is_read_at_the_requested_one():
    data = dict(RESULT_1_0)
    del data["cniVersion"]
    assert cached_result(json.dumps(data).encode(), "1.0.0") == EXPECTED_1_0


def test_cached_1_1_result_read_at_1_0_0_drops_1_1_fields():
    result = dict(RESULT_1_0, cniVersion="1.1.0")
    result["interfaces"] = [
        RESULT_1_0["interfaces"][0],
        dict(RESULT_1_0["interfaces"][1], mtu=1450),
    ]
    result["routes"] = [{"dst": "0.0.0.0/0", "table": 100}]
    got = cached_result(entry(result=result).to_json(), "1.0.0")
    assert got == EXPECTED_1_0
    assert got.interfaces[1].mtu is None
    assert got.routes[0].table is None


def test_cached_result_at_1_1_0_keeps_1_1_fields():
    result = dict(RESULT_1_0, cniVersion="1.1.0", routes=[{"dst": "0.0.0.0/0", "table": 100}])
    got = cached_result(entry(result=result).to_json(), "1.1.0")
    assert got.routes[0].table == 100


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"garbage",
        b"[]",
        b"null",
        b'"1.0.0"',
        CachedAttachment("n", "c", "eth0", CONFIG).to_json(),  # v1 entry without result
    ],
)
def test_cached_result_without_a_result_is_none(data):
    assert cached_result(data, "1.0.0") is None


def test_cached_result_to_an_unsupported_version_is_code_1():
    with pytest.raises(IncompatibleVersionError) as err:
        cached_result(FULL_ENTRY_JSON, "0.2.0")
    assert err.value.code == 1


def test_cached_result_of_an_unsupported_version_is_code_1():
    data = dict(RESULT_1_0, cniVersion="0.2.0")
    with pytest.raises(IncompatibleVersionError) as err:
        cached_result(entry(result=data).to_json(), "1.0.0")
    assert err.value.code == 1


def test_cached_result_of_a_corrupt_v1_entry_is_an_error_not_an_empty_result():
    # A cniCacheV1 entry with a mistyped field must not pass for a legacy bare result
    # (which would silently lose the real result's addresses).
    data = json.dumps(
        {
            "kind": "cniCacheV1",
            "containerId": 7,
            "ifName": "eth0",
            "networkName": "n",
            "result": {"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24"}]},
        }
    ).encode()
    with pytest.raises(DecodingError) as err:
        cached_result(data, "1.0.0")
    assert err.value.code == 6


def test_listing_reclaims_abandoned_half_written_files_only(tmp_path):
    cache = ResultCache(tmp_path)
    cache.save(CachedAttachment("n", "c", "eth0", b"{}"))
    abandoned = cache.results_dir / ".tmp-n-c-eth0-123-deadbeef"
    fresh = cache.results_dir / ".tmp-n-c2-eth0-124-feedbeef"
    for path in (abandoned, fresh):
        path.write_text("{half")
    an_hour_ago = time.time() - 3600
    os.utime(abandoned, (an_hour_ago, an_hour_ago))

    assert [e.container_id for e in cache.attachments("n")] == ["c"]

    assert not abandoned.exists()
    assert fresh.exists()
