"""A 3-member etcd cluster on loopback for a lab (``multinic lab up --store etcd``).

The members run as processes of their own (the lab outlives ``lab up``), with
their data under the lab's state directory and their pids in the lab's state,
so ``lab down`` stops them from any process. The etcd server is the one
``scripts/build-third-party`` builds into ``$MULTINIC_THIRD_PARTY`` (the
version ``third_party/programs`` pins), else ``etcd`` on the PATH.

:func:`member_command` is also what the test suite's etcd clusters run
(``tests/support/etcd_cluster.py``): one command line for both.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from multinic.lab.errors import EtcdError
from multinic.lab.ports import free_port
from multinic.lab.programs import find_program

#: Seconds for the members to elect a leader and answer /health.
START_TIMEOUT = 60.0


def member_command(
    binary: Path,
    name: str,
    data_dir: Path,
    client_url: str,
    peer_url: str,
    initial_cluster: str,
    state: str,
    extra: Sequence[str] = (),
) -> list[str]:
    """The command line of one member of ``initial_cluster`` (``name=peer-url,...``)."""
    return [
        str(binary),
        f"--name={name}",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={client_url}",
        f"--advertise-client-urls={client_url}",
        f"--listen-peer-urls={peer_url}",
        f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster={initial_cluster}",
        f"--initial-cluster-state={state}",
        "--initial-cluster-token=multinic-test",
        # Short raft timers: a killed leader is replaced in about a second.
        "--heartbeat-interval=50",
        "--election-timeout=500",
        "--logger=zap",
        "--log-outputs=stderr",
        "--log-level=warn",
        *extra,
    ]


def start_cluster(base: Path, record: Callable[[str, int], None], size: int = 3) -> list[str]:
    """``size`` members under ``base`` (each in its own session, its log beside its data),
    each ``record``-ed by name and pid as it starts; their client URLs."""
    binary = find_program("etcd")
    base.mkdir(parents=True, exist_ok=True)
    members = [(f"m{n}", free_port(), free_port()) for n in range(size)]
    initial = ",".join(f"{name}=http://127.0.0.1:{peer}" for name, _, peer in members)
    endpoints = []
    for name, client, peer in members:
        url = f"http://127.0.0.1:{client}"
        command = member_command(
            binary, name, base / name, url, f"http://127.0.0.1:{peer}", initial, "new"
        )
        with (base / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        record(f"etcd-{name}", process.pid)
        endpoints.append(url)
    return endpoints


def healthy(endpoint: str) -> bool:
    host, _, port = endpoint.removeprefix("http://").rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=1)
    try:
        conn.request("GET", "/health")
        return bool(json.loads(conn.getresponse().read()).get("health") == "true")
    except (OSError, ValueError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def wait_healthy(endpoints: Sequence[str], timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not all(healthy(e) for e in endpoints):
        if time.monotonic() > deadline:
            raise EtcdError(f"etcd {', '.join(endpoints)} not healthy after {timeout:.0f} s")
        time.sleep(0.1)
