"""Smoke check of the anchors against a fresh test control plane (``make anchors-smoke``).

Proves that the Whereabouts and Multus thick our benchmarks compare with are
real and work here (benchmarks/anchors.py runs them):

1. Whereabouts allocates one address from a range through the test apiserver:
   the address is inside the range, the range's IPPool object (read with kubectl)
   holds the allocation for our container, DEL releases it again.
2. Multus thick's daemon starts against the apiserver (its certificate requested,
   approved and signed), and its shim answers ADD for a Pod object bound to the
   daemon's node with one NetworkAttachmentDefinition: the pod's namespace gets
   eth0 (the default network) and net1 (the NAD) with addresses from their
   subnets, and the Pod carries the network-status annotation through the API.
   DEL then leaves no interface in the pod, no host veth in the node, no
   host-local reservation and nothing in Multus' cache.
3. Afterwards nothing of it is left on this machine: no namespace, process,
   mount, link, scratch file, nor any of the well-known paths Multus and the
   plugins default to.

Prints the time of each step; exits 1 on the first failure (with the reason).

Run:  .venv/bin/python benchmarks/anchors_smoke.py   (root; `make anchors` first)
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from tests.support import third_party  # noqa: E402
from tests.support.kube import KubeCluster  # noqa: E402

import anchors  # noqa: E402
from multinic.lab import netns as lab  # noqa: E402

T = TypeVar("T")

WHEREABOUTS_RANGE = "10.77.0.0/24"
CLUSTER_SUBNET = "10.250.0.0/24"
NAD_SUBNET = "10.251.0.0/24"

#: Where Multus, libcni and the plugins put things by default: none may appear.
HOST_PATHS = [
    Path("/run/multus"),
    Path("/var/lib/cni/multus"),
    Path("/etc/cni/multus"),
    Path("/etc/cni/net.d/00-multus.conf"),
    Path("/etc/cni/net.d/multus.d"),
    Path("/run/k8s.cni.cncf.io"),
    Path("/var/lib/cni/networks/anchors-cluster"),
    Path("/var/lib/cni/results"),
    Path("/etc/cni/net.d/whereabouts.d"),
]


class Report:
    def __init__(self) -> None:
        self.rows: list[tuple[str, float]] = []

    def step(self, name: str, fn: Callable[[], T]) -> T:
        began = time.monotonic()
        try:
            return fn()
        finally:
            self.rows.append((name, time.monotonic() - began))

    def print(self) -> None:
        width = max((len(name) for name, _ in self.rows), default=0)
        for name, seconds in self.rows:
            print(f"  {name:<{width}}  {seconds:7.2f} s")


def check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def addresses_in(netns: Path, ifname: str) -> list[str]:
    return lab.addresses(ifname, netns=netns.name)


def inside(address: str, subnet: str) -> bool:
    return ipaddress.ip_interface(address).ip in ipaddress.ip_network(subnet)


def files_under(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


def smoke_whereabouts(cluster: KubeCluster, work: Path, namespace: str, report: Report) -> None:
    with anchors.Whereabouts(cluster, work) as wb:
        report.step("whereabouts: CRDs from the module cache", wb.install_crds)
        config = wb.config(WHEREABOUTS_RANGE)
        cid = f"anchors-{secrets.token_hex(6)}"
        result = report.step("whereabouts: ADD", lambda: wb.add(config, cid, namespace, "wb-pod"))
        ips = [ip["address"] for ip in result.get("ips", [])]
        check(len(ips) == 1, f"whereabouts ADD gave {ips}, wanted one address: {result}")
        check(inside(ips[0], WHEREABOUTS_RANGE), f"{ips[0]} is outside {WHEREABOUTS_RANGE}")
        allocations = report.step(
            "whereabouts: IPPool via kubectl", lambda: wb.allocations(WHEREABOUTS_RANGE)
        )
        offset = int(ipaddress.ip_interface(ips[0]).ip) - int(
            ipaddress.ip_network(WHEREABOUTS_RANGE).network_address
        )
        held = allocations.get(str(offset), {})
        check(
            held.get("id") == cid and held.get("podref") == f"{namespace}/wb-pod",
            f"IPPool for {WHEREABOUTS_RANGE} does not hold {ips[0]} for {cid}: {allocations}",
        )
        report.step("whereabouts: DEL", lambda: wb.delete(config, cid, namespace, "wb-pod"))
        left = wb.allocations(WHEREABOUTS_RANGE)
        check(not left, f"DEL left allocations in the IPPool: {left}")
        reservations = [r["metadata"]["name"] for r in wb.reservations()]
        check(not reservations, f"DEL left overlapping-range reservations: {reservations}")
        print(
            f"whereabouts {wb.version}: ADD gave {ips[0]} (pool offset {offset}); DEL released it"
        )


def wait_for_default_service_account(cluster: KubeCluster, namespace: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        got = cluster.kubectl("get", "serviceaccount", "default", "-n", namespace, check=False)
        if got.returncode == 0:
            return
        time.sleep(0.2)
    raise AssertionError(f"no default ServiceAccount in {namespace} after 60 s")


def smoke_multus(cluster: KubeCluster, work: Path, namespace: str, report: Report) -> None:
    multus = anchors.MultusThick(cluster, work, cluster_subnet=CLUSTER_SUBNET)
    try:
        report.step("multus: daemon start (certificate approved, socket up)", multus.start)
        nad = multus.bridge_nad("anchors-net", namespace, NAD_SUBNET)
        nad_bridge = json.loads(nad["spec"]["config"])["bridge"]

        def create_pod() -> dict[str, Any]:
            cluster.apply(nad)
            wait_for_default_service_account(cluster, namespace)
            cluster.apply(multus.pod("anchors-pod", namespace, "anchors-net"))
            return cluster.get_object("pod", "anchors-pod", namespace)

        pod = report.step("multus: NAD and Pod through the API", create_pod)
        cid = secrets.token_hex(32)
        with anchors.pod_sandbox() as sandbox:
            result = report.step("multus: shim ADD", lambda: multus.add(cid, sandbox, pod))
            links = lab.link_names(sandbox.name)
            check({"eth0", "net1"} <= links, f"pod namespace has {sorted(links)}")
            eth0, net1 = addresses_in(sandbox, "eth0"), addresses_in(sandbox, "net1")
            check(
                len(eth0) == 1 and inside(eth0[0], CLUSTER_SUBNET),
                f"eth0 has {eth0}, wanted one address in {CLUSTER_SUBNET}",
            )
            check(
                len(net1) == 1 and inside(net1[0], NAD_SUBNET),
                f"net1 has {net1}, wanted one address in {NAD_SUBNET}",
            )
            check(
                any(ip["address"] == eth0[0] for ip in result.get("ips", [])),
                f"the shim's result does not name eth0's {eth0[0]}: {result}",
            )
            annotations = report.step(
                "multus: Pod's network-status via kubectl",
                lambda: cluster.get_object("pod", "anchors-pod", namespace)["metadata"].get(
                    "annotations", {}
                ),
            )
            raw = annotations.get(anchors.NETWORK_STATUS_ANNOTATION)
            check(raw is not None, f"no network-status annotation on the Pod: {annotations}")
            status = {entry.get("interface"): entry for entry in json.loads(raw)}
            check(
                status.get("eth0", {}).get("ips") == [eth0[0].split("/")[0]]
                and status.get("eth0", {}).get("default") is True,
                f"network-status has no default eth0 with {eth0[0]}: {raw}",
            )
            check(
                status.get("net1", {}).get("name") == f"{namespace}/anchors-net"
                and status.get("net1", {}).get("ips") == [net1[0].split("/")[0]],
                f"network-status has no net1 from {namespace}/anchors-net with {net1[0]}: {raw}",
            )
            node_links = multus.node_links()
            check(
                {multus.cluster_bridge, nad_bridge} <= node_links,
                f"the bridges are not in the node namespace: {sorted(node_links)}",
            )

            report.step("multus: shim DEL", lambda: multus.delete(cid, sandbox, pod))
            links = lab.link_names(sandbox.name)
            check(links == {"lo"}, f"DEL left links in the pod: {sorted(links)}")
            node_links = multus.node_links()
            check(
                node_links == {"lo", multus.cluster_bridge, nad_bridge},
                f"DEL left links in the node: {sorted(node_links)}",
            )
            reserved = [
                f
                for f in files_under(multus.ipam_dir)
                if Path(f).name != "lock" and not Path(f).name.startswith("last_reserved_ip")
            ]
            check(not reserved, f"DEL left host-local reservations: {reserved}")
            cached = files_under(multus.cache_dir)
            check(not cached, f"DEL left files in Multus' cache: {cached}")
        approved = len(multus.approver.approved) if multus.approver else 0
        relayed = multus.relay.connections if multus.relay else 0
        print(
            f"multus thick {third_party.version('multus-daemon')}: node {multus.node}, "
            f"eth0 {eth0[0]}, net1 {net1[0]}; network-status set; DEL left nothing "
            f"(certificate requests approved: {approved}, apiserver connections relayed: {relayed})"
        )
    except BaseException:
        print(f"--- multus daemon output (tail)\n{multus.output_tail(12000)}", file=sys.stderr)
        raise
    finally:
        pid = multus.process.pid if multus.process else None
        report.step("multus: stop and clean up", multus.stop)
        check(
            pid is None or not Path(f"/proc/{pid}").exists(),
            f"multus-daemon (pid {pid}) still running",
        )
        check(not multus.netns_path.exists(), f"{multus.netns_path} left behind")


def leftovers(before: dict[Path, bool], work: Path) -> list[str]:
    found = [str(p) for p, existed in before.items() if not existed and p.exists()]
    mounts = Path("/proc/self/mountinfo").read_text()
    found += [line for line in mounts.splitlines() if str(work) in line or "mnan-" in line]
    host_links = lab.link_names()
    found += [f"host link {name}" for name in host_links if name.startswith(("mnac", "mnan"))]
    found += [f"namespace {n.name}" for n in lab.NETNS_DIR.iterdir() if n.name.startswith("mnan-")]
    return found


def main() -> int:
    if os.geteuid() != 0:
        print("anchors smoke: needs root (network namespaces)", file=sys.stderr)
        return 2
    report = Report()
    before = {p: p.exists() for p in HOST_PATHS}
    work = Path(tempfile.mkdtemp(prefix="multinic-anchors-"))
    failure: str | None = None
    try:
        cluster = KubeCluster(work / "kube")
        report.step("control plane start (etcd, apiserver, controller-manager)", cluster.start)
        try:
            with cluster.namespace("anchors") as namespace:
                smoke_whereabouts(cluster, work, namespace, report)
                smoke_multus(cluster, work, namespace, report)
        finally:
            report.step("control plane stop", cluster.stop)
    except Exception as exc:
        failure = "".join(traceback.format_exception_only(exc)).strip()
        traceback.print_exc()
    finally:
        left_files = files_under(work) if work.exists() else []
        shutil.rmtree(work, ignore_errors=True)
    left = leftovers(before, work)
    if left_files:
        left.append(f"scratch files {left_files}")
    print("anchors smoke:")
    report.print()
    if left:
        print(f"left behind: {left}")
    if failure or left:
        print(f"anchors smoke: FAILED: {failure or 'leftovers'}")
        return 1
    print("anchors smoke: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
