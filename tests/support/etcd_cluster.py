"""A real etcd cluster on loopback, for tests and benchmarks.

The etcd is the one built from go.etcd.io/etcd/server/v3 at the version pinned
in third_party/programs (3.6.16) by scripts/build-third-party; the same build
serves the kube-apiserver fixture. (Until issue 9 it was Debian's 3.4.23.)

Members listen on free loopback ports with their data under one directory.
:meth:`EtcdCluster.stop` kills every member and removes the data; use the
cluster as a context manager so that happens even when a test fails.
"""

from __future__ import annotations

import http.client
import json
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import IO, Any

from tests.support import third_party

START_TIMEOUT = 60.0


def etcd_binary() -> Path:
    """The built etcd server (raises, naming the build command, when it is missing)."""
    return third_party.binary("etcd")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Member:
    """One etcd process: its name, ports and data directory."""

    def __init__(self, name: str, base: Path) -> None:
        self.name = name
        self.client_port = free_port()
        self.peer_port = free_port()
        self.data_dir = base / name
        self.log_path = base / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    def command(self, initial_cluster: str, state: str) -> list[str]:
        return [
            str(etcd_binary()),
            f"--name={self.name}",
            f"--data-dir={self.data_dir}",
            f"--listen-client-urls={self.client_url}",
            f"--advertise-client-urls={self.client_url}",
            f"--listen-peer-urls={self.peer_url}",
            f"--initial-advertise-peer-urls={self.peer_url}",
            f"--initial-cluster={initial_cluster}",
            f"--initial-cluster-state={state}",
            "--initial-cluster-token=multinic-test",
            # Short raft timers: a killed leader is replaced in about a second.
            "--heartbeat-interval=50",
            "--election-timeout=500",
            "--logger=zap",
            "--log-outputs=stderr",
            "--log-level=warn",
        ]

    def start(self, initial_cluster: str, state: str) -> None:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command(initial_cluster, state), stdout=self._log, stderr=self._log
        )

    def kill(self) -> None:
        """SIGKILL, as a crash would: no clean shutdown."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def _ask(self, method: str, path: str, body: bytes | None = None) -> dict[str, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.client_port, timeout=1)
        try:
            conn.request(method, path, body)
            answer: dict[str, Any] = json.loads(conn.getresponse().read())
            return answer
        finally:
            conn.close()

    def is_leader(self) -> bool:
        """Whether this member leads the raft group now (False when it does not answer)."""
        try:
            status = self._ask("POST", "/v3/maintenance/status", b"{}")
        except (OSError, ValueError, http.client.HTTPException):
            return False
        return bool(status.get("leader") == status.get("header", {}).get("member_id"))

    def server_version(self) -> str:
        """What the member says it is (``/version``'s ``etcdserver``)."""
        return str(self._ask("GET", "/version")["etcdserver"])

    def healthy(self) -> bool:
        try:
            return self._ask("GET", "/health").get("health") == "true"
        except (OSError, ValueError, http.client.HTTPException):
            return False


class EtcdCluster:
    """``size`` etcd members on loopback under ``base``."""

    def __init__(self, base: Path, size: int = 3) -> None:
        base.mkdir(parents=True, exist_ok=True)
        self.base = base
        self.members = [Member(f"m{n}", base) for n in range(size)]
        self.initial_cluster = ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    @property
    def endpoints(self) -> list[str]:
        return [m.client_url for m in self.members]

    def start(self) -> None:
        for member in self.members:
            member.start(self.initial_cluster, "new")
        self.wait_healthy(self.members)

    def leader(self) -> Member:
        """The member leading now (waits for an election if there is none)."""
        end = time.monotonic() + START_TIMEOUT
        while time.monotonic() < end:
            for member in self.members:
                if member.process is not None and member.is_leader():
                    return member
            time.sleep(0.1)
        raise RuntimeError(f"no etcd leader: {self.logs()}")

    def kill(self, member: Member) -> None:
        member.kill()

    def restart(self, member: Member) -> None:
        member.start(self.initial_cluster, "existing")

    def wait_healthy(self, members: list[Member], timeout: float = START_TIMEOUT) -> None:
        end = time.monotonic() + timeout
        while not all(m.healthy() for m in members):
            for member in members:
                if member.process is not None and member.process.poll() is not None:
                    raise RuntimeError(f"etcd {member.name} exited: {self.log_tail(member)}")
            if time.monotonic() > end:
                raise RuntimeError(f"etcd not healthy after {timeout}s: {self.logs()}")
            time.sleep(0.1)

    def stop(self) -> None:
        for member in self.members:
            member.kill()
        shutil.rmtree(self.base, ignore_errors=True)

    def log_tail(self, member: Member) -> str:
        try:
            return member.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def logs(self) -> str:
        return "\n".join(f"--- {m.name}\n{self.log_tail(m)}" for m in self.members)

    def __enter__(self) -> EtcdCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
