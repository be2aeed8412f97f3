"""The main job: two pods, each on a primary and a secondary network, through our runtime.

Two namespaces stand in for two CNF pods on one node. Each is attached to

* a primary network: ``multinic-bridge`` with ``multinic-host-local`` (a /24 per
  node, the pod's cluster-routable address), and
* a secondary, data-plane network: ``multinic-macvlan`` on a NIC standing in for
  a data-plane vNIC, with the cluster-wide ``multinic-ipam`` on its embedded
  SQLite store (the seed's "IPAM of secondary interfaces independent of the
  primary").

Then the pods ping each other across both networks, every attachment is
CHECKed, deleted, deleted again, and the demo proves nothing is left: links,
cache entries, IPAM reservations. Every object it creates is removed, also on
failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multinic.cni.config import NetworkConfigList, parse_network_config_list
from multinic.cni.runtime import Runtime, RuntimeConf
from multinic.cni.types import Result
from multinic.ipam import blocks
from multinic.ipam.sqlite_store import SQLiteStore
from multinic.lab import netns as lab
from multinic.plugins.install import install_plugins

#: RFC 2544 benchmarking space: never routed, so it cannot clash with a real network.
PRIMARY_SUBNET = "198.18.0.0/24"
SECONDARY_SUBNET = "198.18.1.0/24"


@dataclass(frozen=True)
class DemoPlan:
    """Names for this run, unique per process so two demos never collide."""

    pods: tuple[str, str]
    bridge: str
    data_nic: str  # stands in for a data-plane vNIC: the macvlan master
    data_peer: str
    primary: str = "multinic-primary"
    secondary: str = "multinic-dataplane"

    @classmethod
    def for_process(cls) -> DemoPlan:
        tag = os.getpid() % 100000
        return cls(
            pods=(f"mn-demo-{tag}-a", f"mn-demo-{tag}-b"),
            bridge=f"mndemo{tag}",
            data_nic=f"mndata{tag}",
            data_peer=f"mndatap{tag}",
        )

    def attachments(self) -> list[tuple[str, str, str]]:
        """(network, pod, ifname) for every attachment, in ADD order."""
        return [
            (net, pod, ifname)
            for pod in self.pods
            for net, ifname in ((self.primary, "eth0"), (self.secondary, "net1"))
        ]


class DemoPaths:
    """The scratch directory's layout: plugins, cache and IPAM state all live here."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.bin = root / "bin"
        self.cache = root / "cache"
        self.host_local = root / "host-local"
        self.ipam_db = root / "ipam.db"


def primary_network(plan: DemoPlan, paths: DemoPaths) -> NetworkConfigList:
    """multinic-bridge + multinic-host-local: the pods' cluster-routable addresses."""
    return parse_network_config_list(
        {
            "cniVersion": "1.1.0",
            "name": plan.primary,
            "plugins": [
                {
                    "type": "multinic-bridge",
                    "bridge": plan.bridge,
                    "isGateway": True,
                    "ipam": {
                        "type": "multinic-host-local",
                        "ranges": [[{"subnet": PRIMARY_SUBNET}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(paths.host_local),
                    },
                }
            ],
        }
    )


def secondary_network(plan: DemoPlan, paths: DemoPaths) -> NetworkConfigList:
    """multinic-macvlan + cluster-wide multinic-ipam: a data-plane interface per pod."""
    ipam: dict[str, Any] = {
        "type": "multinic-ipam",
        "range": SECONDARY_SUBNET,
        "store": {"type": "sqlite", "path": str(paths.ipam_db)},
    }
    return parse_network_config_list(
        {
            "cniVersion": "1.1.0",
            "name": plan.secondary,
            "plugins": [
                {
                    "type": "multinic-macvlan",
                    "master": plan.data_nic,
                    "mode": "bridge",
                    "ipam": ipam,
                }
            ],
        }
    )


@contextlib.contextmanager
def demo_environment(plan: DemoPlan) -> Iterator[DemoPaths]:
    """Pods, the data-plane NIC, our installed plugins; all removed on exit."""
    paths = DemoPaths(Path(tempfile.mkdtemp(prefix="multinic-demo-")))
    try:
        install_plugins(str(paths.bin))
        with contextlib.ExitStack() as stack:
            for pod in plan.pods:
                stack.enter_context(lab.scratch_netns(pod))
            lab.ip("link", "add", plan.data_nic, "type", "veth", "peer", "name", plan.data_peer)
            for link in (plan.data_nic, plan.data_peer):
                lab.ip("link", "set", link, "up")
            yield paths
    finally:
        for link in (plan.data_nic, plan.bridge):
            lab.delete_link(link)
        shutil.rmtree(paths.root, ignore_errors=True)


def make_runtime(paths: DemoPaths) -> Runtime:
    return Runtime([paths.bin], cache_dir=paths.cache)


def runtime_conf(pod: str, ifname: str) -> RuntimeConf:
    return RuntimeConf(f"demo-{pod}", str(lab.netns_path(pod)), ifname)


def ping(from_pod: str, address: str) -> bool:
    """One ping from inside ``from_pod``; only ever to an address in a demo pod."""
    done = subprocess.run(
        ["ip", "netns", "exec", from_pod, "ping", "-c", "1", "-W", "2", address],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


def pod_address(result: Result, ifname: str) -> str:
    """The first address the result puts on the pod's ``ifname``."""
    for ip in result.ips:
        if ip.interface is not None and result.interfaces[ip.interface].name == ifname:
            return str(ip.address.ip)
    raise lab.LabError(f"the result has no address on {ifname}")


def leftovers(
    plan: DemoPlan, paths: DemoPaths, runtime: Runtime, results: dict[tuple[str, str], Result]
) -> list[str]:
    """What the ADDs created that is still there after DEL (should be nothing)."""
    found = []
    for network, pod, ifname in plan.attachments():
        if ifname in lab.link_names(pod):
            found.append(f"{ifname} still exists in {pod}")
        if runtime.cache.path(network, runtime_conf(pod, ifname).container_id, ifname).exists():
            found.append(f"the cache entry of {pod}/{ifname} on {network} still exists")
    reserved = [p.name for p in paths.host_local.glob("*/*") if p.name[0].isdigit()]
    found.extend(f"host-local still holds {ip}" for ip in reserved)
    holders = ipam_holders(paths.ipam_db, plan.secondary)
    found.extend(f"multinic-ipam still holds an address for {owner}" for owner in holders)
    host_ends = {i.name for r in results.values() for i in r.interfaces if not i.sandbox}
    found.extend(
        f"host link {name} is left"
        for name in host_ends - {plan.bridge, plan.data_nic}
        if name in lab.link_names()
    )
    return found


def ipam_holders(db: Path, network: str) -> list[str]:
    """The attachments the cluster-wide IPAM's embedded store still holds addresses for."""
    if not db.exists():
        return []
    store = SQLiteStore(str(db))
    try:
        owners = blocks.attachments(store, network, time.monotonic() + 10)
    finally:
        store.close()
    return [f"{owner.container_id}/{owner.ifname}" for owner in owners]


def attach_all(
    runtime: Runtime, plan: DemoPlan, nets: Sequence[NetworkConfigList]
) -> dict[tuple[str, str], Result]:
    """ADD every attachment; the results by (pod, ifname)."""
    by_name = {net.name: net for net in nets}
    results = {}
    for network, pod, ifname in plan.attachments():
        results[(pod, ifname)] = runtime.add(by_name[network], runtime_conf(pod, ifname))
    return results


def check_and_delete_all(
    runtime: Runtime, plan: DemoPlan, nets: Sequence[NetworkConfigList]
) -> None:
    """CHECK every attachment, then DEL each twice (DEL is idempotent), newest first."""
    by_name = {net.name: net for net in nets}
    for network, pod, ifname in plan.attachments():
        runtime.check(by_name[network], runtime_conf(pod, ifname))
    for network, pod, ifname in reversed(plan.attachments()):
        runtime.delete(by_name[network], runtime_conf(pod, ifname))
        runtime.delete(by_name[network], runtime_conf(pod, ifname))
