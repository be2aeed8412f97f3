"""Real pods, side by side: created -> Running with all interfaces, kubelet + containerd.

One control plane (tests/support/kube.py) and one node of real parts
(tests/support/kubelet_node.py: containerd 1.6 + runc, kubelet 1.37,
``multinic node``). Two contenders, on the same node in the same run:

* **multinic**: containerd executes ``multinic-shim``; the daemon attaches the
  primary (podnet: ``multinic-bridge`` + ``multinic-host-local`` on the Node's
  podCIDR) and two macvlan secondaries from NADs (the pod's networks
  annotation). A pod counts when it is Running and its network-status
  annotation lists all three interfaces.
* **reference**: containerd executes the reference ``bridge`` + ``host-local``
  (CNI plugins 1.10, built from their module) from a conflist that sorts
  before ours, primary only. A pod counts when it is Running with a pod IP.

Two batches of ``--pods`` pods per contender and round: **burst**, all
created at once (one POST each, from a thread each), and **serial**, each
created when the previous one counts. A pod's clock starts just before its
POST; the pod list is polled every 50 ms until it counts. After a batch its
pods are deleted and the node is waited for to have no sandbox left. The
contenders alternate, the first one rotating per round (``--rounds``). Prints p50/p99 per
contender and their ratio; fails when any pod's addresses are not from the
contender's network or when anything is left on the node.

Run as root:  .venv/bin/python benchmarks/kubelet_pods.py [--pods 20] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support import third_party  # noqa: E402
from tests.support.kube import KubeCluster  # noqa: E402
from tests.support.kube_pods import (  # noqa: E402
    STATUS_ANNOTATION,
    macvlan_nad,
    pod_manifest,
    service_account,
)
from tests.support.kubelet_node import KubeletNode  # noqa: E402

REFERENCE_SUBNET = "198.18.196.0/24"
SECONDARY_SUBNETS = ("198.18.197.0/24", "198.18.198.0/24")
REFERENCE_CONFLIST = "00-aaa-reference.conflist"
POLL = 0.05
CONTENDERS = ("multinic", "reference")
MODES = ("burst", "serial")
BATCH_TIMEOUT = 300.0


def reference_conflist(node: KubeletNode) -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0",
        "name": "reference",
        "plugins": [
            {
                "type": "bridge",
                "bridge": f"{node.bridge}r",
                "isGateway": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": REFERENCE_SUBNET}]],
                    "dataDir": str(node.dirs["multinic"] / "reference-ipam"),
                },
            }
        ],
    }


class Bench:
    def __init__(self, cluster: KubeCluster, node: KubeletNode, namespace: str) -> None:
        self.cluster, self.node, self.namespace = cluster, node, namespace
        self.times: dict[tuple[str, str], list[float]] = {}
        self.serial = 0

    def use(self, contender: str) -> None:
        """containerd loads the first conflist by name, and reloads when the dir changes."""
        path = self.node.dirs["cni-conf"] / REFERENCE_CONFLIST
        if contender == "reference":
            path.write_text(json.dumps(reference_conflist(self.node)))
        else:
            path.unlink(missing_ok=True)
        time.sleep(2)  # containerd's config syncer reacts to the change (fsnotify)

    def batch(self, contender: str, count: int, mode: str) -> None:
        """``count`` pods at once (``burst``) or each after the previous counts (``serial``)."""
        self.serial += 1
        names = [f"{contender[:3]}-{self.serial}-{i}" for i in range(count)]
        started: dict[str, float] = {}
        done: dict[str, float] = {}
        if mode == "burst":
            with ThreadPoolExecutor(count) as pool:
                list(pool.map(lambda n: self._create(contender, n, started), names))
            done = self._wait_counted(contender, started)
        else:
            for name in names:
                self._create(contender, name, started)
                done |= self._wait_counted(contender, {name: started[name]})
        self.times.setdefault((contender, mode), []).extend(done[n] - started[n] for n in names)
        self._delete_all()

    def _create(self, contender: str, name: str, started: dict[str, float]) -> None:
        """POST the pod; its clock starts just before."""
        networks = "data-0, data-1" if contender == "multinic" else ""
        manifest = pod_manifest(name, self.namespace, self.node.name, networks)
        started[name] = time.monotonic()
        status, body = self.cluster.request(
            "POST", f"/api/v1/namespaces/{self.namespace}/pods", manifest
        )
        if status != 201:
            raise RuntimeError(f"creating pod {name}: {status} {body[:300]!r}")

    def _wait_counted(self, contender: str, started: dict[str, float]) -> dict[str, float]:
        done: dict[str, float] = {}
        end = time.monotonic() + BATCH_TIMEOUT
        while len(done) < len(started):
            if time.monotonic() > end:
                raise RuntimeError(f"{contender}: pods not running: {set(started) - set(done)}")
            status, body = self.cluster.get(f"/api/v1/namespaces/{self.namespace}/pods")
            now = time.monotonic()
            for pod in json.loads(body)["items"] if status == 200 else []:
                name = pod["metadata"]["name"]
                if name in started and name not in done and counts(contender, pod):
                    done[name] = now
            time.sleep(POLL)
        return done

    def _delete_all(self) -> None:
        self.cluster.kubectl(
            "delete", "pods", "--all", "-n", self.namespace, "--timeout=300s", timeout=330
        )
        self.node.wait_for(lambda: not self.node.sandboxes(self.namespace), "sandboxes removed")


def counts(contender: str, pod: dict[str, Any]) -> bool:
    """Running with all of the contender's interfaces (and checked: from the right network)."""
    if pod["status"].get("phase") != "Running" or not pod["status"].get("podIP"):
        return False
    if contender == "reference":
        if not pod["status"]["podIP"].startswith(REFERENCE_SUBNET.rsplit(".", 2)[0]):
            raise RuntimeError(f"reference pod with a foreign address: {pod['status']['podIP']}")
        return True
    status = json.loads(pod["metadata"].get("annotations", {}).get(STATUS_ANNOTATION, "[]"))
    return [s["interface"] for s in status] == ["eth0", "net1", "net2"]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def report(bench: Bench, pods: int, rounds: int) -> None:
    print(f"pods created -> Running with all interfaces; {pods} pods a batch, {rounds} rounds")
    print(f"{'mode':<7} {'contender':<10} {'pods':>5} {'p50 s':>7} {'p99 s':>7} {'max s':>7}")
    for mode in MODES:
        p50 = {}
        for contender in CONTENDERS:
            values = bench.times[(contender, mode)]
            p50[contender] = statistics.median(values)
            print(
                f"{mode:<7} {contender:<10} {len(values):>5} {p50[contender]:>7.2f} "
                f"{percentile(values, 0.99):>7.2f} {max(values):>7.2f}"
            )
        print(f"{mode:<7} multinic / reference (p50): {p50['multinic'] / p50['reference']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pods", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="h14p-bench-") as tmp,
        KubeCluster(Path(tmp) / "kube") as cluster,
        KubeletNode(cluster) as node,
        cluster.namespace("h14p-bench") as ns,
    ):
        data_dir = str(node.dirs["multinic"] / "ipam")
        cluster.apply(
            service_account(ns),
            *(
                macvlan_nad(f"data-{i}", ns, node.nics[i], SECONDARY_SUBNETS[i], data_dir)
                for i in range(2)
            ),
        )
        for plugin in ("bridge", "host-local"):  # containerd 1.6 reads one bin dir
            (node.dirs["cni-bin"] / plugin).symlink_to(third_party.reference_plugins() / plugin)
        bench = Bench(cluster, node, ns)
        for round_ in range(args.rounds):
            for contender in CONTENDERS[round_ % 2 :] + CONTENDERS[: round_ % 2]:
                bench.use(contender)
                for mode in MODES:
                    bench.batch(contender, args.pods, mode)
        bench.use("multinic")
        report(bench, args.pods, args.rounds)


if __name__ == "__main__":
    main()
