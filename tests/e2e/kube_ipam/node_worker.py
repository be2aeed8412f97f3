"""One simulated node for the Kubernetes store: CNI calls of multinic-ipam, one JSON line each.

Run as ``python -m tests.e2e.kube_ipam.node_worker SPEC_JSON``. With ``bin_dir``
each call runs the installed ``multinic-ipam`` executable, as a runtime does;
without, it goes through the plugin's CNI entry in this process, which is how
``kill_at`` lands a SIGKILL just before or just after the store's commit for one
container (as tests/e2e/etcd/node_worker.py does for etcd).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from multinic.cni import skel
from multinic.ipam.kube_store import KubeStore
from multinic.ipam.store import Written
from multinic.plugins.cluster_ipam import PLUGIN

#: The container the current call is for (the kill hook's target is a container,
#: not a commit count: a retried commit would shift a count).
CURRENT = [""]


def install_kill_hook(when: str, target: str) -> None:
    real_commit = KubeStore.commit

    def commit(
        self: KubeStore,
        expected: Mapping[str, int],
        changes: Mapping[str, bytes | None],
        *,
        deadline: float,
    ) -> Written | None:
        if CURRENT[0] == target and when == "before-commit":
            os.kill(os.getpid(), signal.SIGKILL)
        written = real_commit(self, expected, changes, deadline=deadline)
        if CURRENT[0] == target and when == "after-commit" and written is not None:
            os.kill(os.getpid(), signal.SIGKILL)
        return written

    KubeStore.commit = commit  # type: ignore[method-assign]


def call(spec: dict[str, Any], env: dict[str, str], stdin: bytes) -> tuple[int, bytes]:
    if not spec.get("bin_dir"):
        return skel.run(PLUGIN, env, stdin)
    done = subprocess.run(
        [str(Path(spec["bin_dir"]) / "multinic-ipam")],
        input=stdin,
        env=env,
        capture_output=True,
        timeout=300,
        check=False,
    )
    return done.returncode, done.stdout


def main(spec: dict[str, Any]) -> None:
    if spec.get("kill_cid"):
        install_kill_hook(spec["kill_when"], spec["kill_cid"])
    config = spec["config"]
    config["ipam"]["node_name"] = spec["node"]
    stdin = json.dumps(config).encode()
    for cid in spec["containers"]:
        CURRENT[0] = cid
        env = {
            "CNI_COMMAND": spec["command"],
            "CNI_CONTAINERID": cid,
            "CNI_NETNS": f"/var/run/netns/{cid}",
            "CNI_IFNAME": "net1",
            "CNI_PATH": spec.get("bin_dir") or "/opt/cni/bin",
            "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE={spec.get('namespace', 'default')};"
            f"K8S_POD_NAME=pod-{cid};K8S_POD_UID=uid-{cid}",
        }
        start = time.monotonic()
        status, out = call(spec, env, stdin)
        elapsed = time.monotonic() - start
        try:
            answer = json.loads(out) if out.strip() else {}
        except ValueError:
            answer = {"code": -1, "msg": out.decode(errors="replace")[:500]}
        line = {
            "cid": cid,
            "status": status,
            "code": answer.get("code", 0),
            "msg": answer.get("msg", ""),
            "details": answer.get("details", ""),
            "ips": [ip["address"] for ip in answer.get("ips", [])],
            "seconds": elapsed,
        }
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
