"""The reference Go ``bridge`` plugin delegates to our ``multinic-ipam`` executable on etcd.

A conflist switches IPAM by changing ``"type"`` alone: Debian's bridge finds
``multinic-ipam`` on CNI_PATH, runs it, and configures the address it got in
two real pod namespaces.
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
from tests.support.etcd_cluster import EtcdCluster

REFERENCE = Path("/usr/lib/cni")


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
        "cniVersion": "1.0.0",
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
        for pod in pods:
            done = bridge(bin_dir, "DEL", config, pod)
            assert done.returncode == 0, done.stdout + done.stderr
    empty = State(etcd_cluster)
    assert empty.handles == {} and empty.claims == {} and empty.block_addresses() == []
