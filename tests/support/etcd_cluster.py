"""A real etcd cluster on loopback, for tests and benchmarks.

The etcd is the one built from go.etcd.io/etcd/server/v3 at the version pinned
in third_party/programs (3.6.16) by scripts/build-third-party; the same build
serves the kube-apiserver fixture. (Until issue 9 it was Debian's 3.4.23.)

Members listen on free loopback ports with their data under one directory; their
command line is the lab's (:func:`multinic.lab.etcd.member_command`).
:meth:`EtcdCluster.stop` kills every member and removes the data; use the
cluster as a context manager so that happens even when a test fails.
"""

from __future__ import annotations

import base64
import http.client
import json
import shutil
import signal
import ssl
import subprocess
import time
from pathlib import Path
from typing import IO, Any

from multinic.lab.etcd import member_command
from multinic.lab.pki import Authority
from multinic.lab.ports import free_port
from tests.support import third_party
from tests.support.lifecycle import StartedWith

START_TIMEOUT = 60.0


def etcd_binary() -> Path:
    """The built etcd server (raises, naming the build command, when it is missing)."""
    return third_party.binary("etcd")


class Tls:
    """A CA, the members' serving certificate and a client certificate, made for one cluster."""

    def __init__(self, directory: Path) -> None:
        self.ca = Authority(directory)
        self.server = self.ca.server(
            "etcd-server", ips=["127.0.0.1"], dns=["localhost"], client_too=True
        )
        # No CommonName: with authentication on, etcd's JSON gateway refuses a client
        # certificate that has one ("CommonName of client sending a request against
        # gateway will be ignored"); the user comes from the password's token instead.
        self.client = self.ca.client("etcd-client", "", ("multinic-client",))

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca.cert))
        context.load_cert_chain(str(self.client[0]), str(self.client[1]))
        return context


class Member:
    """One etcd process: its name, ports and data directory."""

    def __init__(self, name: str, base: Path, tls: Tls | None = None) -> None:
        self.name = name
        self.tls = tls
        self.client_port = free_port()
        self.peer_port = free_port()
        self.data_dir = base / name
        self.log_path = base / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def client_url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    def command(self, initial_cluster: str, state: str) -> list[str]:
        return member_command(
            etcd_binary(), self.name, self.data_dir, self.client_url, self.peer_url,
            initial_cluster, state, self._tls_flags(),
        )  # fmt: skip

    def _tls_flags(self) -> list[str]:
        if self.tls is None:
            return []
        cert, key = self.tls.server
        return [
            f"--cert-file={cert}",
            f"--key-file={key}",
            f"--trusted-ca-file={self.tls.ca.cert}",
            "--client-cert-auth",
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

    def _ask(
        self, method: str, path: str, body: bytes | None = None, token: str | None = None
    ) -> dict[str, Any]:
        if self.tls is not None:
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                "127.0.0.1", self.client_port, timeout=5, context=self.tls.context()
            )
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.client_port, timeout=1)
        try:
            conn.request(method, path, body, {"Authorization": token} if token else {})
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


class EtcdCluster(StartedWith):
    """``size`` etcd members on loopback under ``base``."""

    def __init__(self, base: Path, size: int = 3, *, tls: bool = False) -> None:
        base.mkdir(parents=True, exist_ok=True)
        self.base = base
        #: With ``tls``: clients must speak TLS and present a certificate of this CA.
        self.tls = Tls(base / "pki") if tls else None
        self.members = [Member(f"m{n}", base, self.tls) for n in range(size)]
        self.initial_cluster = ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    @property
    def endpoints(self) -> list[str]:
        return [m.client_url for m in self.members]

    @property
    def pids(self) -> list[int]:
        """The running members' process ids (benchmarks read their CPU time)."""
        return [m.process.pid for m in self.members if m.process and m.process.poll() is None]

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

    def enable_auth(self, user: str, password: str, prefix: str) -> None:
        """Turn on etcd's authentication with ``user`` allowed to read and write ``prefix``."""
        member = self.members[0]

        def call(path: str, body: dict[str, Any], token: str | None = None) -> dict[str, Any]:
            answer = member._ask("POST", path, json.dumps(body).encode(), token)
            if "error" in answer or (answer.get("code")):
                raise RuntimeError(f"etcd {path}: {answer}")
            return answer

        def b64(text: str) -> str:
            return base64.b64encode(text.encode()).decode()

        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        call("/v3/auth/role/add", {"name": "root"})
        call("/v3/auth/user/add", {"name": "root", "password": "root-" + password})
        call("/v3/auth/user/grant", {"user": "root", "role": "root"})
        call("/v3/auth/role/add", {"name": "ipam"})
        perm = {"permType": "READWRITE", "key": b64(prefix), "range_end": b64(end)}
        call("/v3/auth/role/grant", {"name": "ipam", "perm": perm})
        call("/v3/auth/user/add", {"name": user, "password": password})
        call("/v3/auth/user/grant", {"user": user, "role": "ipam"})
        call("/v3/auth/enable", {})

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
