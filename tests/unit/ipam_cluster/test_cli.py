"""``multinic ipam``: ls, usage, show, release, gc over a store the plugin filled."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from multinic.cli.main import cli
from tests.support.etcd_cluster import EtcdCluster
from tests.unit.ipam_cluster.test_plugin import conf, run

POOL = "_/10.50.0.0-24"


def fill(tmp_path: Path, count: int, **ipam: Any) -> dict[str, Any]:
    config = conf(tmp_path, range="10.50.0.0/24", block_prefix_v4=28, **ipam)
    for n in range(count):
        status, out = run("ADD", config, cid=f"c{n}")
        assert status == 0, out
    return config


def ipam(tmp_path: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["ipam", "--db", str(tmp_path / "ipam.db"), *args])


def test_ls_and_usage_report_how_full_each_pool_is(tmp_path: Path) -> None:
    fill(tmp_path, 20)
    done = ipam(tmp_path, "ls", "--json")
    assert done.exit_code == 0, done.output
    (pool,) = json.loads(done.output)
    assert pool["pool"] == POOL and pool["used"] == 20 and pool["capacity"] == 254
    assert pool["blocks"] == 2 and pool["nodes"] == ["node-a"]
    assert pool["block_prefixlen"] == 28
    assert json.loads(ipam(tmp_path, "usage", "--json").output) == [pool]
    table = ipam(tmp_path, "ls")
    assert table.exit_code == 0 and "IPAM pools" in table.output and "254" in table.output
    bars = ipam(tmp_path, "usage")
    assert bars.exit_code == 0 and "IPAM utilisation" in bars.output and "20/254" in bars.output


def test_show_lists_blocks_and_addresses(tmp_path: Path) -> None:
    fill(tmp_path, 16)
    done = ipam(tmp_path, "show", POOL, "--json")
    assert done.exit_code == 0, done.output
    doc = json.loads(done.output)
    assert doc["block_list"] == [
        {"block": "10.50.0.0/28", "node": "node-a", "used": 15},
        {"block": "10.50.0.16/28", "node": "node-a", "used": 1},
    ]
    assert doc["addresses"][0] == {
        "address": "10.50.0.1",
        "block": "10.50.0.0/28",
        "node": "node-a",
        "network": "net1",
        "containerID": "c0",
        "ifname": "net1",
    }
    human = ipam(tmp_path, "show", POOL)
    assert human.exit_code == 0 and "10.50.0.16/28" in human.output
    missing = ipam(tmp_path, "show", "_/192.0.2.0-24")
    assert missing.exit_code == 1 and "no pool" in missing.output


def test_release_frees_one_attachment(tmp_path: Path) -> None:
    fill(tmp_path, 3)
    done = ipam(tmp_path, "release", "net1", "c1", "net1", "--json")
    assert json.loads(done.output) == {"released": ["10.50.0.2"], "dry_run": False}
    again = ipam(tmp_path, "release", "net1", "c1", "net1")
    assert again.exit_code == 1 and "no attachment c1/net1: nothing released" in again.output
    assert json.loads(ipam(tmp_path, "ls", "--json").output)[0]["used"] == 2


def test_gc_releases_unkept_attachments_and_gives_back_empty_blocks(tmp_path: Path) -> None:
    fill(tmp_path, 20)
    done = ipam(tmp_path, "gc", "--network", "net1", "--keep", "c3/net1", "--json")
    assert done.exit_code == 0, done.output
    assert len(json.loads(done.output)["released"]) == 19
    blocks = ipam(tmp_path, "gc", "--empty-blocks", "--json")
    assert json.loads(blocks.output) == {
        "released": [],
        "blocks": [f"{POOL} 10.50.0.16/28"],
        "dry_run": False,
    }
    (pool,) = json.loads(ipam(tmp_path, "ls", "--json").output)
    assert pool["used"] == 1 and pool["blocks"] == 1


def test_gc_needs_something_to_do_and_keep_needs_its_form(tmp_path: Path) -> None:
    fill(tmp_path, 1)
    assert ipam(tmp_path, "gc").exit_code == 2
    bad = ipam(tmp_path, "gc", "--network", "net1", "--keep", "c0")
    assert bad.exit_code == 2 and "CONTAINER_ID/IFNAME" in bad.output
    assert json.loads(ipam(tmp_path, "ls", "--json").output)[0]["used"] == 1


def test_a_missing_database_is_a_clear_error(tmp_path: Path) -> None:
    done = ipam(tmp_path, "ls")
    assert done.exit_code == 1 and "no IPAM database" in done.output


def test_the_cli_reads_etcd_too(tmp_path: Path, etcd_member: EtcdCluster) -> None:
    store = {"type": "etcd", "endpoints": etcd_member.endpoints, "prefix": "/cli-test/"}
    config = conf(tmp_path, range="10.51.0.0/24", store=store)
    assert run("ADD", config)[0] == 0
    args = ["ipam", "--etcd", etcd_member.endpoints[0], "--prefix", "/cli-test/", "ls", "--json"]
    done = CliRunner().invoke(cli, args)
    assert done.exit_code == 0, done.output
    assert [p["pool"] for p in json.loads(done.output)] == ["_/10.51.0.0-24"]
