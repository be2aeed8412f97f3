"""One simulated node: runs multinic-ipam ADDs or DELs in this process, one JSON line each.

Run as ``python -m tests.e2e.etcd.node_worker SPEC_JSON``. SPEC holds the
network config, the node name, the container ids and the verb. Each request
goes through the plugin's CNI entry (:func:`multinic.cni.skel.run`) and opens
its own store connection, as a plugin executable would.

``kill_at`` makes the process SIGKILL itself around its N-th store commit
("before-commit": the transaction is never sent; "after-commit": etcd applied
it but the plugin never answered). That is the test's way to land a kill at the
worst moment every time, instead of hoping a timer does.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Mapping
from typing import Any

from multinic.cni import skel
from multinic.ipam.etcd_store import EtcdStore
from multinic.ipam.store import Written
from multinic.plugins.cluster_ipam import PLUGIN


def install_kill_hook(when: str, at: int) -> None:
    real_commit = EtcdStore.commit
    count = 0

    def commit(
        self: EtcdStore,
        expected: Mapping[str, int],
        changes: Mapping[str, bytes | None],
        *,
        deadline: float,
    ) -> Written | None:
        nonlocal count
        count += 1
        if count == at and when == "before-commit":
            os.kill(os.getpid(), signal.SIGKILL)
        written = real_commit(self, expected, changes, deadline=deadline)
        if count == at and when == "after-commit" and written is not None:
            os.kill(os.getpid(), signal.SIGKILL)
        return written

    EtcdStore.commit = commit  # type: ignore[method-assign]


def main(spec: dict[str, Any]) -> None:
    if spec.get("kill_at"):
        install_kill_hook(spec["kill_when"], spec["kill_at"])
    config = spec["config"]
    config["ipam"]["node_name"] = spec["node"]
    stdin = json.dumps(config).encode()
    for cid in spec["containers"]:
        env = {
            "CNI_COMMAND": spec["command"],
            "CNI_CONTAINERID": cid,
            "CNI_NETNS": f"/var/run/netns/{cid}",
            "CNI_IFNAME": "net1",
            "CNI_PATH": "/opt/cni/bin",
        }
        start = time.monotonic()
        status, out = skel.run(PLUGIN, env, stdin)
        elapsed = time.monotonic() - start
        answer = json.loads(out) if out else {}
        line = {
            "cid": cid,
            "status": status,
            "code": answer.get("code", 0),
            "msg": answer.get("msg", ""),
            "ips": [ip["address"] for ip in answer.get("ips", [])],
            "seconds": elapsed,
        }
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
