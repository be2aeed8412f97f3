"""The node daemon and the shim, as a runtime drives them: the shim executed, the daemon serving.

The daemon runs in this process, started from a thread inside the test's
scratch node, so its workers (threads it creates) attach pods from the node's
namespace; the shim is the installed executable, run with a bare CNI
environment. The selector here is a fixed one (a primary bridge and one
macvlan): which delegates a pod gets is the selection's business, tested on
its own; this is about the transport, the daemon's bounds and its life.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from multinic.cni.errors import InvalidConfigError
from multinic.cni.runtime import Runtime
from multinic.cni.skel import Request
from multinic.lab import netns as lab
from multinic.meta.attach import Attacher
from multinic.meta.plugin import MetaPlugin
from multinic.meta.records import PodAttachment, PodRef, RecordStore
from multinic.node.daemon import DaemonSettings, NodeDaemon
from multinic.plugins.inprocess import InProcessExecutor
from multinic.plugins.install import install_plugins
from tests.netns.conftest import REFERENCE_PLUGIN_DIR, unique
from tests.support.etcd_cluster import free_port
from tests.support.lower_plugins import CheckedNode, on_node
from tests.support.shim import run_shim


class FixedSelector:
    """Every pod gets the same delegates; reports are kept for the test to read."""

    def __init__(self, delegates: list[PodAttachment]) -> None:
        self.delegates_of_every_pod = delegates
        self.reports: list[tuple[PodRef, list[dict[str, Any]]]] = []
        self.refuse: str | None = None

    def delegates(self, request: Request, pod: PodRef) -> Sequence[PodAttachment]:
        del request
        if self.refuse:
            raise InvalidConfigError(self.refuse, f"pod {pod.namespace}/{pod.name}")
        return self.delegates_of_every_pod

    def report(self, pod: PodRef, network_status: list[dict[str, Any]]) -> None:
        self.reports.append((pod, network_status))

    def status(self) -> None:
        return None


class Node:
    def __init__(self, checked: CheckedNode, root: Path, shim: str) -> None:
        self.root = root
        self.bin = root / "bin"
        install_plugins(str(self.bin), use_compiled_shim=shim == "compiled")
        compiled = (self.bin / "multinic-shim").read_bytes().startswith(b"\x7fELF")
        assert compiled == (shim == "compiled"), "make install builds the compiled shim"
        bridge, nic = unique("mnnb"), unique("mnnd")
        lab.ip("link", "add", nic, "type", "veth", "peer", "name", f"{nic}p", netns=checked.name)
        lab.ip("link", "set", nic, "up", netns=checked.name)
        checked.keep.update({bridge, nic, f"{nic}p"})
        self.selector = FixedSelector([_bridge(bridge, root), _macvlan(nic, root)])
        self.settings = DaemonSettings(
            socket_path=root / "run" / "cni.sock",
            cni_conf_dir=root / "net.d",
            health_port=free_port(),
        )
        self.daemon: NodeDaemon | None = None

    def start(self) -> NodeDaemon:
        runtime = Runtime(
            [REFERENCE_PLUGIN_DIR], cache_dir=self.root / "cache", executor=InProcessExecutor()
        )
        plugin = MetaPlugin(self.selector, Attacher(runtime, RecordStore(self.root / "meta")))
        daemon = NodeDaemon(plugin, self.settings)
        on_node(daemon.start)  # its threads are born in the node's namespace
        assert daemon.wait_ready(10)
        self.daemon = daemon
        return daemon

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()
            self.daemon = None

    def shim(
        self, command: str, pod: str, cid: str, **conf: Any
    ) -> subprocess.CompletedProcess[bytes]:
        args = f"K8S_POD_NAMESPACE=cnf;K8S_POD_NAME={pod};K8S_POD_UID=uid-{pod}"
        return run_shim(
            self.bin, self.settings.socket_path, command, lab.netns_path(pod), cid, args, **conf
        )

    def http(self, path: str) -> tuple[int, str]:
        url = f"http://127.0.0.1:{self.settings.health_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()


def _ipam(root: Path, subnet: str) -> dict[str, Any]:
    return {
        "type": "multinic-host-local",
        "ranges": [[{"subnet": subnet}]],
        "dataDir": str(root / "ipam"),
    }


def _bridge(bridge: str, root: Path) -> PodAttachment:
    conf = {
        "cniVersion": "1.1.0",
        "name": "cluster",
        "plugins": [
            {
                "type": "multinic-bridge",
                "bridge": bridge,
                "isGateway": True,
                "ipam": _ipam(root, "198.18.60.0/24"),
            }
        ],
    }
    return PodAttachment("cluster", "eth0", json.dumps(conf).encode(), default=True)


def _macvlan(nic: str, root: Path) -> PodAttachment:
    conf = {
        "cniVersion": "1.1.0",
        "name": "data",
        "type": "multinic-macvlan",
        "master": nic,
        "ipam": _ipam(root, "198.18.61.0/24"),
    }
    return PodAttachment("cnf/data", "net1", json.dumps(conf).encode())


@pytest.fixture(params=["compiled", "python"])
def node(
    plugin_node: CheckedNode, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Node]:
    """A node with either shim: both must behave exactly alike."""
    node = Node(plugin_node, tmp_path, request.param)
    yield node
    node.stop()


def answer(done: subprocess.CompletedProcess[bytes]) -> Any:
    return json.loads(done.stdout) if done.stdout.strip() else None


def test_a_pod_through_shim_and_daemon(node: Node, pod: str) -> None:
    node.start()
    assert (
        json.loads(node.daemon.conflist_path.read_text())["plugins"][0]["type"] == "multinic-shim"
    )  # type: ignore[union-attr]

    added = node.shim("ADD", pod, "cid-one")
    assert added.returncode == 0, added.stdout + added.stderr
    result = answer(added)
    assert result["cniVersion"] == "1.1.0"
    assert [ip["address"] for ip in result["ips"]] == lab.addresses("eth0", pod)
    assert lab.link_names(pod) - {"lo"} == {"eth0", "net1"}
    ((pod_ref, status),) = node.selector.reports
    assert pod_ref == PodRef("cnf", pod, f"uid-{pod}")
    assert [s["interface"] for s in status] == ["eth0", "net1"]

    assert node.shim("CHECK", pod, "cid-one").returncode == 0
    assert node.shim("DEL", pod, "cid-one").returncode == 0
    assert node.shim("DEL", pod, "cid-one").returncode == 0
    assert lab.link_names(pod) - {"lo"} == set()

    code, metrics = node.http("/metrics")
    assert code == 200
    assert 'multinic_cni_requests_total{result="ok",verb="ADD"} 1.0' in metrics
    assert 'multinic_cni_requests_total{result="ok",verb="DEL"} 2.0' in metrics
    assert "multinic_cni_requests_in_flight 0.0" in metrics
    assert node.http("/healthz") == (200, "ok\n")


def test_a_cni_error_reaches_the_runtime_with_its_code(node: Node, pod: str) -> None:
    node.start()
    node.selector.refuse = "malformed k8s.v1.cni.cncf.io/networks annotation"

    done = node.shim("ADD", pod, "cid-refused")

    assert done.returncode == 1
    error = answer(done)
    assert error["code"] == 7
    assert error["msg"] == "malformed k8s.v1.cni.cncf.io/networks annotation"
    assert pod in error["details"]
    assert lab.link_names(pod) - {"lo"} == set()
    _, metrics = node.http("/metrics")
    assert 'multinic_cni_requests_total{result="7",verb="ADD"} 1.0' in metrics


def test_no_daemon_is_code_11_within_the_connect_timeout(node: Node, pod: str) -> None:
    began = time.monotonic()
    done = node.shim("ADD", pod, "cid-nodaemon", connectTimeout=0.5)
    took = time.monotonic() - began

    assert done.returncode == 1
    error = answer(done)
    assert error["code"] == 11
    assert str(node.settings.socket_path) in error["details"]
    assert took < 30  # bounded: it gave up instead of hanging


def test_a_restarted_daemon_answers_a_waiting_shim_and_dels_from_its_records(
    node: Node, pod: str, pod2: str
) -> None:
    node.start()
    assert node.shim("ADD", pod, "cid-before").returncode == 0
    node.stop()

    results: list[subprocess.CompletedProcess[bytes]] = []
    waiting = threading.Thread(target=lambda: results.append(node.shim("ADD", pod2, "cid-during")))
    waiting.start()  # the shim keeps trying to connect while the daemon is down
    time.sleep(0.5)
    node.start()
    waiting.join(timeout=60)

    assert results and results[0].returncode == 0, results
    assert node.shim("DEL", pod, "cid-before").returncode == 0  # from the record on disk
    assert node.shim("DEL", pod2, "cid-during").returncode == 0
    assert lab.link_names(pod) - {"lo"} == set() == lab.link_names(pod2) - {"lo"}


def test_the_conflist_waits_for_the_readiness_indicator(node: Node, tmp_path: Path) -> None:
    indicator = tmp_path / "primary-ready"
    node.settings = node.settings._replace(readiness_indicator_file=indicator)
    runtime = Runtime([REFERENCE_PLUGIN_DIR], cache_dir=tmp_path / "cache")
    daemon = NodeDaemon(
        MetaPlugin(node.selector, Attacher(runtime, RecordStore(tmp_path / "meta"))), node.settings
    )
    daemon.start()
    try:
        assert not daemon.wait_ready(0.5)
        assert not daemon.conflist_path.exists()
        assert node.http("/healthz")[0] == 503
        indicator.write_text("")
        assert daemon.wait_ready(5)
        assert daemon.conflist_path.exists()
        assert node.http("/healthz")[0] == 200
    finally:
        daemon.stop()
    assert not node.settings.socket_path.exists()
