"""Every plugin, fed broken configs: a CNI error for each, never an internal one, nothing left.

Each example takes a working config of one plugin and breaks one to three of its
fields (any depth: a value replaced by another JSON value of any type, or the
field removed), then runs ADD (and CHECK and DEL when ADD succeeded) and DEL,
CHECK, GC and STATUS on the broken config, in a real pod with the plugin's host
side in the test's scratch node. A second test breaks the prevResult that CHECK
and DEL get instead, and varies CNI_ARGS. Every answer must be a result or a CNI error
object; "internal error" (an exception the plugin did not expect: a bug) fails
the test, and so does anything left behind in the node, the pod, nftables or
host-local's reservations. The examples are derandomized: CI runs the same ones
every time (hypothesis' database is off).

Left unbroken: every ``type`` (it picks the plugin or the IPAM executable to
run, not a value to check), and every ``dataDir`` and store ``path`` with the
sections holding them (without them a plugin uses its default under /var/lib,
which is the machine's, not the test's). The unit tests break those.

Addresses: 198.18.80.0/22 (this file's block).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from multinic.cni import skel
from multinic.lab import netns as lab
from multinic.plugins.registry import load_plugin
from tests.netns.conftest import REFERENCE_PLUGIN_DIR
from tests.netns.plugins.conftest import PluginNode
from tests.support.lower_plugins import NFT_FAMILIES, nft_rule_count, node_name, on_node

DELETE = object()  # a mutation that removes the field

ODD_VALUES = [
    None, True, False, 0, -1, 1, 4095, 65536, 2**64, 1.5, "", "x", "bridge", "l2",
    "10.0.0.1", "10.0.0.0/33", "::1/129", "fd00::/64", "02:00:00:00:00:01", "zz:zz",
    "a" * 300, "/", "\x00", "-1", [], [None], ["x"], [[]], [{}], {}, {"a": 1},
    {"subnet": "x"}, {"dst": "0.0.0.0/0"}, DELETE,
]  # fmt: skip
VALUES = st.one_of(
    st.sampled_from(ODD_VALUES),
    st.text(max_size=12),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
)
MUTATIONS = st.lists(st.tuples(st.integers(min_value=0), VALUES), min_size=1, max_size=3)

POD_ADDRESS = "198.18.80.5/24"
IPAM = ("multinic-host-local", "multinic-static", "multinic-ipam")


class Lab:
    """The pod and the node's links every example starts from."""

    def __init__(self, pod: str, node: str, data_dir: Path) -> None:
        self.pod = pod
        self.node = node
        self.data_dir = data_dir
        self.prev = {
            "cniVersion": "1.1.0",
            "interfaces": [{"name": "eth0", "sandbox": str(lab.netns_path(pod))}],
            "ips": [{"address": POD_ADDRESS, "gateway": "198.18.80.1", "interface": 0}],
        }

    def host_local(self) -> dict[str, Any]:
        return {
            "type": "multinic-host-local",
            "dataDir": str(self.data_dir / "host-local"),
            "ranges": [[{"subnet": "198.18.81.0/24", "gateway": "198.18.81.1"}]],
            "routes": [{"dst": "0.0.0.0/0"}],
            "exclude": ["198.18.81.200/29"],
        }

    def base(self, plugin: str) -> dict[str, Any]:
        """A config of ``plugin`` that works in this lab."""
        fields: dict[str, Any] = {
            "multinic-bridge": {
                "bridge": "fzbr0", "isGateway": True, "isDefaultGateway": False,
                "forceAddress": False, "ipMasq": True, "mtu": 1400, "hairpinMode": False,
                "promiscMode": False, "vlan": 0, "macspoofchk": True, "enabledad": False,
                "ipam": self.host_local(),
            },
            "multinic-ptp": {"ipMasq": True, "mtu": 1400, "ipam": self.host_local()},
            "multinic-macvlan": {
                "master": "fzmaster", "mode": "bridge", "mtu": 1400,
                "mac": "02:00:00:00:00:01", "ipam": self.host_local(),
            },
            "multinic-ipvlan": {"master": "fzmaster", "mode": "l2", "ipam": self.host_local()},
            "multinic-vlan": {"master": "fzmaster", "vlanId": 5, "ipam": self.host_local()},
            "multinic-host-device": {"device": "fzdev", "ipam": self.host_local()},
            "multinic-loopback": {},
            "multinic-tuning": {
                "sysctl": {"net.ipv4.conf.eth0.proxy_arp": "1"}, "mac": "02:00:00:00:00:02",
                "promisc": True, "mtu": 1300, "txQLen": 100, "allmulti": True,
                "dataDir": str(self.data_dir / "tuning"), "prevResult": self.prev,
            },
            "multinic-sbr": {"prevResult": self.prev},
            # The IPAM plugins read the network config's ipam section.
            "multinic-host-local": {"ipam": self.host_local()},
            "multinic-static": {"ipam": {
                "type": "multinic-static",
                "addresses": [{"address": "198.18.82.5/24", "gateway": "198.18.82.1"}],
                "routes": [{"dst": "0.0.0.0/0"}], "dns": {"nameservers": ["198.18.82.53"]},
            }},
            "multinic-ipam": {"ipam": {
                "type": "multinic-ipam",
                "range": "198.18.83.0/24", "exclude": ["198.18.83.0/30"], "node_name": "n1",
                "store": {"type": "sqlite", "path": str(self.data_dir / "ipam.db")},
                "routes": [{"dst": "0.0.0.0/0"}],
            }},
        }[plugin]  # fmt: skip
        network_type = "multinic-macvlan" if "ipam" in fields and plugin in IPAM else plugin
        return {"cniVersion": "1.1.0", "name": "fuzz", "type": network_type, **fields}

    def reset_pod(self) -> None:
        """The pod's eth0 as an interface plugin left it (sbr moves its routes away)."""
        lab.ip("addr", "flush", "dev", "eth0", netns=self.pod)
        lab.ip("addr", "add", POD_ADDRESS, "dev", "eth0", netns=self.pod)
        lab.ip("link", "set", "eth0", "up", netns=self.pod)


@pytest.fixture
def fuzz_lab(pod: str, plugin_node: PluginNode, tmp_path: Path) -> Iterator[Lab]:
    node = plugin_node.name
    for name in ("fzmaster", "fzdev", "fzeth"):
        lab.ip("link", "add", name, "type", "veth", "peer", "name", name + "p", netns=node)
        plugin_node.keep.update({name, name + "p"})
    # eth0 of the pod: what tuning and sbr (chained after an interface plugin) work on.
    lab.ip("link", "set", "fzethp", "netns", pod, netns=node)
    lab.ip("link", "set", "fzethp", "name", "eth0", netns=pod)
    plugin_node.keep.discard("fzethp")
    yield Lab(pod, node, tmp_path)


def paths(obj: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Every field and list item below ``obj``, at any depth."""
    found = [prefix] if prefix else []
    items: Any = ()
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, list):
        items = enumerate(obj)
    for key, value in items:
        found += paths(value, (*prefix, key))
    return found


def breakable(config: dict[str, Any]) -> list[tuple[str | int, ...]]:
    """What the fuzz may break: not the version, a type, a storage location or its section."""
    every = paths(config)
    kept = [p for p in every if p[-1] in ("type", "dataDir", "path") or p == ("cniVersion",)]
    return [p for p in every if not any(k[: len(p)] == p for k in kept)]


def broken(config: dict[str, Any], mutations: list[tuple[int, object]]) -> dict[str, Any]:
    config = copy.deepcopy(config)
    for index, value in mutations:
        candidates = breakable(config)
        if not candidates:
            break
        *parents, last = candidates[index % len(candidates)]
        holder: Any = config
        for key in parents:
            holder = holder[key]
        if value is DELETE and isinstance(holder, dict):
            del holder[last]
        else:
            holder[last] = None if value is DELETE else copy.deepcopy(value)
    return config


def call(
    plugin: str, verb: str, config: dict[str, Any], pod: str, args: str = ""
) -> tuple[int, Any]:
    ifname = {"multinic-loopback": "lo", "multinic-tuning": "eth0", "multinic-sbr": "eth0"}
    env = {
        "CNI_COMMAND": verb,
        "CNI_CONTAINERID": "fuzz-1",
        "CNI_NETNS": str(lab.netns_path(pod)),
        "CNI_IFNAME": ifname.get(plugin, "net1"),
        "CNI_PATH": str(REFERENCE_PLUGIN_DIR),
        "CNI_ARGS": args,
    }
    stdin = json.dumps(config).encode()
    status, out = on_node(lambda: skel.run(load_plugin(plugin), env, stdin))
    answer = json.loads(out) if out.strip() else None
    if status != 0:
        assert isinstance(answer, dict) and isinstance(answer.get("code"), int), out
        assert not answer["msg"].endswith("internal error"), (verb, config, answer)
    return status, answer


def exercise(plugin: str, config: dict[str, Any], pod: str) -> bool:
    """Every verb on ``config``; True when its ADD succeeded."""
    status, result = call(plugin, "ADD", config, pod)
    if status == 0:
        checked = dict(config)
        if "prevResult" not in checked and result is not None:
            checked["prevResult"] = result
        call(plugin, "CHECK", checked, pod)
        assert call(plugin, "DEL", checked, pod)[0] == 0
    for verb in ("DEL", "CHECK", "GC", "STATUS"):
        extra = {"cni.dev/valid-attachments": []} if verb == "GC" else {}
        call(plugin, verb, {**config, **extra}, pod)
    return status == 0


def assert_nothing_left(fuzz: Lab, pod_links: set[str], node_links: set[str]) -> None:
    assert lab.link_names(fuzz.node) == node_links
    assert lab.link_names(fuzz.pod) == pod_links
    assert not any(nft_rule_count(family, fuzz.node) for family in NFT_FAMILIES)
    reserved = [
        p.name
        for p in (fuzz.data_dir / "host-local").glob("*/*")
        if not p.name.startswith(("last_reserved", "lock"))
    ]
    assert reserved == []


@pytest.mark.parametrize(
    "plugin",
    [
        "multinic-bridge", "multinic-ptp", "multinic-macvlan", "multinic-ipvlan",
        "multinic-vlan", "multinic-host-device", "multinic-loopback", "multinic-tuning",
        "multinic-sbr", "multinic-host-local", "multinic-static", "multinic-ipam",
    ],
)  # fmt: skip
@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(mutations=MUTATIONS)
def test_broken_configs_get_cni_errors_and_leave_nothing(
    fuzz_lab: Lab, plugin: str, mutations: list[tuple[int, object]]
) -> None:
    assert node_name() == fuzz_lab.node
    fuzz_lab.reset_pod()
    pod_links, node_links = lab.link_names(fuzz_lab.pod), lab.link_names(fuzz_lab.node)
    config = broken(fuzz_lab.base(plugin), mutations)
    added = exercise(plugin, config, fuzz_lab.pod)
    if added and plugin == "multinic-bridge":  # shared: DEL leaves it, a failed ADD must not
        lab.delete_link(config.get("bridge") or "cni0", netns=fuzz_lab.node)
    assert_nothing_left(fuzz_lab, pod_links, node_links)


#: The plugins whose unbroken config works on this kernel (ipvlan and vlan need the guest's).
WORKING = (
    "multinic-bridge", "multinic-ptp", "multinic-macvlan", "multinic-host-device",
    "multinic-loopback", "multinic-tuning", "multinic-sbr", "multinic-host-local",
    "multinic-static", "multinic-ipam",
)  # fmt: skip
CNI_ARGS = st.sampled_from(
    ["", "IgnoreUnknown=1;K8S_POD_NAME=p", "IP=198.18.81.7", "IP=198.18.81.7/24", "IP=x",
     "MAC=zz", "MAC=02:00:00:00:00:09", "a", "=", ";;", "IP="]
)  # fmt: skip


@pytest.mark.parametrize("plugin", WORKING)
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(mutations=MUTATIONS, args=CNI_ARGS)
def test_broken_prev_results_and_cni_args_get_cni_errors_and_leave_nothing(
    fuzz_lab: Lab, plugin: str, mutations: list[tuple[int, object]], args: str
) -> None:
    fuzz_lab.reset_pod()
    pod_links, node_links = lab.link_names(fuzz_lab.pod), lab.link_names(fuzz_lab.node)
    config = fuzz_lab.base(plugin)
    status, result = call(plugin, "ADD", config, fuzz_lab.pod, args)
    if status == 0:
        prev = config.get("prevResult", result)
        drifted = {**config, "prevResult": broken(prev, mutations)}
        for verb in ("CHECK", "DEL"):
            call(plugin, verb, drifted, fuzz_lab.pod, args)
        assert call(plugin, "DEL", {**config, "prevResult": prev}, fuzz_lab.pod, args)[0] == 0
        if plugin == "multinic-bridge":
            lab.delete_link("fzbr0", netns=fuzz_lab.node)
    assert_nothing_left(fuzz_lab, pod_links, node_links)


def test_the_unbroken_configs_work(fuzz_lab: Lab) -> None:
    # The fuzz starts from configs that work where the kernel allows: otherwise
    # every example would fail early.
    for plugin in WORKING:
        fuzz_lab.reset_pod()
        config = fuzz_lab.base(plugin)
        status, result = call(plugin, "ADD", config, fuzz_lab.pod)
        assert status == 0, (plugin, result)
        if "prevResult" not in config:
            config["prevResult"] = result
        assert call(plugin, "CHECK", config, fuzz_lab.pod)[0] == 0, plugin
        assert call(plugin, "DEL", config, fuzz_lab.pod)[0] == 0, plugin
    lab.delete_link("fzbr0", netns=fuzz_lab.node)
