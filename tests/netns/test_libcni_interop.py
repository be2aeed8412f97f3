"""multinic's runtime and the reference runtime library (libcni) share one node.

Both read and write the same result cache: an attachment ADDed by one is
CHECKed, DELeted and garbage-collected by the other, with nothing left behind.

Both runtimes run in a checked scratch node namespace per test: libcni's
program and our runtime are started from a thread that entered it
(``on_node``), so the plugins' bridge and host veths live there, never in the
real host's namespace; a link beyond the bridge left in the node fails the test.
"""

from __future__ import annotations

import base64
import functools
import json
from pathlib import Path
from typing import Any

import pytest

from multinic.cni.conffiles import load_network
from multinic.cni.config import Attachment
from multinic.cni.runtime import Runtime, RuntimeConf
from multinic.lab import netns as lab
from tests.netns.conftest import REFERENCE_PLUGIN_DIR, unique
from tests.support.conflists import bridge_conflist
from tests.support.lower_plugins import CheckedNode, on_node
from tests.support.refruntime import build_refruntime, refruntime

NETWORK = "shared-net"


@pytest.fixture(scope="session")
def refruntime_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_refruntime(tmp_path_factory.mktemp("refruntime"))


class SharedNode:
    """One config dir, one plugin dir, one cache dir: what both runtimes see."""

    def __init__(self, root: Path, bridge: str) -> None:
        self.conf_dir = root / "net.d"
        self.cache_dir = root / "cache"
        self.data_dir = root / "ipam"
        self.conf_dir.mkdir()
        conflist = bridge_conflist(
            NETWORK,
            bridge,
            self.data_dir,
            "198.18.30.0/24",
            then=({"type": "tuning", "mtu": 1450},),
        )
        (self.conf_dir / "10-shared.conflist").write_text(json.dumps(conflist, indent=2))
        self.net = load_network(self.conf_dir, NETWORK)
        self.runtime = Runtime([REFERENCE_PLUGIN_DIR], cache_dir=self.cache_dir)

    def env(self, rt: RuntimeConf) -> dict[str, str]:
        return {
            "NETCONFPATH": str(self.conf_dir),
            "CNI_PATH": str(REFERENCE_PLUGIN_DIR),
            "CNI_CACHE_DIR": str(self.cache_dir),
            "CNI_CONTAINERID": rt.container_id,
            "CNI_IFNAME": rt.ifname,
        }

    def reference(self, binary: Path, verb: str, rt: RuntimeConf) -> str:
        done = on_node(lambda: refruntime(binary, verb, NETWORK, rt.netns, self.env(rt)))
        assert done.returncode == 0, f"libcni {verb} failed: {done.stderr}"
        return done.stdout

    def cache_entry(self, rt: RuntimeConf) -> dict[str, Any]:
        path = self.runtime.cache.path(NETWORK, rt.container_id, rt.ifname)
        entry: dict[str, Any] = json.loads(path.read_bytes())
        return entry

    def reservations(self) -> list[str]:
        directory = self.data_dir / NETWORK
        return sorted(p.name for p in directory.glob("198.18.30.*")) if directory.exists() else []


@pytest.fixture
def checked(plugin_node: CheckedNode) -> CheckedNode:
    """The node both runtimes run in (tests/netns/conftest.py checks what is left in it)."""
    return plugin_node


@pytest.fixture
def node(tmp_path: Path, checked: CheckedNode) -> SharedNode:
    bridge = unique("mntbr")
    checked.keep.add(bridge)  # the bridge outlives DEL, as on a real node
    return SharedNode(tmp_path, bridge)


def pod_conf(pod: str) -> RuntimeConf:
    return RuntimeConf(f"cid-{pod}", str(lab.netns_path(pod)), "eth0")


def test_libcni_adds_multinic_checks_and_deletes(
    node: SharedNode, checked: CheckedNode, refruntime_binary: Path, pod: str
) -> None:
    rt = pod_conf(pod)
    added = json.loads(node.reference(refruntime_binary, "add", rt))
    assert checked.keep <= lab.link_names(checked.name)  # the bridge went to the node

    cached = node.runtime.cached_result(node.net, rt)
    assert cached is not None
    assert [str(ip.address) for ip in cached.ips] == [ip["address"] for ip in added["ips"]]
    on_node(lambda: node.runtime.check(node.net, rt))
    on_node(lambda: node.runtime.delete(node.net, rt))

    assert "eth0" not in lab.link_names(pod)
    assert node.reservations() == []
    assert not node.runtime.cache.path(NETWORK, rt.container_id, rt.ifname).exists()


def test_multinic_adds_libcni_checks_and_deletes(
    node: SharedNode, refruntime_binary: Path, pod: str
) -> None:
    rt = pod_conf(pod)
    result = on_node(lambda: node.runtime.add(node.net, rt))
    assert node.reservations() == [str(result.ips[0].address.ip)]

    node.reference(refruntime_binary, "check", rt)
    node.reference(refruntime_binary, "del", rt)

    assert "eth0" not in lab.link_names(pod)
    assert node.reservations() == []
    assert not node.runtime.cache.path(NETWORK, rt.container_id, rt.ifname).exists()


def test_cache_entries_have_the_same_shape(
    node: SharedNode, refruntime_binary: Path, pod: str, pod2: str
) -> None:
    theirs_rt, ours_rt = pod_conf(pod), pod_conf(pod2)
    node.reference(refruntime_binary, "add", theirs_rt)
    on_node(lambda: node.runtime.add(node.net, ours_rt))

    theirs, ours = node.cache_entry(theirs_rt), node.cache_entry(ours_rt)

    # Debian's libcni (1.1) predates the "netns" key, which libcni 1.2 added for GC.
    assert "netns" not in theirs
    assert list(ours) == [
        "kind",
        "containerId",
        "config",
        "ifName",
        "networkName",
        "netns",
        "result",
    ]
    assert [key for key in ours if key != "netns"] == list(theirs)
    assert ours["kind"] == theirs["kind"] == "cniCacheV1"
    assert base64.b64decode(ours["config"]) == base64.b64decode(theirs["config"])
    assert base64.b64decode(ours["config"]) == (node.conf_dir / "10-shared.conflist").read_bytes()
    # Same keys in the same order at every level (libcni sorts them).
    assert list(ours["result"]) == list(theirs["result"])
    assert [list(i) for i in ours["result"]["interfaces"]] == [
        list(i) for i in theirs["result"]["interfaces"]
    ]
    assert [list(ip) for ip in ours["result"]["ips"]] == [
        list(ip) for ip in theirs["result"]["ips"]
    ]
    on_node(lambda: node.runtime.delete(node.net, theirs_rt))
    on_node(lambda: node.runtime.delete(node.net, ours_rt))


def test_multinic_gc_reclaims_what_libcni_added(
    node: SharedNode, refruntime_binary: Path, pod: str, pod2: str
) -> None:
    """GC's real case: the pods are gone (namespaces deleted), their reservations are not.

    Debian's libcni 1.1 does not record the netns in its cache, so GC's DEL
    runs without one; the kernel already removed the links with the namespaces.
    """
    for rt in (pod_conf(pod), pod_conf(pod2)):
        node.reference(refruntime_binary, "add", rt)
    assert len(node.reservations()) == 2
    lab.delete_netns(pod)
    lab.delete_netns(pod2)

    on_node(lambda: node.runtime.gc(node.net, []))

    assert node.reservations() == []
    assert list(node.runtime.cache.attachments(NETWORK)) == []


def test_multinic_gc_of_its_own_attachment_removes_links(
    node: SharedNode, pod: str, pod2: str
) -> None:
    """multinic records the netns (as libcni 1.2 does), so GC also removes live links."""
    kept, stale = pod_conf(pod), pod_conf(pod2)
    for rt in (kept, stale):
        on_node(functools.partial(node.runtime.add, node.net, rt))

    on_node(lambda: node.runtime.gc(node.net, [Attachment(kept.container_id, kept.ifname)]))

    assert "eth0" in lab.link_names(pod)
    assert "eth0" not in lab.link_names(pod2)
    assert len(node.reservations()) == 1
    on_node(lambda: node.runtime.delete(node.net, kept))
