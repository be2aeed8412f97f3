"""multinic-sbr in real namespaces: tables, rules, CHECK, DEL, rollback, and real traffic.

The pod interface comes from the reference ``bridge`` (the built plugins) through our
runtime; sbr runs in-process on its result, or as an executable in the same
conflist. The traffic test builds a two-network pod whose secondary network
leads to a namespace the primary cannot reach, and pings it from the secondary
address. The bridges' side (bridge, host veth ends, gateway addresses, the
routers' ports) is the test's scratch node namespace (``plugin_node``), never
the real host's. Addresses: 198.18.96.0/20, fd00:96::/48.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from multinic.cni.config import NetworkConfigList, parse_network_config_list
from multinic.cni.errors import CNIError
from multinic.cni.runtime import Runtime, RuntimeConf
from multinic.lab import netns as lab
from multinic.plugins.install import install_plugins
from multinic.plugins.sbr import PLUGIN
from tests.netns.conftest import REFERENCE_PLUGIN_DIR, unique
from tests.netns.plugins.conftest import PluginNode
from tests.support.lower_plugins import DUAL, V4, V6, call, ok, on_node, with_prev

TYPE = "multinic-sbr"
V4_NET, V6_NET = "198.18.99.0/24", "fd00:96:99::/64"

pytestmark = pytest.mark.usefixtures("plugin_node")


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    bin_dir = tmp_path / "bin"
    install_plugins(str(bin_dir))
    yield Runtime([bin_dir, REFERENCE_PLUGIN_DIR], cache_dir=tmp_path / "cache")


def ranges(stack: str, v4: str, v6: str, gw4: str | None, gw6: str | None) -> list[Any]:
    sets: list[Any] = []
    if stack in (V4, DUAL):
        sets.append([{"subnet": v4, **({"gateway": gw4} if gw4 else {})}])
    if stack in (V6, DUAL):
        sets.append([{"subnet": v6, **({"gateway": gw6} if gw6 else {})}])
    return sets


def bridge_network(
    name: str,
    bridge: str,
    data_dir: Path,
    *,
    stack: str = DUAL,
    v4: str = V4_NET,
    v6: str = V6_NET,
    gw4: str | None = None,
    gw6: str | None = None,
    is_gateway: bool = True,
    routes: list[dict[str, str]] | None = None,
    sbr: dict[str, Any] | None = None,
) -> NetworkConfigList:
    """A conflist: the reference bridge with the reference host-local, then sbr if given."""
    ipam: dict[str, Any] = {
        "type": "host-local",
        "dataDir": str(data_dir),
        "ranges": ranges(stack, v4, v6, gw4, gw6),
    }
    if routes:
        ipam["routes"] = routes
    plugins: list[dict[str, Any]] = [
        {"type": "bridge", "bridge": bridge, "isGateway": is_gateway, "ipam": ipam}
    ]
    if sbr is not None:
        plugins.append({"type": TYPE, **sbr})
    return parse_network_config_list({"cniVersion": "1.0.0", "name": name, "plugins": plugins})


@pytest.fixture
def bridge(plugin_node: PluginNode) -> str:
    name = unique("mnsb")
    plugin_node.keep.add(name)  # the bridge outlives DEL; its veths must not
    return name


@contextlib.contextmanager
def attached(runtime: Runtime, net: NetworkConfigList, rt: RuntimeConf) -> Iterator[Any]:
    """The runtime's ADD result as a dict; DEL however the test ends.

    The runtime spawns the plugins from a thread in the node's namespace.
    """
    result = on_node(lambda: runtime.add(net, rt))
    try:
        yield result.to_dict()
    finally:
        on_node(lambda: runtime.delete(net, rt))


def rules(pod: str) -> list[dict[str, Any]]:
    """Source rules (``ip rule``) other than the kernel's own, both families."""
    found = lab.ip_json("-4", "rule", "show", netns=pod) + lab.ip_json(
        "-6", "rule", "show", netns=pod
    )
    return [r for r in found if r.get("src") not in (None, "all")]


def table(pod: str, number: int, family: str = "-4") -> list[dict[str, Any]]:
    """Routes of one table (``ip route show table N`` fails for an IPv6 table never used)."""
    every = lab.ip_json(family, "route", "show", "table", "all", netns=pod)
    return [r for r in every if r.get("table") == str(number)]


def main_routes(pod: str, ifname: str, family: str = "-4") -> list[dict[str, Any]]:
    return lab.ip_json(family, "route", "show", "dev", ifname, netns=pod)


def route_get(pod: str, dst: str, src: str) -> dict[str, Any]:
    [found] = lab.ip_json("route", "get", dst, "from", src, netns=pod)
    return found


def addresses(result: dict[str, Any], version: int) -> list[str]:
    return [
        ip["address"].split("/")[0]
        for ip in result["ips"]
        if (":" in ip["address"]) == (version == 6)
    ]


def sbr_conf(**fields: Any) -> dict[str, Any]:
    return {"cniVersion": "1.0.0", "name": "sbrnet", "type": TYPE, **fields}


@pytest.mark.parametrize("stack", [V4, V6, DUAL])
def test_add_check_del_in_process(
    pod: str, bridge: str, tmp_path: Path, runtime: Runtime, stack: str
) -> None:
    net = bridge_network("sbrnet", bridge, tmp_path / "ipam", stack=stack)
    rt = RuntimeConf("cid-1", str(lab.netns_path(pod)), "net1")
    with attached(runtime, net, rt) as result:
        config = with_prev(sbr_conf(), result)
        assert ok(PLUGIN, "ADD", config, pod) == result  # passed through unchanged

        v4, v6 = addresses(result, 4), addresses(result, 6)
        expected = {(f"{a}", 100) for a in v4} | {(a, 101 if v4 else 100) for a in v6}
        assert {(r["src"], int(r["table"])) for r in rules(pod)} == expected
        for address in v4:
            assert main_routes(pod, "net1") == []  # the interface left the main table
            routes = {(r["dst"], r.get("gateway")) for r in table(pod, 100)}
            assert routes == {("default", "198.18.99.1"), ("198.18.99.0/24", None)}
            seen = route_get(pod, "198.18.111.1", address)
            assert (seen["dev"], seen["gateway"]) == ("net1", "198.18.99.1")
        for address in v6:
            six = 101 if v4 else 100
            # Link-local stays in main (it names no source); the rest moved.
            assert [r["dst"] for r in main_routes(pod, "net1", "-6")] == ["fe80::/64"]
            routes = {(r["dst"], r.get("gateway")) for r in table(pod, six, "-6")}
            assert {("default", "fd00:96:99::1"), ("fd00:96:99::/64", None)} <= routes
            seen = route_get(pod, "fd00:96:111::1", address)
            assert (seen["dev"], seen["gateway"]) == ("net1", "fd00:96:99::1")

        ok(PLUGIN, "CHECK", config, pod)
        ok(PLUGIN, "DEL", config, pod)
        assert rules(pod) == []
        assert table(pod, 100) == table(pod, 100, "-6") == table(pod, 101, "-6") == []
        ok(PLUGIN, "DEL", config, pod)


def test_check_names_missing_rules_and_routes(
    pod: str, bridge: str, tmp_path: Path, runtime: Runtime
) -> None:
    net = bridge_network("sbrnet", bridge, tmp_path / "ipam", stack=V4)
    rt = RuntimeConf("cid-1", str(lab.netns_path(pod)), "net1")
    with attached(runtime, net, rt) as result:
        config = with_prev(sbr_conf(), result)
        ok(PLUGIN, "ADD", config, pod)
        [address] = addresses(result, 4)
        lab.ip("route", "del", "default", "table", "100", netns=pod)
        status, err = call(PLUGIN, "CHECK", config, pod)
        assert status == 1 and "default route via 198.18.99.1 is missing from table 100" in str(err)
        lab.ip("rule", "del", "from", address, "lookup", "100", netns=pod)
        status, err = call(PLUGIN, "CHECK", config, pod)
        assert status == 1 and f"no rule 'from {address}/32 lookup <table>'" in err["details"]
        ok(PLUGIN, "DEL", config, pod)
        assert table(pod, 100) == []


def test_first_free_table_skips_used_ones(
    pod: str, bridge: str, tmp_path: Path, runtime: Runtime
) -> None:
    # 100 holds a route, 101 is named by a rule: the first free one is 102.
    lab.ip("route", "add", "unreachable", "198.18.110.0/24", "table", "100", netns=pod)
    lab.ip("rule", "add", "from", "198.18.110.1", "lookup", "101", netns=pod)
    net = bridge_network("sbrnet", bridge, tmp_path / "ipam", stack=V4)
    rt = RuntimeConf("cid-1", str(lab.netns_path(pod)), "net1")
    with attached(runtime, net, rt) as result:
        config = with_prev(sbr_conf(), result)
        ok(PLUGIN, "ADD", config, pod)
        [address] = addresses(result, 4)
        assert (address, "102") in {(r["src"], str(r["table"])) for r in rules(pod)}
        assert len(table(pod, 102)) == 2
        ok(PLUGIN, "DEL", config, pod)
        # Only what sbr made is gone.
        assert [r["src"] for r in rules(pod)] == ["198.18.110.1"]
        assert [r["dst"] for r in table(pod, 100)] == ["198.18.110.0/24"]


def test_failure_part_way_rolls_back(
    pod: str, bridge: str, tmp_path: Path, runtime: Runtime
) -> None:
    net = bridge_network("sbrnet", bridge, tmp_path / "ipam", stack=DUAL)
    rt = RuntimeConf("cid-1", str(lab.netns_path(pod)), "net1")
    with attached(runtime, net, rt) as result:
        before = lab.ip("-4", "route", "show", "table", "all", netns=pod) + lab.ip(
            "-6", "route", "show", "table", "all", netns=pod
        )
        # IPv4 is done (rule, table, main routes) before the IPv6 gateway, which
        # is on no link of the pod, is refused by the kernel.
        config = with_prev(sbr_conf(gateways=["fd00:96:ff::1"]), result)
        status, err = call(PLUGIN, "ADD", config, pod)
        assert status == 1 and "cannot add route to ::/0" in err["msg"], err
        assert rules(pod) == []
        after = lab.ip("-4", "route", "show", "table", "all", netns=pod) + lab.ip(
            "-6", "route", "show", "table", "all", netns=pod
        )
        assert sorted(after.splitlines()) == sorted(before.splitlines())


def test_fixed_table_adds_rules_only(
    pod: str, bridge: str, tmp_path: Path, runtime: Runtime
) -> None:
    net = bridge_network("sbrnet", bridge, tmp_path / "ipam", stack=DUAL)
    rt = RuntimeConf("cid-1", str(lab.netns_path(pod)), "net1")
    with attached(runtime, net, rt) as result:
        main_before = main_routes(pod, "net1")
        config = with_prev(sbr_conf(table=5001), result)
        ok(PLUGIN, "ADD", config, pod)
        assert {int(r["table"]) for r in rules(pod)} == {5001}
        assert len(rules(pod)) == 2
        assert main_routes(pod, "net1") == main_before
        ok(PLUGIN, "CHECK", config, pod)
        status, err = call(PLUGIN, "CHECK", with_prev(sbr_conf(table=5002), result), pod)
        assert status == 1 and "lookup 5002" in err["details"]
        ok(PLUGIN, "DEL", config, pod)
        assert rules(pod) == []


def test_source_hints_keep_the_subnet_route_in_main(
    pod: str, bridge: str, tmp_path: Path, runtime: Runtime
) -> None:
    net = bridge_network(
        "sbrnet", bridge, tmp_path / "ipam", stack=V4, routes=[{"dst": "198.18.104.0/24"}]
    )
    rt = RuntimeConf("cid-1", str(lab.netns_path(pod)), "net1")
    with attached(runtime, net, rt) as result:
        config = with_prev(sbr_conf(addSourceHints=True), result)
        ok(PLUGIN, "ADD", config, pod)
        [address] = addresses(result, 4)
        [subnet] = main_routes(pod, "net1")  # the route via the gateway moved out
        assert (subnet["dst"], subnet["prefsrc"]) == ("198.18.99.0/24", address)
        assert {r["dst"] for r in table(pod, 100)} == {
            "default",
            "198.18.99.0/24",
            "198.18.104.0/24",
        }
        ok(PLUGIN, "CHECK", config, pod)
        ok(PLUGIN, "DEL", config, pod)


def test_bad_input(pod: str, bridge: str, tmp_path: Path, runtime: Runtime) -> None:
    status, err = call(PLUGIN, "ADD", sbr_conf(), pod)
    assert status == 1 and "prevResult missing" in err["msg"]
    for gateways in (["nope"], ["198.18.99.1", "198.18.99.2"], "198.18.99.1"):
        status, err = call(PLUGIN, "ADD", sbr_conf(gateways=gateways), pod)
        assert status == 1 and err["code"] == 7 and "gateways" in err["msg"], err
    net = bridge_network("sbrnet", bridge, tmp_path / "ipam", stack=V4)
    rt = RuntimeConf("cid-1", str(lab.netns_path(pod)), "net1")
    with attached(runtime, net, rt) as result:
        status, err = call(PLUGIN, "ADD", with_prev(sbr_conf(), result), pod, ifname="net9")
        assert status == 1 and "no IP addresses on 'net9'" in err["msg"]
        assert rules(pod) == []


def test_status_validates_the_config() -> None:
    ok(PLUGIN, "STATUS", sbr_conf(table=100, cniVersion="1.1.0"), None)
    status, err = call(PLUGIN, "STATUS", sbr_conf(gateways=["x"], cniVersion="1.1.0"), None)
    assert status == 1 and err["code"] == 7


def test_del_when_the_pod_is_gone(bridge: str, tmp_path: Path, runtime: Runtime) -> None:
    name = unique("mnt-pod-")
    net = bridge_network("sbrnet", bridge, tmp_path / "ipam", stack=V4, sbr={})
    rt = RuntimeConf("cid-1", str(lab.netns_path(name)), "net1")
    with lab.scratch_netns(name):
        on_node(lambda: runtime.add(net, rt))
        assert len(rules(name)) == 1
    on_node(lambda: runtime.delete(net, rt))  # sbr's DEL succeeds with the namespace gone
    on_node(lambda: runtime.delete(net, rt))  # bridge's too


# -- a multi-homed pod: replies on the secondary network leave through it ------------------


@contextlib.contextmanager
def router_behind(bridge: str, node: PluginNode) -> Iterator[str]:
    """A router on the node's ``bridge`` (198.18.97.254, fd00:96:97::fe) to a far namespace
    (198.18.98.1, fd00:96:98::1) that nothing else can reach. Yields the far namespace.
    """
    rtr, far = unique("mnt-rtr-"), unique("mnt-far-")
    port = unique("mnsp")
    node.keep.add(port)  # goes with the router's namespace
    with lab.scratch_netns(rtr), lab.scratch_netns(far):
        lab.ip("link", "add", port, "type", "veth", "peer", "name", "rb0", "netns", rtr,
               netns=node.name)  # fmt: skip
        lab.ip("link", "set", port, "master", bridge, "up", netns=node.name)
        lab.ip(
            "link", "add", "rb1", "netns", rtr, "type", "veth", "peer", "name", "f0", "netns", far
        )
        for ns, dev, addresses in (
            (rtr, "rb0", ("198.18.97.254/24", "fd00:96:97::fe/64")),
            (rtr, "rb1", ("198.18.98.254/24", "fd00:96:98::fe/64")),
            (far, "f0", ("198.18.98.1/24", "fd00:96:98::1/64")),
        ):
            for address in addresses:
                lab.ip("addr", "add", address, "dev", dev, "nodad", netns=ns)
            lab.ip("link", "set", dev, "up", netns=ns)
        lab.ip("route", "add", "default", "via", "198.18.98.254", netns=far)
        lab.ip("-6", "route", "add", "default", "via", "fd00:96:98::fe", netns=far)
        lab.ip("netns", "exec", rtr, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        lab.ip("netns", "exec", rtr, "sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1")
        yield far


@contextlib.contextmanager
def dead_end_on(bridge: str, node: PluginNode) -> Iterator[None]:
    """198.18.96.254 on the node's ``bridge``: the primary network's gateway, forwarding nothing."""
    sink, port = unique("mnt-sink-"), unique("mnsp")
    node.keep.add(port)  # goes with the sink's namespace
    with lab.scratch_netns(sink):
        lab.ip("link", "add", port, "type", "veth", "peer", "name", "s0", "netns", sink,
               netns=node.name)  # fmt: skip
        lab.ip("link", "set", port, "master", bridge, "up", netns=node.name)
        lab.ip("addr", "add", "198.18.96.254/24", "dev", "s0", netns=sink)
        lab.ip("link", "set", "s0", "up", netns=sink)
        lab.ip("netns", "exec", sink, "sysctl", "-q", "-w", "net.ipv4.ip_forward=0")
        yield


def ping_from(pod: str, source: str, target: str) -> bool:
    try:
        lab.ip("netns", "exec", pod, "ping", "-c1", "-W2", "-I", source, target)
    except lab.LabError:
        return False
    return True


def test_multi_homed_pod_replies_leave_through_the_secondary(
    pod: str, plugin_node: PluginNode, tmp_path: Path, runtime: Runtime
) -> None:
    primary_br, secondary_br = unique("mnsa"), unique("mnsb")
    plugin_node.keep.update((primary_br, secondary_br))
    for name in (primary_br, secondary_br):
        lab.ip("link", "add", name, "type", "bridge", netns=plugin_node.name)
        lab.ip("link", "set", name, "up", netns=plugin_node.name)
    primary = bridge_network(
        "primary",
        primary_br,
        tmp_path / "ipam",
        stack=V4,
        v4="198.18.96.0/24",
        gw4="198.18.96.254",
        is_gateway=False,
        routes=[{"dst": "0.0.0.0/0"}],
    )
    secondary = {
        "name": "secondary",
        "bridge": secondary_br,
        "data_dir": tmp_path / "ipam",
        "v4": "198.18.97.0/24",
        "v6": "fd00:96:97::/64",
        "gw4": "198.18.97.254",
        "gw6": "fd00:96:97::fe",
        "is_gateway": False,
    }
    plain = bridge_network(**secondary)
    with_sbr = bridge_network(**secondary, sbr={})
    eth0 = RuntimeConf("cid-mh", str(lab.netns_path(pod)), "eth0")
    net1 = RuntimeConf("cid-mh", str(lab.netns_path(pod)), "net1")

    with (
        dead_end_on(primary_br, plugin_node),
        router_behind(secondary_br, plugin_node),
        attached(runtime, primary, eth0),
    ):
        # Without sbr the main table sends the secondary address's packets to the
        # primary gateway, which drops them: the far side never sees the ping.
        with attached(runtime, plain, net1) as result:
            [source] = addresses(result, 4)
            assert route_get(pod, "198.18.98.1", source)["dev"] == "eth0"
            assert not ping_from(pod, source, "198.18.98.1")

        with attached(runtime, with_sbr, net1) as result:
            [source] = addresses(result, 4)
            [source6] = addresses(result, 6)
            seen = route_get(pod, "198.18.98.1", source)
            assert (seen["dev"], seen["gateway"]) == ("net1", "198.18.97.254")
            seen = route_get(pod, "fd00:96:98::1", source6)
            assert (seen["dev"], seen["gateway"]) == ("net1", "fd00:96:97::fe")
            # The primary's default route is untouched: other traffic still uses it.
            assert route_get(pod, "198.18.98.1", addresses_of_eth0(pod))["dev"] == "eth0"
            assert ping_from(pod, source, "198.18.98.1")
            assert ping_from(pod, source6, "fd00:96:98::1")
            # The reference bridge's own CHECK looks for the gateway in the main
            # table, which sbr emptied (the reference sbr does the same): check sbr.
            cached = runtime.cached_result(with_sbr, net1)
            assert cached is not None
            config = with_prev(sbr_conf(), cached.to_dict())
            ok(PLUGIN, "CHECK", config, pod, ifname="net1")
            lab.ip("-6", "rule", "del", "from", source6, "lookup", "101", netns=pod)
            status, err = call(PLUGIN, "CHECK", config, pod, ifname="net1")
            assert status == 1 and f"no rule 'from {source6}/128" in err["details"]
        assert rules(pod) == []
    assert lab.link_names(pod) == {"lo"}


def addresses_of_eth0(pod: str) -> str:
    [cidr] = lab.addresses("eth0", pod)
    return cidr.split("/")[0]


def test_chain_check_through_the_runtime(
    pod: str, bridge: str, tmp_path: Path, runtime: Runtime
) -> None:
    # multinic-bridge checks routes of its result only, so the whole chain's CHECK runs.
    ipam = {
        "type": "host-local",
        "dataDir": str(tmp_path / "ipam"),
        "ranges": ranges(DUAL, V4_NET, V6_NET, None, None),
    }
    plugins = [
        {"type": "multinic-bridge", "bridge": bridge, "isGateway": True, "ipam": ipam},
        {"type": TYPE},
    ]
    net = parse_network_config_list({"cniVersion": "1.0.0", "name": "sbrnet", "plugins": plugins})
    rt = RuntimeConf("cid-1", str(lab.netns_path(pod)), "net1")
    with attached(runtime, net, rt) as result:
        on_node(lambda: runtime.check(net, rt))
        [address] = addresses(result, 4)
        lab.ip("route", "del", "198.18.99.0/24", "table", "100", netns=pod)
        with pytest.raises(CNIError, match="drifted") as drift:
            on_node(lambda: runtime.check(net, rt))
        assert "route to 198.18.99.0/24 is missing from table 100" in str(drift.value)
        assert (address, 100) in {(r["src"], int(r["table"])) for r in rules(pod)}
    assert rules(pod) == [] and lab.link_names(pod) == {"lo"}
