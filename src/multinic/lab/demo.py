"""The main job until the suite grows: one pod, one network, ADD -> CHECK -> DEL.

A namespace stands in for the pod; multinic's CNI runtime runs the reference
``bridge`` (with ``host-local`` IPAM) and ``tuning`` plugins against it, shows
the result and the libcni cache entry, checks, deletes, and proves nothing is
left behind. Every object it creates is removed, also on failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multinic.cni.config import NetworkConfigList, parse_network_config_list
from multinic.cni.runtime import Runtime, RuntimeConf
from multinic.cni.types import Result
from multinic.lab import netns as lab

#: Where Debian's containernetworking-plugins and upstream tarballs put plugins.
REFERENCE_PLUGIN_DIRS = (Path("/usr/lib/cni"), Path("/opt/cni/bin"))
#: RFC 2544 benchmarking space: never routed, so it cannot clash with a real network.
DEMO_SUBNET = "198.18.0.0/24"


@dataclass(frozen=True)
class DemoPlan:
    """Names for this run, unique per process so two demos never collide."""

    netns: str
    bridge: str
    network: str = "multinic-demo"
    container_id: str = "multinic-demo-pod"
    ifname: str = "eth0"

    @classmethod
    def for_process(cls) -> DemoPlan:
        tag = os.getpid() % 100000
        return cls(netns=f"mn-demo-{tag}", bridge=f"mndemo{tag}")


def demo_network(plan: DemoPlan, data_dir: Path) -> NetworkConfigList:
    """bridge + host-local, then tuning: a chain that exercises prevResult."""
    conflist: dict[str, Any] = {
        "cniVersion": "1.0.0",
        # The reference plugins on Debian speak up to 1.0.0: negotiation picks it.
        "cniVersions": ["0.4.0", "1.0.0"],
        "name": plan.network,
        "plugins": [
            {
                "type": "bridge",
                "bridge": plan.bridge,
                "isGateway": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": DEMO_SUBNET}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(data_dir),
                },
            },
            {"type": "tuning", "mtu": 1400, "sysctl": {"net.ipv4.conf.eth0.arp_notify": "1"}},
        ],
    }
    return parse_network_config_list(conflist)


def find_reference_plugins(dirs: Sequence[Path] = REFERENCE_PLUGIN_DIRS) -> list[Path]:
    found = [d for d in dirs if (d / "bridge").exists()]
    if not found:
        raise lab.LabError(
            f"reference CNI plugins not found in {[str(d) for d in dirs]}: "
            "install Debian's containernetworking-plugins (make demo does)"
        )
    return found


@contextlib.contextmanager
def demo_environment(plan: DemoPlan) -> Iterator[tuple[Path, Path]]:
    """The pod namespace and a scratch dir; both removed, and the bridge too, on exit."""
    scratch = Path(tempfile.mkdtemp(prefix="multinic-demo-"))
    try:
        with lab.scratch_netns(plan.netns) as netns_path:
            yield netns_path, scratch
    finally:
        lab.delete_link(plan.bridge)
        shutil.rmtree(scratch, ignore_errors=True)


def leftovers(plan: DemoPlan, runtime: Runtime) -> list[str]:
    """What an ADD created that is still there after DEL (should be nothing)."""
    found = []
    if plan.ifname in lab.link_names(plan.netns):
        found.append(f"{plan.ifname} still exists in {plan.netns}")
    if runtime.cache.path(plan.network, plan.container_id, plan.ifname).exists():
        found.append("the result cache entry still exists")
    return found


def run_cycle(
    runtime: Runtime, net: NetworkConfigList, rt: RuntimeConf, report: DemoReport
) -> Result:
    """ADD, CHECK, DEL, DEL again; ``report`` shows each step as it happens."""
    result = runtime.add(net, rt)
    report.added(result, runtime.cache.path(net.name, rt.container_id, rt.ifname))
    runtime.check(net, rt)
    report.checked()
    runtime.delete(net, rt)
    runtime.delete(net, rt)
    report.deleted()
    return result


class DemoReport:
    """How the demo talks to a person; the CLI supplies a rich implementation."""

    def added(self, result: Result, cache_file: Path) -> None:
        """Called after ADD with the result and the cache file written."""

    def checked(self) -> None:
        """Called after CHECK passed."""

    def deleted(self) -> None:
        """Called after DEL and a second DEL both succeeded."""
