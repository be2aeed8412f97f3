"""``multinic cni`` behaves like the reference cnitool, end to end through the real binary.

The binary runs in a checked scratch node namespace per test: it is started
from a thread that entered the node (``on_node``), so it and the plugins it
executes create the bridge and host veths there, never in the real host's
namespace; a link beyond the bridge left in the node fails the test.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from multinic.lab import netns as lab
from tests.netns.conftest import REFERENCE_PLUGIN_DIR, unique
from tests.support.conflists import bridge_conflist
from tests.support.lower_plugins import CheckedNode, on_node

MULTINIC = Path(sys.executable).parent / "multinic"


@pytest.fixture
def node(plugin_node: CheckedNode) -> CheckedNode:
    """The node the CLI runs in (tests/netns/conftest.py checks what is left in it)."""
    return plugin_node


@pytest.fixture
def cli_env(tmp_path: Path, node: CheckedNode) -> dict[str, str]:
    bridge = unique("mntbr")
    node.keep.add(bridge)  # the bridge outlives DEL, as on a real node
    conf_dir = tmp_path / "net.d"
    conf_dir.mkdir()
    conflist = bridge_conflist("cli-net", bridge, tmp_path / "ipam", "198.18.20.0/24")
    (conf_dir / "10-cli.conflist").write_text(json.dumps(conflist))
    return {
        **os.environ,
        "NETCONFPATH": str(conf_dir),
        "CNI_PATH": str(REFERENCE_PLUGIN_DIR),
        "CNI_CACHE_DIR": str(tmp_path / "cache"),
        "CNI_IFNAME": "eth0",
        "CAP_ARGS": "{}",
    }


def multinic(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI, started in the node (the child inherits the thread's namespace)."""
    return on_node(
        lambda: subprocess.run(
            [str(MULTINIC), *args],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
    )


def test_add_check_del_by_namespace_name(
    cli_env: dict[str, str], pod: str, node: CheckedNode, tmp_path: Path
) -> None:
    added = multinic(cli_env, "cni", "add", "cli-net", pod)
    assert added.returncode == 0, added.stderr
    assert node.keep <= lab.link_names(node.name)  # the bridge went to the node
    result: dict[str, Any] = json.loads(added.stdout)
    assert result["cniVersion"] == "1.1.0"
    assert result["ips"][0]["address"].startswith("198.18.20.")
    assert lab.addresses("eth0", netns=pod) == [result["ips"][0]["address"]]

    netns_path = str(lab.netns_path(pod))
    container_id = "cnitool-" + hashlib.sha512(netns_path.encode()).hexdigest()[:20]
    cache_file = tmp_path / "cache" / "results" / f"cli-net-{container_id}-eth0"
    assert json.loads(cache_file.read_text())["containerId"] == container_id

    checked = multinic(cli_env, "cni", "check", "cli-net", pod)
    assert checked.returncode == 0, checked.stderr

    for _ in range(2):  # DEL twice: the second one must succeed too
        deleted = multinic(cli_env, "cni", "del", "cli-net", pod)
        assert deleted.returncode == 0, deleted.stderr
    assert not cache_file.exists()
    assert "eth0" not in lab.link_names(pod)


def test_gc_removes_cached_attachment(cli_env: dict[str, str], pod: str, tmp_path: Path) -> None:
    assert multinic(cli_env, "cni", "add", "cli-net", pod).returncode == 0

    collected = multinic(cli_env, "cni", "gc", "cli-net")

    assert collected.returncode == 0, collected.stderr
    assert list((tmp_path / "cache" / "results").iterdir()) == []
    assert list((tmp_path / "ipam" / "cli-net").glob("198.18.20.*")) == []
    assert "eth0" not in lab.link_names(pod)


def test_status_and_validate(cli_env: dict[str, str]) -> None:
    status = multinic(cli_env, "cni", "status", "cli-net")
    assert status.returncode == 0, status.stderr
    assert status.stdout.strip() == "cli-net: ready"

    validated = multinic(cli_env, "cni", "validate", "cli-net")
    assert validated.returncode == 0, validated.stderr
    assert "cniVersion 1.1.0" in validated.stdout


def test_errors_are_messages_not_tracebacks(cli_env: dict[str, str], pod: str) -> None:
    missing = multinic(cli_env, "cni", "add", "no-such-net", pod)
    assert missing.returncode == 1
    assert "CNI error 7" in missing.stderr
    assert "no net configuration with name 'no-such-net'" in missing.stderr
    assert "Traceback" not in missing.stderr + missing.stdout

    bad_caps = multinic({**cli_env, "CAP_ARGS": "{not json"}, "cni", "add", "cli-net", pod)
    assert bad_caps.returncode == 2
    assert "CAP_ARGS is not valid JSON" in bad_caps.stderr
    assert "eth0" not in lab.link_names(pod)
