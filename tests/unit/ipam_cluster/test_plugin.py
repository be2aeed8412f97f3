"""multinic-ipam through its CNI entry: config fields, errors, ADD/DEL/CHECK/GC/STATUS."""

from __future__ import annotations

import ipaddress
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from multinic.cni import skel
from multinic.cni.errors import ErrorCode, InvalidConfigError, UnsupportedFieldError
from multinic.ipam import blocks, sqlite_store
from multinic.ipam.store import deadline_after
from multinic.plugins import cluster_ipam
from multinic.plugins.cluster_ipam import PLUGIN, parse_config
from tests.support.etcd_cluster import EtcdCluster, free_port


def conf(tmp_path: Path, **ipam: Any) -> dict[str, Any]:
    section = {"type": "multinic-ipam", "node_name": "node-a", **ipam}
    section.setdefault("store", {"type": "sqlite", "path": str(tmp_path / "ipam.db")})
    return {"cniVersion": "1.1.0", "name": "net1", "type": "macvlan", "ipam": section}


def run(
    command: str,
    config: dict[str, Any],
    cid: str = "c1",
    ifname: str = "net1",
    args: str = "",
) -> tuple[int, dict[str, Any]]:
    env = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": "/var/run/netns/x",
        "CNI_IFNAME": ifname,
        "CNI_PATH": "/opt/cni/bin",
        "CNI_ARGS": args,
    }
    status, out = skel.run(PLUGIN, env, json.dumps(config).encode())
    return status, json.loads(out) if out else {}


def holders(tmp_path: Path) -> list[str]:
    """Every attachment holding an address in the test's SQLite store, as cid/ifname."""
    if not (tmp_path / "ipam.db").exists():
        return []
    store = sqlite_store.SQLiteStore(str(tmp_path / "ipam.db"), read_only=True)
    try:
        found = blocks.scan_attachments(store, deadline_after(5))
    finally:
        store.close()
    return sorted(f"{o.container_id}/{o.ifname}" for o in found)


def rows(tmp_path: Path) -> list[str]:
    path = tmp_path / "ipam.db"
    if not path.exists():
        return []
    with sqlite3.connect(path) as db:
        return [key for (key,) in db.execute("SELECT key FROM kv ORDER BY key")]


# --- config -------------------------------------------------------------------------


def parse(**ipam: Any) -> Any:
    return parse_config({"node_name": "n", **ipam}, "net")


def test_whereabouts_fields_parse_into_pools() -> None:
    config = parse(
        range="192.168.2.225-192.168.2.230/24",
        exclude=["192.168.2.227/32"],
        gateway="192.168.2.1",
        ipRanges=[{"range": "fd00::/64", "range_start": "fd00::10"}],
        network_name="vrf-a",
        routes=[{"dst": "10.0.0.0/8", "gw": "192.168.2.1"}],
        dns={"nameservers": ["192.168.2.53"], "search": ["example"]},
    )
    v4, v6 = config.pools
    assert str(v4.range) == "192.168.2.225-192.168.2.230/24"
    assert v4.range.gateway == ipaddress.ip_address("192.168.2.1")
    assert v4.range.exclude == (ipaddress.ip_network("192.168.2.227/32"),)
    assert v6.range.range_start == ipaddress.ip_address("fd00::10")
    assert (v4.block_prefixlen, v6.block_prefixlen) == (26, 122)
    assert v4.id == "vrf-a/192.168.2.0-24" and v4.protect_overlap
    assert config.routes[0].gw == ipaddress.ip_address("192.168.2.1")
    assert config.dns.nameservers == ("192.168.2.53",)
    assert config.store.type == "sqlite" and config.node == "n"


def test_store_sections_and_whereabouts_etcd_spelling() -> None:
    etcd = parse(range="10.0.0.0/24", store={"type": "etcd", "endpoints": ["a:1", "b:2"]})
    assert etcd.store.type == "etcd" and etcd.store.endpoints == ("a:1", "b:2")
    legacy = parse(range="10.0.0.0/24", datastore="etcd", etcd_host="http://h:2379")
    assert legacy.store.endpoints == ("http://h:2379",)
    assert parse(range="10.0.0.0/24").store.path == "/var/lib/multinic/ipam.db"


def test_block_sizes_and_node_slice_size() -> None:
    assert parse(range="10.0.0.0/24", block_prefix_v4=28).pools[0].block_prefixlen == 28
    assert parse(range="10.0.0.0/24", node_slice_size="/27").pools[0].block_prefixlen == 27
    # A range smaller than a block is one block.
    assert parse(range="10.0.0.0/29").pools[0].block_prefixlen == 29


def test_node_name_from_config_then_nodename_then_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NODENAME", raising=False)
    assert parse_config({"range": "10.0.0.0/24"}, "net").node == os.uname().nodename
    monkeypatch.setenv("NODENAME", "lab-node-2")  # what the node daemon sets
    assert parse_config({"range": "10.0.0.0/24"}, "net").node == "lab-node-2"
    assert parse(range="10.0.0.0/24").node == "n"  # the config's node_name wins
    monkeypatch.setenv("NODENAME", "bad name")
    with pytest.raises(InvalidConfigError, match="node name"):
        parse_config({"range": "10.0.0.0/24"}, "net")


def test_overlapping_ranges_switch() -> None:
    assert not parse(range="10.0.0.0/24", enable_overlapping_ranges=False).pools[0].protect_overlap


@pytest.mark.parametrize(
    ("ipam", "match"),
    [
        ({}, "no range given"),
        ({"range": "10.0.0.0"}, "not a CIDR"),
        ({"range": "10.0.0.0/24", "range_start": "10.1.0.1"}, "not in subnet"),
        ({"range": "10.0.0.0/24", "exclude": "10.0.0.1"}, "must be a list"),
        ({"range": "10.0.0.0/24", "ipRanges": [{"range": "10.0.0.0/25"}]}, "overlaps"),
        ({"range": "10.0.0.0/24", "ipRanges": {}}, "must be a list"),
        ({"range": "10.0.0.0/24", "store": {"type": "redis"}}, "'sqlite', 'etcd' or 'kubernetes'"),
        ({"range": "10.0.0.0/24", "store": {"type": "etcd"}}, "endpoints"),
        ({"range": "10.0.0.0/24", "store": {"timeout": 0, "type": "etcd"}}, "endpoints"),
        ({"range": "10.0.0.0/24", "store": {"deadline": -1}}, "positive"),
        ({"range": "10.0.0.0/24", "store": []}, "must be an object"),
        ({"range": "10.0.0.0/24", "store": {"path": "/tmp/\0"}}, "NUL"),
        ({"range": "10.0.0.0/24", "store": {"path": "ipam.db"}}, "absolute path"),
        ({"range": "10.0.0.0/24", "block_prefix_v4": 33}, "prefix length"),
        ({"range": "10.0.0.0/24", "node_slice_size": "/x"}, "node_slice_size"),
        ({"range": "10.0.0.0/24", "enable_overlapping_ranges": "yes"}, "true or false"),
        ({"range": "10.0.0.0/24", "routes": [{"gw": "10.0.0.1"}]}, "dst"),
        ({"range": "10.0.0.0/24", "dns": {"nameservers": "1.1.1.1"}}, "must be strings"),
        ({"range": "10.0.0.0/24", "network_name": "a/b"}, "network_name"),
        ({"range": "10.0.0.0/24", "node_name": "bad name"}, "node name"),
        ({"range": "10.0.0.0/24", "datastore": "etcd"}, "etcd_host"),
    ],
)
def test_bad_config_is_a_clear_code_7(ipam: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidConfigError, match=match) as caught:
        parse_config({"node_name": "n", **ipam}, "net")
    assert caught.value.code == ErrorCode.INVALID_NETWORK_CONFIG


@pytest.mark.parametrize(
    "field",
    [
        "datastore",
        "addresses",
    ],
)
def test_unsupported_whereabouts_fields_are_code_2_not_ignored(field: str) -> None:
    value = "consul" if field == "datastore" else "x"
    with pytest.raises(UnsupportedFieldError) as caught:
        parse(range="10.0.0.0/24", **{field: value})
    assert caught.value.code == ErrorCode.UNSUPPORTED_FIELD


def test_etcd_tls_and_auth_in_both_spellings() -> None:
    files = {"ca_file": "/p/ca.crt", "cert_file": "/p/c.crt", "key_file": "/p/c.key"}
    ours = parse(
        range="10.0.0.0/24",
        store={"type": "etcd", "endpoints": ["https://e:2379"], "username": "u", "password": "p"}
        | files,
    )
    assert dict(ours.store.security) == {**files, "username": "u", "password": "p"}
    theirs = parse(
        range="10.0.0.0/24",
        datastore="etcd",
        etcd_host="e:2379",
        etcd_ca_cert_file="/p/ca.crt",
        etcd_username="u",
        etcd_password="p",  # noqa: S106 - a test value
    )
    assert dict(theirs.store.security) == {"ca_file": "/p/ca.crt", "username": "u", "password": "p"}
    with pytest.raises(InvalidConfigError, match="absolute path"):
        parse(range="10.0.0.0/24", datastore="etcd", etcd_host="e", etcd_key_file="c.key")


def test_kubernetes_store_in_both_spellings() -> None:
    ours = parse(
        range="10.0.0.0/24",
        store={"type": "kubernetes", "kubeconfig": "/etc/k.conf", "timeout": 3, "scope": "s1"},
    )
    assert ours.store.type == "kubernetes" and ours.store.kubeconfig == "/etc/k.conf"
    assert ours.store.timeout == 3.0 and ours.store.scope == "s1"
    # Whereabouts' spelling, with or without its datastore field.
    for extra in ({}, {"datastore": "kubernetes"}):
        theirs = parse(range="10.0.0.0/24", kubernetes={"kubeconfig": "/etc/k.conf"}, **extra)
        assert theirs.store.type == "kubernetes" and theirs.store.kubeconfig == "/etc/k.conf"
    # datastore: kubernetes alone is the pod's service account (in-cluster).
    alone = parse(range="10.0.0.0/24", datastore="kubernetes")
    assert alone.store.type == "kubernetes" and alone.store.kubeconfig is None


@pytest.mark.parametrize(
    ("ipam", "match"),
    [
        ({"store": {"type": "kubernetes", "kubeconfig": "k.conf"}}, "absolute path"),
        ({"store": {"type": "kubernetes", "kubeconfig": 5}}, "kubeconfig must be a string"),
        ({"kubernetes": "/etc/k.conf"}, "kubernetes must be an object"),
    ],
)
def test_bad_kubernetes_store_config_is_code_7(ipam: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidConfigError, match=match) as caught:
        parse_config({"node_name": "n", "range": "10.0.0.0/24", **ipam}, "net")
    assert caught.value.code == ErrorCode.INVALID_NETWORK_CONFIG


def test_whereabouts_flat_file_gives_defaults_under_the_ipam_fields(tmp_path: Path) -> None:
    flat = tmp_path / "whereabouts.conf"
    flat.write_text(json.dumps({"range": "10.9.9.0/24", "gateway": "10.32.0.1"}))
    config = conf(tmp_path, range="10.32.0.0/24", configuration_path=str(flat))
    status, result = run("ADD", config)
    assert status == 0, result
    assert result["ips"][0] == {"address": "10.32.0.2/24", "gateway": "10.32.0.1"}
    config["ipam"]["configuration_path"] = str(tmp_path / "missing.conf")
    status, error = run("ADD", config, cid="c2")
    assert status == 1 and error["code"] == ErrorCode.INVALID_NETWORK_CONFIG
    assert "configuration_path" in error["msg"]


def test_kubernetes_store_with_a_missing_kubeconfig_is_code_7_without_traceback(
    tmp_path: Path,
) -> None:
    config = conf(tmp_path, range="10.31.0.0/24")
    config["ipam"]["store"] = {"type": "kubernetes", "kubeconfig": str(tmp_path / "none")}
    status, error = run("ADD", config)
    assert status == 1 and error["code"] == ErrorCode.INVALID_NETWORK_CONFIG, error
    assert "kubeconfig" in error["msg"] and "Traceback" not in json.dumps(error)


# --- verbs ------------------------------------------------------------------------------


def test_add_returns_addresses_gateway_routes_and_dns(tmp_path: Path) -> None:
    config = conf(
        tmp_path,
        range="10.30.0.0/24",
        gateway="10.30.0.1",
        ipRanges=[{"range": "fd30::/64"}],
        routes=[{"dst": "0.0.0.0/0", "gw": "10.30.0.1"}],
        dns={"nameservers": ["10.30.0.53"]},
    )
    status, result = run("ADD", config)
    assert status == 0, result
    assert result["ips"] == [
        {"address": "10.30.0.2/24", "gateway": "10.30.0.1"},
        {"address": "fd30::1/64"},
    ]
    assert result["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.30.0.1"}]
    assert result["dns"] == {"nameservers": ["10.30.0.53"]}
    assert run("ADD", config) == (0, result)  # idempotent
    assert run("CHECK", {**config, "prevResult": result})[0] == 0


def test_add_answers_in_the_configs_version(tmp_path: Path) -> None:
    config = {**conf(tmp_path, range="10.31.0.0/24"), "cniVersion": "0.3.1"}
    status, result = run("ADD", config)
    assert status == 0 and result["cniVersion"] == "0.3.1"
    assert result["ips"] == [{"version": "4", "address": "10.31.0.1/24"}]


def test_requested_addresses_by_capability_and_by_cni_args(tmp_path: Path) -> None:
    base = conf(tmp_path, range="10.32.0.0/24", ipRanges=[{"range": "fd32::/64"}])
    with_cap = {**base, "runtimeConfig": {"ips": ["10.32.0.50/24"]}}
    status, result = run("ADD", with_cap, cid="cap")
    assert status == 0 and result["ips"][0]["address"] == "10.32.0.50/24"
    status, result = run("ADD", base, cid="arg", args="IgnoreUnknown=1;IP=10.32.0.60,fd32::60")
    assert status == 0
    assert [ip["address"] for ip in result["ips"]] == ["10.32.0.60/24", "fd32::60/64"]
    with_args = {**base, "args": {"cni": {"ips": ["10.32.0.70"]}}}
    status, result = run("ADD", with_args, cid="conv")
    assert status == 0 and result["ips"][0]["address"] == "10.32.0.70/24"


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ("IP=10.33.0.50", "not available"),
        ("IP=10.99.0.1", "not in any configured range"),
        ("IP=10.33.0.7,10.33.0.8", "same range"),
        ("IP=banana", "not an IP address"),
    ],
)
def test_refused_requested_addresses_leave_nothing_behind(
    tmp_path: Path, args: str, match: str
) -> None:
    config = conf(tmp_path, range="10.33.0.0/24")
    assert run("ADD", config, cid="holder", args="IP=10.33.0.50")[0] == 0
    before = rows(tmp_path)
    status, error = run("ADD", config, cid="refused", args=args)
    assert status == 1 and match in f"{error['msg']}: {error.get('details', '')}"
    assert rows(tmp_path) == before


def test_bad_config_leaves_no_state(tmp_path: Path) -> None:
    status, error = run("ADD", conf(tmp_path, range="10.34.0.0/33"))
    assert status == 1 and error["code"] == ErrorCode.INVALID_NETWORK_CONFIG
    assert not (tmp_path / "ipam.db").exists()


def test_del_releases_and_del_of_unknown_succeeds(tmp_path: Path) -> None:
    config = conf(tmp_path, range="10.35.0.0/24")
    assert run("DEL", config, cid="never-added") == (0, {})
    run("ADD", config)
    assert run("DEL", config) == (0, {})
    assert run("DEL", config) == (0, {})
    status, error = run("CHECK", config)
    assert status == 1 and error["code"] == ErrorCode.UNKNOWN_CONTAINER
    assert holders(tmp_path) == []


def test_del_needs_only_the_store_so_a_broken_range_does_not_block_it(tmp_path: Path) -> None:
    config = conf(tmp_path, range="10.35.1.0/24")
    assert run("ADD", config)[0] == 0
    broken = conf(tmp_path, range="10.35.1.0/33", node_name="bad name")
    assert run("ADD", broken)[1]["code"] == ErrorCode.INVALID_NETWORK_CONFIG
    assert holders(tmp_path) == ["c1/net1"]
    assert run("DEL", broken) == (0, {})
    assert holders(tmp_path) == []
    # The store itself is still read: a broken store section is an error.
    status, error = run("DEL", conf(tmp_path, range="10.35.1.0/24", store={"type": "redis"}))
    assert status == 1 and error["code"] == ErrorCode.INVALID_NETWORK_CONFIG


def test_check_notices_a_prev_result_that_disagrees(tmp_path: Path) -> None:
    config = conf(tmp_path, range="10.36.0.0/24")
    run("ADD", config)
    stale = {"cniVersion": "1.1.0", "ips": [{"address": "10.36.0.99/24"}]}
    status, error = run("CHECK", {**config, "prevResult": stale})
    assert status == 1 and "not in prevResult" in error["msg"]


def test_gc_releases_everything_not_in_valid_attachments(tmp_path: Path) -> None:
    config = conf(tmp_path, range="10.37.0.0/24")
    for cid in ("keep", "leak1", "leak2"):
        assert run("ADD", config, cid=cid)[0] == 0
    # No list from the runtime: nothing is released.
    assert run("GC", config, cid="", ifname="") == (0, {})
    assert holders(tmp_path) == ["keep/net1", "leak1/net1", "leak2/net1"]
    valid = {"cni.dev/valid-attachments": [{"containerID": "keep", "ifname": "net1"}]}
    assert run("GC", {**config, **valid}, cid="", ifname="") == (0, {})
    assert holders(tmp_path) == ["keep/net1"]


def test_status_reports_an_unreachable_store_as_code_50(tmp_path: Path) -> None:
    dead = {"type": "etcd", "endpoints": [f"127.0.0.1:{free_port()}"], "deadline": 0.3}
    status, error = run("STATUS", conf(tmp_path, range="10.38.0.0/24", store=dead), "", "")
    assert status == 1 and error["code"] == ErrorCode.PLUGIN_NOT_AVAILABLE
    assert run("STATUS", conf(tmp_path, range="10.38.0.0/24"), "", "") == (0, {})


def test_add_with_no_store_reachable_is_code_11(tmp_path: Path) -> None:
    dead = {"type": "etcd", "endpoints": [f"127.0.0.1:{free_port()}"], "deadline": 0.3}
    status, error = run("ADD", conf(tmp_path, range="10.39.0.0/24", store=dead))
    assert status == 1 and error["code"] == ErrorCode.TRY_AGAIN_LATER
    status, error = run("DEL", conf(tmp_path, range="10.39.0.0/24", store=dead))
    assert status == 1 and error["code"] == ErrorCode.TRY_AGAIN_LATER


def test_exhausted_range_is_code_100(tmp_path: Path) -> None:
    config = conf(tmp_path, range="10.40.0.0/30")  # .1 and .2
    assert run("ADD", config, cid="a")[0] == 0
    assert run("ADD", config, cid="b")[0] == 0
    status, error = run("ADD", config, cid="c")
    assert status == 1 and error["code"] == 100


def test_add_on_etcd_member(tmp_path: Path, etcd_member: EtcdCluster) -> None:
    store = {"type": "etcd", "endpoints": etcd_member.endpoints, "prefix": "/plugin-test/"}
    config = conf(tmp_path, range="10.41.0.0/24", store=store)
    status, result = run("ADD", config)
    assert status == 0 and result["ips"] == [{"address": "10.41.0.1/24"}]
    assert run("DEL", config) == (0, {})


def test_in_one_process_calls_share_an_open_etcd_store(
    tmp_path: Path, etcd_member: EtcdCluster
) -> None:
    # The node daemon calls the plugin in-process: its stores stay open between calls.
    store = {"type": "etcd", "endpoints": etcd_member.endpoints, "prefix": "/pool-test/"}
    config = conf(tmp_path, range="10.41.1.0/24", store=store)
    key = parse_config(config["ipam"], "net1").store
    try:
        assert run("ADD", config, cid="a")[0] == 0
        (kept,) = cluster_ipam._idle[key]
        assert run("ADD", config, cid="b")[0] == 0 and cluster_ipam._idle[key] == [kept]
        assert run("DEL", config, cid="a") == run("DEL", config, cid="b") == (0, {})
    finally:
        for idle in cluster_ipam._idle.pop(key, []):
            idle.close()


def test_store_error_is_a_cni_error_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    config = conf(tmp_path, range="10.42.0.0/24", store={"path": str(tmp_path / "file" / "db")})
    status, error = run("ADD", config)
    assert status == 1 and error["code"] == ErrorCode.IO_FAILURE
    assert "cannot open" in error["msg"]


def test_plugin_processes_sharing_one_sqlite_file_never_collide(tmp_path: Path) -> None:
    """Four processes (a node's concurrent CNI calls) ADD into one database at once."""
    config = conf(tmp_path, range="10.43.0.0/24", block_prefix_v4=28)
    script = (
        "import json, sys\n"
        "from multinic.cni import skel\n"
        "from multinic.plugins.cluster_ipam import PLUGIN\n"
        "tag, stdin = sys.argv[1], sys.argv[2].encode()\n"
        "for n in range(15):\n"
        "    env = dict(CNI_COMMAND='ADD', CNI_CONTAINERID=f'{tag}-{n}', CNI_NETNS='/x',\n"
        "               CNI_IFNAME='net1', CNI_PATH='/x')\n"
        "    status, out = skel.run(PLUGIN, env, stdin)\n"
        "    print(json.dumps([status, json.loads(out)]), flush=True)\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, f"p{n}", json.dumps(config)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    outputs = [proc.communicate(timeout=120)[0] for proc in procs]
    answers = [json.loads(line) for out in outputs for line in out.splitlines()]
    failures = [answer for status, answer in answers if status != 0]
    assert failures == []
    assert len(answers) == 60
    addresses = [result["ips"][0]["address"] for _, result in answers]
    assert len(set(addresses)) == 60


def test_a_database_held_locked_past_the_open_timeout_is_code_11(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_store, "_OPEN_TIMEOUT", 0.3)
    blocker = sqlite3.connect(tmp_path / "ipam.db", isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")  # another process holding the fresh file
        status, out = run("ADD", conf(tmp_path, range="10.0.0.0/24"))
        assert (status, out["code"]) == (1, ErrorCode.TRY_AGAIN_LATER), out
        assert "busy" in out["details"]
    finally:
        blocker.close()
    assert run("ADD", conf(tmp_path, range="10.0.0.0/24"))[0] == 0
