"""multinic's runtime and the reference runtime library (libcni 1.3) share one node.

Both read and write the same result cache: an attachment ADDed by one is
CHECKed, DELeted and garbage-collected by the other, with nothing left behind.
Every cross-runtime test runs on two networks at cniVersion 1.1.0: ``theirs``
(the reference bridge, host-local and tuning, built from
containernetworking/plugins v1.10) and ``ours`` (multinic-bridge,
multinic-host-local and multinic-tuning, installed with ``multinic
install-plugins``), so libcni drives our plugins as well as theirs, GC and
STATUS included.

libcni is ``refruntime`` (third_party/cni/refruntime, built against libcni
v1.3.1 by scripts/build-third-party). Both runtimes run in a checked scratch
node namespace per test: libcni's program and our runtime are started from a
thread that entered it (``on_node``), so the plugins' bridge and host veths live
there, never in the real host's namespace; a link beyond the bridges left in
the node fails the test.
"""

from __future__ import annotations

import base64
import functools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from multinic.cni.conffiles import load_network
from multinic.cni.config import Attachment, NetworkConfigList
from multinic.cni.errors import CNIError
from multinic.cni.runtime import Runtime, RuntimeConf
from multinic.lab import netns as lab
from tests.netns.conftest import REFERENCE_PLUGIN_DIR, unique
from tests.support.conflists import bridge_conflist
from tests.support.lower_plugins import CheckedNode, on_node
from tests.support.refruntime import refruntime, refruntime_binary

MULTINIC = Path(sys.executable).parent / "multinic"
SUBNET = "198.18.30.0/24"

#: network name -> the plugin types of its chain (bridge, its IPAM, then tuning)
NETWORKS = {
    "theirs": ("bridge", "host-local", "tuning"),
    "ours": ("multinic-bridge", "multinic-host-local", "multinic-tuning"),
}


@pytest.fixture(scope="module")
def binary() -> Path:
    return refruntime_binary()


@pytest.fixture(scope="module")
def bin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Our plugins, written by the CLI as a user installs them."""
    where = tmp_path_factory.mktemp("bin")
    done = subprocess.run(
        [str(MULTINIC), "install-plugins", str(where)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert (where / "multinic-bridge").exists()
    return where


def chain(name: str, bridge: str, data_dir: Path, **range_fields: str) -> dict[str, Any]:
    """Network ``name`` (a key of NETWORKS) as a 1.1.0 conflist on ``bridge``."""
    main, ipam, tuning = NETWORKS[name]
    conflist = bridge_conflist(
        name, bridge, data_dir, SUBNET, then=({"type": tuning, "mtu": 1450},)
    )
    plugin = conflist["plugins"][0]
    plugin["type"] = main
    plugin["ipam"]["type"] = ipam
    plugin["ipam"]["ranges"][0][0].update(range_fields)
    return conflist


class SharedNode:
    """One config dir, one plugin path, one cache dir: what both runtimes see.

    The config dir holds ``theirs`` and ``ours`` (on two bridges), and
    ``theirs-one`` and ``ours-one``: the same with a range of one address.
    """

    def __init__(self, root: Path, bin_dir: Path, bridges: dict[str, str]) -> None:
        self.conf_dir = root / "net.d"
        self.cache_dir = root / "cache"
        self.data_dir = root / "ipam"
        self.conf_dir.mkdir()
        self.plugin_path = [bin_dir, REFERENCE_PLUGIN_DIR]
        one = {"rangeStart": "198.18.30.9", "rangeEnd": "198.18.30.9"}
        conflists = {
            "theirs": chain("theirs", bridges["theirs"], self.data_dir),
            "ours": chain("ours", bridges["ours"], self.data_dir),
            "theirs-one": chain("theirs", bridges["theirs"], self.data_dir, **one),
            "ours-one": chain("ours", bridges["ours"], self.data_dir, **one),
        }
        for name, conflist in conflists.items():
            conflist["name"] = name
            (self.conf_dir / f"10-{name}.conflist").write_text(json.dumps(conflist, indent=2))
        self.runtime = Runtime(self.plugin_path, cache_dir=self.cache_dir)

    def net(self, name: str) -> NetworkConfigList:
        return load_network(self.conf_dir, name)

    def env(self, rt: RuntimeConf | None = None) -> dict[str, str]:
        return {
            "NETCONFPATH": str(self.conf_dir),
            "CNI_PATH": ":".join(map(str, self.plugin_path)),
            "CNI_CACHE_DIR": str(self.cache_dir),
            "CNI_CONTAINERID": rt.container_id if rt else "",
            "CNI_IFNAME": rt.ifname if rt else "",
        }

    def libcni(self, binary: Path, verb: str, network: str, *args: str) -> str:
        """refruntime VERB NETWORK ARGS... in the node; must succeed; its stdout."""
        done = self.libcni_run(binary, verb, network, *args)
        assert done.returncode == 0, f"libcni {verb} failed: {done.stderr}"
        return done.stdout

    def libcni_run(
        self, binary: Path, verb: str, network: str, *args: str, rt: RuntimeConf | None = None
    ) -> subprocess.CompletedProcess[str]:
        return on_node(lambda: refruntime(binary, verb, network, list(args), self.env(rt)))

    def attach(self, binary: Path, verb: str, network: str, rt: RuntimeConf) -> str:
        """libcni's add/check/del of one attachment."""
        done = self.libcni_run(binary, verb, network, rt.netns, rt=rt)
        assert done.returncode == 0, f"libcni {verb} failed: {done.stderr}"
        return done.stdout

    def cache_entry(self, network: str, rt: RuntimeConf) -> dict[str, Any]:
        path = self.runtime.cache.path(network, rt.container_id, rt.ifname)
        entry: dict[str, Any] = json.loads(path.read_bytes())
        return entry

    def reservations(self, network: str) -> list[str]:
        directory = self.data_dir / network
        return sorted(p.name for p in directory.glob("198.18.30.*")) if directory.exists() else []


@pytest.fixture
def checked(plugin_node: CheckedNode) -> CheckedNode:
    """The node both runtimes run in (tests/netns/conftest.py checks what is left in it)."""
    return plugin_node


@pytest.fixture
def node(tmp_path: Path, bin_dir: Path, checked: CheckedNode) -> SharedNode:
    bridges = {name: unique("mntbr") for name in NETWORKS}
    checked.keep.update(bridges.values())  # the bridges outlive DEL, as on a real node
    return SharedNode(tmp_path, bin_dir, bridges)


@pytest.fixture(params=sorted(NETWORKS))
def network(request: pytest.FixtureRequest) -> str:
    """Whose plugins the runtimes drive: ``theirs`` or ``ours``."""
    name: str = request.param
    return name


def pod_conf(pod: str) -> RuntimeConf:
    return RuntimeConf(f"cid-{pod}", str(lab.netns_path(pod)), "eth0")


def forget(node: SharedNode, network: str, rt: RuntimeConf, pod: str) -> None:
    """What a crashed runtime leaves: the pod and the cache entry gone, the reservation not."""
    node.runtime.cache.path(network, rt.container_id, rt.ifname).unlink()
    lab.delete_netns(pod)


def test_libcni_adds_multinic_checks_and_deletes(
    node: SharedNode, checked: CheckedNode, binary: Path, pod: str, network: str
) -> None:
    rt = pod_conf(pod)
    added = json.loads(node.attach(binary, "add", network, rt))
    assert added["cniVersion"] == "1.1.0"
    assert checked.keep & lab.link_names(checked.name)  # a bridge went to the node
    assert lab.ip_json("link", "show", "eth0", netns=pod)[0]["mtu"] == 1450  # tuning ran

    net = node.net(network)
    cached = node.runtime.cached_result(net, rt)
    assert cached is not None
    assert [str(ip.address) for ip in cached.ips] == [ip["address"] for ip in added["ips"]]
    on_node(lambda: node.runtime.check(net, rt))
    on_node(lambda: node.runtime.delete(net, rt))

    assert "eth0" not in lab.link_names(pod)
    assert node.reservations(network) == []
    assert not node.runtime.cache.path(network, rt.container_id, rt.ifname).exists()


def test_multinic_adds_libcni_checks_and_deletes(
    node: SharedNode, binary: Path, pod: str, network: str
) -> None:
    rt = pod_conf(pod)
    result = on_node(lambda: node.runtime.add(node.net(network), rt))
    assert result.cni_version == "1.1.0"
    assert node.reservations(network) == [str(result.ips[0].address.ip)]

    node.attach(binary, "check", network, rt)
    node.attach(binary, "del", network, rt)

    assert "eth0" not in lab.link_names(pod)
    assert node.reservations(network) == []
    assert not node.runtime.cache.path(network, rt.container_id, rt.ifname).exists()
    node.attach(binary, "del", network, rt)  # a second DEL succeeds


def test_cache_entries_have_the_same_shape(
    node: SharedNode, binary: Path, pod: str, pod2: str, network: str
) -> None:
    theirs_rt, ours_rt = pod_conf(pod), pod_conf(pod2)
    node.attach(binary, "add", network, theirs_rt)
    net = node.net(network)
    on_node(lambda: node.runtime.add(net, ours_rt))

    theirs, ours = node.cache_entry(network, theirs_rt), node.cache_entry(network, ours_rt)

    # libcni 1.3 records the netns (1.2 added it for GC; Debian's 1.1 had no such key).
    assert theirs["netns"] == theirs_rt.netns
    assert ours["netns"] == ours_rt.netns
    assert list(ours) == [
        "kind",
        "containerId",
        "config",
        "ifName",
        "networkName",
        "netns",
        "result",
    ]
    assert list(ours) == list(theirs)
    assert ours["kind"] == theirs["kind"] == "cniCacheV1"
    assert base64.b64decode(ours["config"]) == base64.b64decode(theirs["config"])
    assert (
        base64.b64decode(ours["config"]) == (node.conf_dir / f"10-{network}.conflist").read_bytes()
    )
    # Same keys in the same order at every level (libcni sorts them); no empty
    # "dns" in either 1.1.0 result.
    assert list(ours["result"]) == list(theirs["result"])
    assert "dns" not in theirs["result"]
    assert [list(i) for i in ours["result"]["interfaces"]] == [
        list(i) for i in theirs["result"]["interfaces"]
    ]
    assert [list(ip) for ip in ours["result"]["ips"]] == [
        list(ip) for ip in theirs["result"]["ips"]
    ]
    on_node(lambda: node.runtime.delete(net, theirs_rt))
    on_node(lambda: node.runtime.delete(net, ours_rt))


def test_multinic_gc_reclaims_what_libcni_added(
    node: SharedNode, binary: Path, pod: str, pod2: str, network: str
) -> None:
    """GC's real case: the pods are gone (namespaces deleted), their reservations are not.

    libcni 1.3 recorded each netns, so GC's DEL gets a path that no longer
    exists; both bridges treat that as already torn down and release the IPAM.
    """
    for rt in (pod_conf(pod), pod_conf(pod2)):
        node.attach(binary, "add", network, rt)
    assert len(node.reservations(network)) == 2
    lab.delete_netns(pod)
    lab.delete_netns(pod2)

    on_node(lambda: node.runtime.gc(node.net(network), []))

    assert node.reservations(network) == []
    assert list(node.runtime.cache.attachments(network)) == []


def test_multinic_gc_of_a_libcni_attachment_removes_live_links(
    node: SharedNode, binary: Path, pod: str, pod2: str, network: str
) -> None:
    """With the netns in libcni's cache entry, our GC's DEL reaches a live pod's link
    (with Debian's libcni 1.1 it ran without a netns and could only release IPAM)."""
    kept, stale = pod_conf(pod), pod_conf(pod2)
    for rt in (kept, stale):
        node.attach(binary, "add", network, rt)
    net = node.net(network)

    on_node(lambda: node.runtime.gc(net, [Attachment(kept.container_id, kept.ifname)]))

    assert "eth0" in lab.link_names(pod)
    assert "eth0" not in lab.link_names(pod2)
    assert len(node.reservations(network)) == 1
    on_node(lambda: node.runtime.delete(net, kept))


def test_libcni_gc_reclaims_what_multinic_added(
    node: SharedNode, binary: Path, pod: str, pod2: str, network: str
) -> None:
    """libcni's GC with one valid attachment: our stale cache entry is DELeted
    (link, reservation, entry), the valid one is left alone."""
    kept, stale = pod_conf(pod), pod_conf(pod2)
    net = node.net(network)
    kept_ip = on_node(lambda: node.runtime.add(net, kept)).ips[0].address.ip
    on_node(lambda: node.runtime.add(net, stale))

    node.libcni(binary, "gc", network, f"{kept.container_id}/{kept.ifname}")

    assert "eth0" in lab.link_names(pod)
    assert "eth0" not in lab.link_names(pod2)
    assert node.reservations(network) == [str(kept_ip)]
    assert [(a.container_id, a.ifname) for a in node.runtime.cache.attachments(network)] == [
        (kept.container_id, kept.ifname)
    ]
    node.attach(binary, "del", network, kept)


def test_libcni_gc_reaches_the_ipam_through_our_bridge_only(
    node: SharedNode, binary: Path, pod: str, pod2: str, network: str
) -> None:
    """A reservation no cache entry knows (a runtime lost it) is only found by the
    plugins' GC. libcni sends GC with the valid list to every plugin: our bridge
    delegates it to multinic-host-local, which releases the leak; the reference
    bridge 1.10 has no GC handler, so host-local never hears of it and the leak stays."""
    kept, lost = pod_conf(pod), pod_conf(pod2)
    net = node.net(network)
    kept_ip = on_node(lambda: node.runtime.add(net, kept)).ips[0].address.ip
    lost_ip = on_node(lambda: node.runtime.add(net, lost)).ips[0].address.ip
    forget(node, network, lost, pod2)

    node.libcni(binary, "gc", network, f"{kept.container_id}/{kept.ifname}")

    if network == "ours":
        assert node.reservations(network) == [str(kept_ip)]
    else:
        assert node.reservations(network) == sorted([str(kept_ip), str(lost_ip)])
    assert "eth0" in lab.link_names(pod)
    node.attach(binary, "del", network, kept)

    node.libcni(binary, "gc", network)  # no valid attachment at all: [] to the plugins
    assert node.reservations(network) == ([] if network == "ours" else [str(lost_ip)])


def test_status_both_ways(node: SharedNode, binary: Path, pod: str, network: str) -> None:
    """STATUS at 1.1.0 from either runtime, on a network with one address.

    Ready while the address is free. Once it is taken, multinic-host-local says
    code 50 (not available) through multinic-bridge to both runtimes; the
    reference host-local 1.10 has no STATUS handler, so their chain stays ready.
    """
    one = f"{network}-one"
    net = node.net(one)
    assert node.libcni(binary, "status", one) == ""
    on_node(lambda: node.runtime.status(net))
    rt = pod_conf(pod)
    node.attach(binary, "add", one, rt)

    theirs = node.libcni_run(binary, "status", one)
    ours = on_node(functools.partial(_status_code, node.runtime, net))

    if network == "ours":
        assert theirs.returncode == 1, theirs.stderr
        error = json.loads(theirs.stdout)
        assert error["code"] == 50
        assert "no free address" in error["details"]
        assert ours == 50
    else:
        assert theirs.returncode == 0, theirs.stderr
        assert ours == 0
    node.attach(binary, "del", one, rt)
    assert node.libcni(binary, "status", one) == ""
    assert on_node(functools.partial(_status_code, node.runtime, net)) == 0


def _status_code(runtime: Runtime, net: NetworkConfigList) -> int:
    try:
        runtime.status(net)
    except CNIError as exc:
        return exc.code
    return 0
