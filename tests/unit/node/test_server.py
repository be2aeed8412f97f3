"""The daemon's CNI socket: bounds, one call at a time per container, malformed requests.

The plugin behind the socket is a small recording plugin of the test's own (the
server's job is transport and scheduling, not plugin work); calls come through
the shim's own ``forward``, exactly as the installed shim sends them.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from multinic import shim
from multinic.cni.errors import InvalidConfigError
from multinic.cni.skel import Request
from multinic.cni.types import Result
from multinic.node.metrics import Metrics
from multinic.node.server import MAX_REQUEST, CniServer


class SlowPlugin:
    """Sleeps in ADD and records how many ADDs ran at once, overall and per container."""

    name = "slow"
    supported_versions = ("1.0.0", "1.1.0")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running: dict[str, int] = {}
        self.most_at_once = 0
        self.most_per_container = 0

    def add(self, request: Request) -> Result:
        if request.container_id == "refuse":
            raise InvalidConfigError("refused on purpose", "details here")
        with self.lock:
            self.running[request.container_id] = self.running.get(request.container_id, 0) + 1
            self.most_at_once = max(self.most_at_once, sum(self.running.values()))
            self.most_per_container = max(self.most_per_container, *self.running.values())
        time.sleep(0.2)
        with self.lock:
            self.running[request.container_id] -= 1
        return Result("1.1.0")

    def delete(self, request: Request) -> None: ...
    def check(self, request: Request) -> None: ...
    def status(self, request: Request) -> None: ...
    def gc(self, request: Request) -> None: ...


@pytest.fixture
def served(tmp_path: Path) -> tuple[CniServer, SlowPlugin]:
    plugin = SlowPlugin()
    server = CniServer(plugin, tmp_path / "run" / "cni.sock", Metrics(), workers=8)
    server.start()
    yield server, plugin  # type: ignore[misc]
    server.stop()


def call(server: CniServer, cid: str) -> tuple[int, bytes]:
    env = {
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": "/var/run/netns/x",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/opt/cni/bin",
    }
    conf = {"cniVersion": "1.1.0", "name": "n", "type": "multinic-shim"}
    return shim.forward(env, json.dumps(conf).encode(), {"socketPath": str(server.socket_path)})


def test_calls_for_one_container_run_one_at_a_time(served: tuple[CniServer, SlowPlugin]) -> None:
    server, plugin = served
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: call(server, "same"), range(4)))
    assert [status for status, _ in answers] == [0, 0, 0, 0]
    assert plugin.most_per_container == 1
    assert len(server.locks) == 0  # nothing kept for containers nobody waits on


def test_calls_for_different_containers_run_in_parallel(
    served: tuple[CniServer, SlowPlugin],
) -> None:
    server, plugin = served
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda i: call(server, f"c{i}"), range(4)))
    assert all(status == 0 for status, _ in answers)
    assert plugin.most_at_once > 1


def test_a_plugin_error_passes_through_with_its_code(served: tuple[CniServer, SlowPlugin]) -> None:
    server, _ = served
    status, out = call(server, "refuse")
    assert status == 1
    error = json.loads(out)
    assert (error["code"], error["msg"], error["details"]) == (
        7,
        "refused on purpose",
        "details here",
    )


@pytest.mark.parametrize(
    ("request_bytes", "code"),
    [
        (b"not json\n{}", 6),
        (b'{"env": ["a"]}\n{}', 6),
        (b'{"env": {"CNI_COMMAND": 5}}\n{}', 6),
        (b"", 6),
    ],
)
def test_a_malformed_request_is_answered_with_a_cni_error(
    served: tuple[CniServer, SlowPlugin], request_bytes: bytes, code: int
) -> None:
    server, _ = served
    answer = raw(server, request_bytes)
    status, _, out = answer.partition(b"\n")
    assert status == b"1"
    assert json.loads(out)["code"] == code


def test_an_oversized_request_is_refused(served: tuple[CniServer, SlowPlugin]) -> None:
    server, _ = served
    answer = raw(server, b'{"env": {}}\n' + b" " * (MAX_REQUEST + 1))
    status, _, out = answer.partition(b"\n")
    assert status == b"1"
    assert "too large" in json.loads(out)["msg"]


def raw(server: CniServer, data: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(server.socket_path))
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may answer and close before reading it all
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)
