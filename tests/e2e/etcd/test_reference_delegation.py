"""The reference Go ``bridge`` plugin delegates to our ``multinic-ipam`` executable on etcd.

A conflist switches IPAM by changing ``"type"`` alone: the reference bridge
(containernetworking/plugins v1.10, built from its Go module) finds
``multinic-ipam`` on CNI_PATH, runs it, and configures the address it got in
two real pod namespaces. At 1.1.0 it also relays STATUS to it: ready while
etcd answers, code 50 when no member does.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
from pathlib import Path
from typing import Any

from multinic.lab import netns as lab
from multinic.plugins.install import install_plugins
from tests.e2e.etcd.test_reliability import State
from tests.support import third_party
from tests.support.etcd_cluster import EtcdCluster

REFERENCE = third_party.directory("cni-plugins")


def bridge(
    bin_dir: Path, command: str, config: dict[str, Any], pod: str
) -> subprocess.CompletedProcess[bytes]:
    env = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": pod,
        "CNI_NETNS": str(lab.netns_path(pod)),
        "CNI_IFNAME": "eth0",
        "CNI_PATH": f"{REFERENCE}{os.pathsep}{bin_dir}",
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    }
    return subprocess.run(
        [str(REFERENCE / "bridge")],
        input=json.dumps(config).encode(),
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )


def test_reference_bridge_uses_multinic_ipam(etcd_cluster: EtcdCluster, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    install_plugins(str(bin_dir))
    name = f"mnb{secrets.token_hex(4)}"
    config = {
        "cniVersion": "1.1.0",
        "name": "e2e-net",
        "type": "bridge",
        "bridge": name,
        "isGateway": True,
        "ipam": {
            "type": "multinic-ipam",
            "range": "10.77.0.0/24",
            "gateway": "10.77.0.1",
            "node_name": "node0",
            "store": {"type": "etcd", "endpoints": etcd_cluster.endpoints, "prefix": "/e2e/"},
        },
    }
    pods = [f"mnp{secrets.token_hex(4)}" for _ in range(2)]
    with contextlib.ExitStack() as stack:
        stack.callback(lab.delete_link, name)
        for pod in pods:
            stack.enter_context(lab.scratch_netns(pod))
        got = []
        for pod in pods:
            done = bridge(bin_dir, "ADD", config, pod)
            assert done.returncode == 0, done.stdout + done.stderr
            (ip_config,) = json.loads(done.stdout)["ips"]
            assert lab.addresses("eth0", netns=pod) == [ip_config["address"]]
            got.append(ip_config["address"])
        assert got == ["10.77.0.2/24", "10.77.0.3/24"]
        State(etcd_cluster).assert_consistent()
        ready = bridge(bin_dir, "STATUS", config, pods[0])
        assert ready.returncode == 0, ready.stdout + ready.stderr
        for member in etcd_cluster.members:
            etcd_cluster.kill(member)
        down = bridge(bin_dir, "STATUS", config, pods[0])
        assert down.returncode == 1
        assert json.loads(down.stdout)["code"] == 50  # ours, through their bridge
        for member in etcd_cluster.members:
            etcd_cluster.restart(member)
        etcd_cluster.wait_healthy(etcd_cluster.members)
        for pod in pods:
            done = bridge(bin_dir, "DEL", config, pod)
            assert done.returncode == 0, done.stdout + done.stderr
    empty = State(etcd_cluster)
    assert empty.handle_addresses() == {} and empty.block_addresses() == []
