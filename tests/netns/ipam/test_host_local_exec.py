"""multinic-host-local and multinic-static as executables, beside the reference plugins.

The reference ``host-local`` (containernetworking/plugins v1.10, built from its
Go module) and ours
share one data dir: they alternate, read each other's reservations and
cursor, DEL each other's, and exclude each other through the same flock.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from multinic.cni.config import parse_network_config_list
from multinic.cni.runtime import Runtime
from multinic.ipam.allocator import CODE_EXHAUSTED
from multinic.lab import netns as lab
from multinic.plugins.install import install_plugins
from tests.netns.conftest import REFERENCE_PLUGIN_DIR, unique
from tests.netns.test_reference_interop import attach
from tests.support.conflists import bridge_plugin, conflist
from tests.support.lower_plugins import checked_node, on_node

OURS = "multinic-host-local"


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    if not (REFERENCE_PLUGIN_DIR / "host-local").exists():
        pytest.fail(f"reference plugins missing in {REFERENCE_PLUGIN_DIR}: run make third-party")
    install_plugins(str(tmp_path / "bin"))  # what `multinic install-plugins` writes
    return tmp_path / "bin"


def exe(bin_dir: Path, plugin: str) -> Path:
    return bin_dir / plugin if plugin.startswith("multinic-") else REFERENCE_PLUGIN_DIR / plugin


def run(
    path: Path, command: str, config: dict[str, Any], cid: str, ifname: str = "eth0", args: str = ""
) -> tuple[int, Any]:
    env = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": "/var/run/netns/none",
        "CNI_IFNAME": ifname,
        "CNI_PATH": f"{path.parent}:{REFERENCE_PLUGIN_DIR}",
        "CNI_ARGS": args,
    }
    done = subprocess.run(
        [str(path)], input=json.dumps(config).encode(), env=env, capture_output=True, timeout=60
    )
    assert b"Traceback" not in done.stdout
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else None


def ipam_conf(data_dir: Path, ranges: list[Any], plugin: str, **ipam: Any) -> dict[str, Any]:
    # The newest version, which the reference host-local 1.10 speaks too.
    return {
        "cniVersion": "1.1.0",
        "name": "shared",
        "ipam": {"type": plugin, "dataDir": str(data_dir), "ranges": ranges, **ipam},
    }


def reservations(data_dir: Path) -> dict[str, bytes]:
    net = data_dir / "shared"
    return {
        p.name: p.read_bytes()
        for p in net.iterdir()
        if p.name != "lock" and not p.name.startswith("last_reserved_ip.")
    }


DUAL = [[{"subnet": "10.77.0.0/24"}], [{"subnet": "fd00:77::/64", "rangeStart": "fd00:77::a"}]]


def test_alternating_with_the_reference_on_one_data_dir(bin_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    plugins = [exe(bin_dir, OURS), exe(bin_dir, "host-local")]
    v4: list[str] = []
    v6: list[str] = []
    for n in range(200):
        status, result = run(plugins[n % 2], "ADD", ipam_conf(data, DUAL, "x"), f"cid{n}")
        assert status == 0, result
        v4.append(result["ips"][0]["address"])
        v6.append(result["ips"][1]["address"])
    # No duplicate, and one round-robin sequence: each read the other's cursor.
    assert v4 == [f"10.77.0.{k}/24" for k in range(2, 202)]
    first_v6 = int(ipaddress.ip_address("fd00:77::a"))
    assert v6 == [f"{ipaddress.ip_address(first_v6 + k)}/64" for k in range(200)]
    held = reservations(data)
    assert len(held) == 400
    assert held["10.77.0.2"] == b"cid0\r\neth0" and held["10.77.0.3"] == b"cid1\r\neth0"
    assert held["fd00:77::a"] == b"cid0\r\neth0"
    assert (data / "shared" / "last_reserved_ip.0").read_bytes() == b"10.77.0.201"

    # Each reads the other's reservations: ours returns the reference's address again,
    # the reference refuses to allocate twice for an attachment ours reserved.
    status, result = run(plugins[0], "ADD", ipam_conf(data, DUAL, "x"), "cid1")
    assert status == 0 and result["ips"][0]["address"] == "10.77.0.3/24"
    status, err = run(plugins[1], "ADD", ipam_conf(data, DUAL, "x"), "cid0")
    assert status != 0 and "duplicate allocation" in err["msg"]
    # And both CHECK each other's.
    assert run(plugins[0], "CHECK", ipam_conf(data, DUAL, "x"), "cid1")[0] == 0
    assert run(plugins[1], "CHECK", ipam_conf(data, DUAL, "x"), "cid0")[0] == 0

    # Each DELs the other's: ours the reference's (odd), the reference ours (even).
    for n in range(200):
        status, _ = run(plugins[(n + 1) % 2], "DEL", ipam_conf(data, DUAL, "x"), f"cid{n}")
        assert status == 0
    assert reservations(data) == {}


def test_same_answer_as_the_reference_for_the_same_state(bin_dir: Path, tmp_path: Path) -> None:
    ranges = [
        [{"subnet": "10.78.0.0/24", "rangeStart": "10.78.0.10", "gateway": "10.78.0.254"}],
        [{"subnet": "fd00:78::/120"}],
    ]
    routes = [{"dst": "0.0.0.0/0"}, {"dst": "fd00::/8", "gw": "fd00:78::1"}]
    answers = []
    for plugin in (OURS, "host-local"):
        config = ipam_conf(tmp_path / plugin, ranges, plugin, routes=routes)
        for n in range(3):
            status, result = run(
                exe(bin_dir, plugin), "ADD", config, f"c{n}", args="IP=10.78.0.50" if n == 1 else ""
            )
            assert status == 0
        answers.append((result, reservations(tmp_path / plugin)))
    assert answers[0] == answers[1]


def test_concurrent_writers_of_both_kinds_never_share_an_address(
    bin_dir: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    config = ipam_conf(data, [[{"subnet": "10.79.0.0/24"}]], "x")

    def worker(w: int) -> list[str]:
        plugin = exe(bin_dir, OURS if w % 2 else "host-local")
        out = []
        for n in range(12):
            status, result = run(plugin, "ADD", config, f"w{w}-{n}")
            assert status == 0, result
            out.append(result["ips"][0]["address"])
        return out

    with ThreadPoolExecutor(6) as pool:
        got = [a for chunk in pool.map(worker, range(6)) for a in chunk]
    assert len(got) == len(set(got)) == 72
    assert len(reservations(data)) == 72


def test_errors_are_cni_error_objects(bin_dir: Path, tmp_path: Path) -> None:
    config = ipam_conf(tmp_path / "d", [[{"subnet": "10.80.0.0/30"}]], OURS)
    assert run(exe(bin_dir, OURS), "ADD", config, "a")[0] == 0
    status, err = run(exe(bin_dir, OURS), "ADD", config, "b")
    assert status == 1
    assert err == {
        "cniVersion": "1.1.0",
        "code": CODE_EXHAUSTED,
        "msg": "failed to allocate for range 0: no IP addresses available in range set",
        "details": "10.80.0.1-10.80.0.2/30",
    }
    status, err = run(exe(bin_dir, OURS), "ADD", {"cniVersion": "1.0.0", "name": "x"}, "c")
    assert status == 1 and err["code"] == 7


def test_status_fails_on_a_read_only_data_dir(bin_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "ro"
    (data / "shared").mkdir(parents=True)
    config = {**ipam_conf(data, [[{"subnet": "10.81.0.0/24"}]], OURS), "cniVersion": "1.1.0"}
    assert run(exe(bin_dir, OURS), "STATUS", config, "x")[0] == 0
    subprocess.run(["mount", "--bind", str(data), str(data)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(data)], check=True)
        status, err = run(exe(bin_dir, OURS), "STATUS", config, "x")
        assert status == 1 and err["code"] == 50 and "not writable" in err["details"]
        status, err = run(exe(bin_dir, OURS), "ADD", config, "x")
        assert status == 1 and err["code"] == 5
    finally:
        subprocess.run(["umount", str(data)], check=True)


def test_static_answers_as_the_reference(bin_dir: Path) -> None:
    ipam = {
        "addresses": [
            {"address": "10.82.0.5/24", "gateway": "10.82.0.1"},
            {"address": "fd00:82::5/64"},
        ],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.82.0.1"}],
        "dns": {"nameservers": ["10.82.0.53"], "search": ["example.net"]},
    }
    for args, extra in [
        ("", {}),
        ("IP=10.82.1.5/24;GATEWAY=10.82.1.1", {}),
        ("", {"runtimeConfig": {"ips": ["10.82.2.5/24"]}}),
    ]:
        answers = []
        for plugin in ("multinic-static", "static"):
            config = {"cniVersion": "1.0.0", "name": "s", "ipam": {"type": plugin, **ipam}, **extra}
            status, result = run(exe(bin_dir, plugin), "ADD", config, "c", args=args)
            assert status == 0
            answers.append(result)
        assert answers[0] == answers[1]


def test_reference_bridge_delegates_to_our_host_local(
    bin_dir: Path, pod: str, tmp_path: Path
) -> None:
    bridge = unique("mntbr")
    ipam = {
        "type": OURS,
        "dataDir": str(tmp_path / "ipam"),
        "ranges": [[{"subnet": "198.18.30.0/24"}]],
    }
    net = parse_network_config_list(conflist("hl-bridge", bridge_plugin(bridge, ipam)))
    runtime = Runtime([bin_dir, REFERENCE_PLUGIN_DIR], cache_dir=tmp_path / "cache")
    rt = attach(pod)
    # The bridge and the host veth go to a checked scratch node, not the host:
    # the runtime runs from a thread in it, so the plugins it executes start there.
    with checked_node() as node:
        node.keep.add(bridge)  # the bridge outlives DEL, as on a real node
        result = on_node(lambda: runtime.add(net, rt))
        assert str(result.ips[0].address) == "198.18.30.2/24"
        assert bridge in lab.link_names(node.name)
        shown = subprocess.run(
            ["ip", "-n", pod, "-j", "addr", "show", "eth0"],
            capture_output=True,
            check=True,
            text=True,
        )
        assert "198.18.30.2" in shown.stdout
        on_node(lambda: runtime.check(net, rt))
        on_node(lambda: runtime.delete(net, rt))
    left = sorted(p.name for p in (tmp_path / "ipam" / "hl-bridge").iterdir())
    assert left == ["last_reserved_ip.0", "lock"]
    assert lab.netns_path(pod).exists()


@pytest.mark.parametrize(
    "address",
    ["fd00:77:0:0:1:0:0:5", "fd00:77::ffff:0:5", "fd00:77:0:0:0:1:0:0", "fd00:77::a:b:c:d"],
)
def test_ipv6_file_names_are_the_ones_go_writes(
    bin_dir: Path, tmp_path: Path, address: str
) -> None:
    # If our file name differed from Go's text for the same address, the reference's
    # O_EXCL create would not see our reservation and would hand the address out again.
    data = tmp_path / "data"
    ranges = [[{"subnet": "fd00:77::/64"}]]
    status, result = run(
        exe(bin_dir, OURS), "ADD", ipam_conf(data, ranges, "x"), "a", args=f"IP={address}"
    )
    assert status == 0, result
    status, err = run(
        exe(bin_dir, "host-local"), "ADD", ipam_conf(data, ranges, "x"), "b", args=f"IP={address}"
    )
    assert status != 0 and "not available" in err["msg"]
    status, result = run(exe(bin_dir, "host-local"), "ADD", ipam_conf(data, ranges, "x"), "c")
    assert status == 0
    names = sorted(reservations(data))
    assert names == sorted(
        [result["ips"][0]["address"].split("/")[0], str(ipaddress.ip_address(address))]
    )
