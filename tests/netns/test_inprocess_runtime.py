"""The runtime with InProcessExecutor: our plugins run in this process, others executed.

The node daemon's path: no Python interpreter is started per plugin call. The
proof that nothing is executed is a plugin search path without our
executables in it: an executed multinic plugin would fail with "failed to find
plugin". Reference plugins in the same chain are still found and executed.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from multinic.cni.config import parse_network_config_list
from multinic.cni.errors import CNIError
from multinic.cni.runtime import Runtime, RuntimeConf
from multinic.lab import netns as lab
from multinic.plugins.inprocess import InProcessExecutor
from tests.netns.conftest import REFERENCE_PLUGIN_DIR, unique
from tests.support.lower_plugins import CheckedNode, on_node

SUBNET = "198.18.40.0/24"


def our_bridge(name: str, bridge: str, data_dir: Path, *then: dict[str, Any]) -> Any:
    raw = {
        "cniVersion": "1.1.0",
        "name": name,
        "plugins": [
            {
                "type": "multinic-bridge",
                "bridge": bridge,
                "isGateway": True,
                "ipam": {
                    "type": "multinic-host-local",
                    "ranges": [[{"subnet": SUBNET}]],
                    "dataDir": str(data_dir),
                },
            },
            *then,
        ],
    }
    return parse_network_config_list(json.dumps(raw).encode())


@pytest.fixture
def bridge(plugin_node: CheckedNode) -> str:
    name = unique("mntip")
    plugin_node.keep.add(name)  # the bridge outlives the pods' DEL, as on a node
    return name


def reservations(data_dir: Path, network: str) -> list[str]:
    directory = data_dir / network
    return sorted(p.name for p in directory.glob("198.18.40.*")) if directory.exists() else []


def test_our_chain_runs_without_any_executable(
    tmp_path: Path, bridge: str, pod: str, plugin_node: CheckedNode
) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    runtime = Runtime([empty], cache_dir=tmp_path / "cache", executor=InProcessExecutor())
    net = our_bridge("inproc", bridge, tmp_path / "ipam", {"type": "multinic-tuning", "mtu": 1400})
    rt = RuntimeConf("cid-inproc", str(lab.netns_path(pod)), "eth0")

    result = on_node(lambda: runtime.add(net, rt))

    address = str(result.ips[0].address.ip)
    assert lab.ip_json("-4", "addr", "show", "eth0", netns=pod)[0]["addr_info"][0]["local"] == (
        address
    )
    assert lab.ip_json("link", "show", "eth0", netns=pod)[0]["mtu"] == 1400
    assert reservations(tmp_path / "ipam", "inproc") == [address]
    on_node(lambda: runtime.check(net, rt))
    on_node(lambda: runtime.delete(net, rt))
    on_node(lambda: runtime.delete(net, rt))  # DEL again succeeds
    assert "eth0" not in lab.link_names(pod)
    assert reservations(tmp_path / "ipam", "inproc") == []


def test_a_reference_plugin_in_the_chain_is_still_executed(
    tmp_path: Path, bridge: str, pod: str
) -> None:
    runtime = Runtime(
        [REFERENCE_PLUGIN_DIR], cache_dir=tmp_path / "cache", executor=InProcessExecutor()
    )
    net = our_bridge("mixed", bridge, tmp_path / "ipam", {"type": "tuning", "mtu": 1300})
    rt = RuntimeConf("cid-mixed", str(lab.netns_path(pod)), "eth0")

    on_node(lambda: runtime.add(net, rt))

    assert lab.ip_json("link", "show", "eth0", netns=pod)[0]["mtu"] == 1300
    on_node(lambda: runtime.delete(net, rt))
    assert "eth0" not in lab.link_names(pod)


def test_an_in_process_plugin_error_keeps_its_code_and_leaves_nothing(
    tmp_path: Path, bridge: str, pod: str
) -> None:
    runtime = Runtime([tmp_path], cache_dir=tmp_path / "cache", executor=InProcessExecutor())
    # tuning refuses a sysctl outside the interface's namespace: code 7, after bridge's ADD.
    net = our_bridge(
        "refused",
        bridge,
        tmp_path / "ipam",
        {"type": "multinic-tuning", "sysctl": {"kernel.x": "1"}},
    )
    rt = RuntimeConf("cid-refused", str(lab.netns_path(pod)), "eth0")

    with pytest.raises(CNIError) as caught:
        on_node(lambda: runtime.add(net, rt))

    assert caught.value.code == 7
    assert "multinic-tuning" in str(caught.value)
    assert "eth0" not in lab.link_names(pod)  # the rollback DEL ran in-process too
    assert reservations(tmp_path / "ipam", "refused") == []


def test_concurrent_pods_in_one_process_get_distinct_addresses(
    tmp_path: Path, bridge: str, plugin_node: CheckedNode
) -> None:
    runtime = Runtime([tmp_path], cache_dir=tmp_path / "cache", executor=InProcessExecutor())
    net = our_bridge("burst", bridge, tmp_path / "ipam")
    pods = [unique("mnt-pod-") for _ in range(8)]
    for name in pods:
        lab.create_netns(name)
    try:
        confs = [RuntimeConf(f"cid-{n}", str(lab.netns_path(n)), "eth0") for n in pods]
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(lambda rt: on_node(lambda: runtime.add(net, rt)), confs))
        addresses = {str(r.ips[0].address.ip) for r in results}
        assert len(addresses) == len(pods)
        assert set(reservations(tmp_path / "ipam", "burst")) == addresses
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda rt: on_node(lambda: runtime.delete(net, rt)), confs))
        assert reservations(tmp_path / "ipam", "burst") == []
    finally:
        for name in pods:
            lab.delete_netns(name)
