"""multinic-host-local called in-process through skel.run, on a real data dir in tmp_path."""

from __future__ import annotations

import ipaddress
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from multinic.cni import skel
from multinic.cni.errors import ErrorCode
from multinic.ipam.allocator import CODE_EXHAUSTED, CODE_UNAVAILABLE
from multinic.plugins.host_local import PLUGIN


def conf(data_dir: Path, ranges: list[Any], version: str = "1.1.0", **extra: Any) -> dict[str, Any]:
    ipam = {"type": "multinic-host-local", "dataDir": str(data_dir), "ranges": ranges}
    ipam.update(extra.pop("ipam", {}))
    return {"cniVersion": version, "name": "net1", "type": "bridge", "ipam": ipam, **extra}


def call(
    command: str, config: dict[str, Any], cid: str = "c1", ifname: str = "eth0", args: str = ""
) -> tuple[int, Any]:
    env = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": "/var/run/netns/x",
        "CNI_IFNAME": ifname,
        "CNI_PATH": "/usr/lib/cni",
        "CNI_ARGS": args,
    }
    status, out = skel.run(PLUGIN, env, json.dumps(config).encode())
    return status, json.loads(out) if out else None


def ok(command: str, config: dict[str, Any], **kw: Any) -> Any:
    status, out = call(command, config, **kw)
    assert status == 0, out
    return out


def addresses(result: Any) -> list[str]:
    return [ip["address"] for ip in result["ips"]]


def files(data_dir: Path) -> dict[str, bytes]:
    net = data_dir / "net1"
    return {p.name: p.read_bytes() for p in net.iterdir()} if net.exists() else {}


V4 = [[{"subnet": "10.1.0.0/24"}]]


def test_add_writes_the_reference_layout(tmp_path: Path) -> None:
    config = conf(tmp_path, [*V4, [{"subnet": "2001:db8::/64", "rangeStart": "2001:db8::10"}]])
    result = ok("ADD", config, cid="abc")
    assert result["ips"] == [
        {"address": "10.1.0.2/24", "gateway": "10.1.0.1"},
        {"address": "2001:db8::10/64", "gateway": "2001:db8::1"},
    ]
    assert "interfaces" not in result and "interface" not in result["ips"][0]
    on_disk = files(tmp_path)
    assert on_disk == {
        "10.1.0.2": b"abc\r\neth0",
        "2001:db8::10": b"abc\r\neth0",
        "last_reserved_ip.0": b"10.1.0.2",
        "last_reserved_ip.1": b"2001:db8::10",
        "lock": b"",
    }
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "net1" / "lock").stat().st_mode & 0o777 == 0o750 & ~umask
    assert (tmp_path / "net1" / "10.1.0.2").stat().st_mode & 0o777 == 0o644 & ~umask


def test_repeated_add_returns_the_same_addresses(tmp_path: Path) -> None:
    config = conf(tmp_path, V4)
    first = ok("ADD", config)
    assert ok("ADD", config) == first
    assert sorted(files(tmp_path)) == ["10.1.0.2", "last_reserved_ip.0", "lock"]


def test_round_robin_continues_after_the_last_reserved_and_wraps(tmp_path: Path) -> None:
    config = conf(tmp_path, [[{"subnet": "10.1.0.0/29", "exclude": ["10.1.0.4"]}]])
    got = [addresses(ok("ADD", config, cid=f"c{n}"))[0] for n in range(3)]
    assert got == ["10.1.0.2/29", "10.1.0.3/29", "10.1.0.5/29"]
    ok("DEL", config, cid="c0")
    assert addresses(ok("ADD", config, cid="c3")) == ["10.1.0.6/29"]
    assert addresses(ok("ADD", config, cid="c4")) == ["10.1.0.2/29"]  # wrapped round
    status, err = call("ADD", config, cid="c5")
    assert status == 1 and err["code"] == CODE_EXHAUSTED
    assert err["msg"].startswith("failed to allocate for range 0: no IP addresses available")


def test_requested_addresses_from_args_capability_and_config_args(tmp_path: Path) -> None:
    dual = [*V4, [{"subnet": "fd00::/64"}]]
    assert addresses(
        ok("ADD", conf(tmp_path, dual), cid="a", args="IgnoreUnknown=1;IP=10.1.0.77")
    ) == [
        "10.1.0.77/24",
        "fd00::2/64",
    ]
    runtime = conf(tmp_path, dual, runtimeConfig={"ips": ["fd00::99/64", "10.1.0.99"]})
    assert addresses(ok("ADD", runtime, cid="b")) == ["10.1.0.99/24", "fd00::99/64"]
    in_args = conf(tmp_path, dual, args={"cni": {"ips": ["10.1.0.55"]}})
    assert addresses(ok("ADD", in_args, cid="c"))[0] == "10.1.0.55/24"


@pytest.mark.parametrize(
    ("ip", "words"),
    [
        ("10.1.0.1", "is the gateway"),
        ("10.1.0.201", "is reserved"),
        ("10.1.0.255", "failed to allocate all requested IPs: 10.1.0.255"),
        ("10.1.0.2", "is not available"),
        ("10.2.0.5", "failed to allocate all requested IPs: 10.2.0.5"),
    ],
)
def test_unavailable_requested_addresses_fail_and_leave_nothing(
    tmp_path: Path, ip: str, words: str
) -> None:
    ranges = [[{"subnet": "10.1.0.0/24", "exclude": ["10.1.0.200/30"]}], [{"subnet": "fd00::/64"}]]
    config = conf(tmp_path, ranges)
    ok("ADD", config, cid="first")
    before = files(tmp_path)
    status, err = call("ADD", config, cid="second", args=f"IP={ip}")
    assert status == 1 and err["code"] == CODE_UNAVAILABLE
    assert words in err["msg"] + err.get("details", "")
    assert files(tmp_path) == before  # nothing reserved, cursors as they were


def test_a_failing_second_range_set_rolls_back_the_first(tmp_path: Path) -> None:
    config = conf(tmp_path, [*V4, [{"subnet": "fd00::/126"}]])  # fd00::2 and ::3 only
    ok("ADD", config, cid="a")
    ok("ADD", config, cid="b")
    before = files(tmp_path)
    status, err = call("ADD", config, cid="c")
    assert status == 1 and err["code"] == CODE_EXHAUSTED and "range 1" in err["msg"]
    assert files(tmp_path) == before


def test_rollback_removes_a_cursor_file_the_failed_add_created(tmp_path: Path) -> None:
    config = conf(tmp_path, [*V4, [{"subnet": "fd00::/64"}]])
    status, _ = call("ADD", config, args="IP=10.1.0.7,fd00::1")  # fd00::1 is the gateway
    assert status == 1
    assert files(tmp_path) == {"lock": b""}


def test_del_releases_the_attachment_only_and_twice_is_fine(tmp_path: Path) -> None:
    config = conf(tmp_path, V4)
    ok("ADD", config, cid="a")
    ok("ADD", config, cid="a", ifname="net2")
    ok("DEL", config, cid="a")
    assert files(tmp_path)["10.1.0.3"] == b"a\r\nnet2"
    assert "10.1.0.2" not in files(tmp_path)
    ok("DEL", config, cid="a")
    ok("DEL", config, cid="never-added")


def test_del_without_a_data_dir_creates_nothing(tmp_path: Path) -> None:
    ok("DEL", conf(tmp_path / "absent", V4))
    assert not (tmp_path / "absent").exists()


def test_del_works_with_ranges_edited_into_nonsense(tmp_path: Path) -> None:
    ok("ADD", conf(tmp_path, V4))
    ok("DEL", conf(tmp_path, [[{"subnet": "bogus"}]]))
    assert "10.1.0.2" not in files(tmp_path)


def test_old_format_files_belong_to_the_container(tmp_path: Path) -> None:
    config = conf(tmp_path, V4)
    ok("ADD", config, cid="new")  # creates the directory
    (tmp_path / "net1" / "10.1.0.50").write_bytes(b"old\n")
    ok("CHECK", config, cid="old", ifname="eth3")
    ok("GC", {**config, "cni.dev/valid-attachments": [{"containerID": "old", "ifname": "x"}]})
    assert sorted(files(tmp_path)) == ["10.1.0.50", "last_reserved_ip.0", "lock"]
    ok("DEL", config, cid="old", ifname="eth3")
    assert sorted(files(tmp_path)) == ["last_reserved_ip.0", "lock"]


def test_check_fails_for_an_attachment_without_addresses(tmp_path: Path) -> None:
    config = conf(tmp_path, [*V4, [{"subnet": "fd00::/64"}]])
    ok("ADD", config)
    ok("CHECK", config)
    status, err = call("CHECK", config, ifname="eth1")
    assert status == 1 and err["code"] == ErrorCode.UNKNOWN_CONTAINER
    (tmp_path / "net1" / "fd00::2").unlink()
    status, err = call("CHECK", config)
    assert status == 1 and "range set 1" in err["details"]


def test_gc_releases_everything_not_valid(tmp_path: Path) -> None:
    config = conf(tmp_path, V4)
    for cid in ("a", "b", "c"):
        ok("ADD", config, cid=cid)
    valid = [{"containerID": "b", "ifname": "eth0"}, {"containerID": "a", "ifname": "eth9"}]
    ok("GC", {**config, "cni.dev/valid-attachments": valid})
    assert {k: v for k, v in files(tmp_path).items() if k.startswith("10.")} == {
        "10.1.0.3": b"b\r\neth0"
    }
    ok("GC", {**config, "cni.dev/valid-attachments": []})
    assert sorted(files(tmp_path)) == ["last_reserved_ip.0", "lock"]


def test_gc_without_the_valid_list_refuses(tmp_path: Path) -> None:
    config = conf(tmp_path, V4)
    ok("ADD", config)
    status, err = call("GC", config)
    assert status == 1 and err["code"] == ErrorCode.INVALID_NETWORK_CONFIG
    assert "10.1.0.2" in files(tmp_path)


def test_status_reports_an_exhausted_range_set(tmp_path: Path) -> None:
    config = conf(tmp_path, [*V4, [{"subnet": "fd00::/126"}]])
    ok("STATUS", config)
    ok("ADD", config, cid="a")
    ok("ADD", config, cid="b")
    status, err = call("STATUS", config)
    assert status == 1 and err["code"] == ErrorCode.PLUGIN_NOT_AVAILABLE
    assert "range set 1" in err["details"] and "no free address" in err["details"]


def test_status_reports_a_data_dir_that_cannot_be_made(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    status, err = call("STATUS", conf(tmp_path / "file", V4))
    assert status == 1 and err["code"] == ErrorCode.PLUGIN_NOT_AVAILABLE


def test_ip_ranges_capability_comes_first(tmp_path: Path) -> None:
    config = conf(
        tmp_path,
        [[{"subnet": "fd00::/64"}]],
        runtimeConfig={"ipRanges": [[{"subnet": "10.9.0.0/24"}]]},
    )
    assert addresses(ok("ADD", config)) == ["10.9.0.2/24", "fd00::2/64"]
    only_runtime = conf(tmp_path, [], runtimeConfig={"ipRanges": [[{"subnet": "10.8.0.0/24"}]]})
    del only_runtime["ipam"]["ranges"]
    assert addresses(ok("ADD", only_runtime, cid="c2")) == ["10.8.0.2/24"]


def test_old_single_range_form_routes_and_resolv_conf(tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(
        "# comment\nnameserver 192.0.2.53\nnameserver 2001:db8::53\n"
        "domain example.net\nsearch a.example b.example\noptions ndots:2 rotate\n"
    )
    config = conf(
        tmp_path,
        [],
        ipam={
            "subnet": "10.3.0.0/16",
            "gateway": "10.3.255.254",
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.3.0.9"}],
            "resolvConf": str(resolv),
        },
    )
    result = ok("ADD", config)
    assert result["ips"] == [{"address": "10.3.0.1/16", "gateway": "10.3.255.254"}]
    assert result["routes"] == [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.3.0.9"}]
    assert result["dns"] == {
        "nameservers": ["192.0.2.53", "2001:db8::53"],
        "domain": "example.net",
        "search": ["a.example", "b.example"],
        "options": ["ndots:2", "rotate"],
    }


def test_old_result_versions_tag_each_address(tmp_path: Path) -> None:
    result = ok("ADD", conf(tmp_path, V4, version="0.3.1"))
    assert result["cniVersion"] == "0.3.1"
    assert result["ips"] == [{"version": "4", "address": "10.1.0.2/24", "gateway": "10.1.0.1"}]


@pytest.mark.parametrize(
    ("config_change", "code", "words"),
    [
        ({"ipam": None}, ErrorCode.INVALID_NETWORK_CONFIG, "missing 'ipam'"),
        (
            {"ranges": [[{"subnet": "10.0.0.0/24", "rangeEnd": "10.0.1.1"}]]},
            7,
            "ranges[0][0].rangeEnd",
        ),
        ({"ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.0.0.0/25"}]]}, 7, "overlaps"),
        ({"routes": [{"dst": "nowhere"}]}, 7, "ipam.routes[0].dst"),
        ({"dataDir": 5}, 7, "'dataDir'"),
        ({"dataDir": "/var/lib/cni\0"}, 7, "'dataDir' must not contain a NUL"),
        ({"dataDir": "networks"}, 7, "'dataDir' must be an absolute path"),
        ({"resolvConf": "resolv.conf"}, 7, "'resolvConf' must be an absolute path"),
        ({"resolvConf": "/nonexistent/resolv.conf"}, 7, "resolvConf"),
        ({"runtimeConfig": {"ips": ["10.0.0.x"]}}, 7, "runtimeConfig.ips[0]"),
        ({"CNI_ARGS": "IP=nonsense"}, ErrorCode.INVALID_ENVIRONMENT, "CNI_ARGS IP"),
    ],
)
def test_bad_config_is_a_clear_error_and_leaves_nothing(
    tmp_path: Path, config_change: dict[str, Any], code: int, words: str
) -> None:
    config = conf(tmp_path, V4)
    args = config_change.pop("CNI_ARGS", "")
    if "runtimeConfig" in config_change:
        config["runtimeConfig"] = config_change.pop("runtimeConfig")
    if config_change.get("ipam", 1) is None:
        del config["ipam"]
    else:
        config["ipam"].update(config_change)
    status, err = call("ADD", config, args=args)
    assert status == 1 and err["code"] == code, err
    assert words in err["msg"] + " " + err.get("details", "")
    assert files(tmp_path) == {}


OWNERS = st.sampled_from(
    [("a", "eth0"), ("a", "eth1"), ("b", "eth0"), ("c", "eth0"), ("d", "net1")]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("ADD"), OWNERS, st.sampled_from(["", "IP=10.5.0.3", "IP=fd00::4"])),
            st.tuples(st.just("DEL"), OWNERS),
            st.tuples(st.just("GC"), st.frozensets(OWNERS)),
        ),
        max_size=25,
    )
)
def test_random_verbs_keep_the_data_dir_consistent(ops: list[tuple[Any, ...]]) -> None:
    # A /29 and a /126: few enough addresses that requests collide and sets run out.
    with tempfile.TemporaryDirectory() as scratch:
        data = Path(scratch)
        config = conf(data, [[{"subnet": "10.5.0.0/29"}], [{"subnet": "fd00::/125"}]])
        model: dict[tuple[str, str], list[str]] = {}
        for op in ops:
            if op[0] == "ADD":
                (cid, ifname), args = op[1], op[2]
                status, out = call("ADD", config, cid=cid, ifname=ifname, args=args)
                repeat = (cid, ifname) in model
                if not args and (repeat or len(model) < 5):  # 5 addresses in the /29
                    assert status == 0, out  # a repeat, or room left: must succeed
                if status == 0:
                    got = addresses(out)
                    assert model.get((cid, ifname), got) == got  # a repeat gets the same
                    model[(cid, ifname)] = got
                else:
                    assert out["code"] in (CODE_EXHAUSTED, CODE_UNAVAILABLE)
            elif op[0] == "DEL":
                ok("DEL", config, cid=op[1][0], ifname=op[1][1])
                model.pop(op[1], None)
            else:
                valid = [{"containerID": c, "ifname": i} for c, i in op[1]]
                ok("GC", {**config, "cni.dev/valid-attachments": valid})
                model = {k: v for k, v in model.items() if k in op[1]}
            on_disk = {k: v for k, v in files(data).items() if k[0].isdigit() or ":" in k}
            expected = {
                a.split("/")[0]: f"{cid}\r\n{ifname}".encode()
                for (cid, ifname), got in model.items()
                for a in got
            }
            assert on_disk == expected  # nothing leaked, nothing shared, nothing lost
            for address in on_disk:
                ip = ipaddress.ip_address(address)
                assert ip not in (ipaddress.ip_address("10.5.0.1"), ipaddress.ip_address("fd00::1"))
                assert ip in ipaddress.ip_network("10.5.0.0/29") or ip in ipaddress.ip_network(
                    "fd00::/125"
                )
