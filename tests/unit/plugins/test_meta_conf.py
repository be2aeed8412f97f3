"""Config parsing of multinic-tuning and multinic-sbr (no root: nothing is applied)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, NamedTuple

import pytest
from hypothesis import given
from hypothesis import strategies as st

from multinic.cni import skel
from multinic.cni.errors import InvalidConfigError
from multinic.cni.version import SUPPORTED_VERSIONS
from multinic.plugins import sbr, tuning
from multinic.plugins.tuning import NAMESPACED_GLOBALS, sysctl_target


def request(plugin: str, ifname: str = "net1", cni_args: str = "", **fields: Any) -> skel.Request:
    env = {
        "CNI_CONTAINERID": "cid",
        "CNI_NETNS": "/var/run/netns/x",
        "CNI_IFNAME": ifname,
        "CNI_PATH": "/opt/cni/bin",
        "CNI_ARGS": cni_args,
    }
    conf = {"cniVersion": "1.0.0", "name": "n", "type": plugin, **fields}
    return skel.parse_request("ADD", env, json.dumps(conf).encode(), SUPPORTED_VERSIONS)


@pytest.mark.parametrize(
    ("key", "ifname", "path"),
    [
        ("net.ipv4.conf.IFNAME.arp_notify", "eth0", "net/ipv4/conf/eth0/arp_notify"),
        ("net.ipv4.conf.IFNAME.arp_notify", "eth0.100", "net/ipv4/conf/eth0.100/arp_notify"),
        ("net.ipv6.conf.eth0.100.accept_ra", "x", "net/ipv6/conf/eth0.100/accept_ra"),
        ("net/ipv6/conf/eth0.100/accept_ra", "x", "net/ipv6/conf/eth0.100/accept_ra"),
        ("net.ipv4.neigh.all.retrans_time_ms", "x", "net/ipv4/neigh/all/retrans_time_ms"),
        (
            "net.ipv6.neigh.default.base_reachable_time_ms",
            "x",
            "net/ipv6/neigh/default/base_reachable_time_ms",
        ),
        ("net.ipv4.ip_forward", "x", "net/ipv4/ip_forward"),
        ("net/core/somaxconn", "x", "net/core/somaxconn"),
    ],
)
def test_allowed_keys(key: str, ifname: str, path: str) -> None:
    assert sysctl_target(key, ifname) == path


@pytest.mark.parametrize(
    "key",
    [
        "kernel.hostname",
        "net.core.rmem_max",
        "net.ipv4.tcp_mem",
        "net/ipv4/conf/eth0/../../../../kernel/hostname",
        "net.ipv4.conf..arp_notify",
        "net/ipv4/conf/eth0/extra/arp_notify",  # the slash form names exactly one interface
        "net.ipv4.conf.eth0",
        "net",
        "",
    ],
)
def test_refused_keys(key: str) -> None:
    with pytest.raises(InvalidConfigError, match="multinic-tuning: sysctl"):
        sysctl_target(key, "eth0")


_NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=8)
#: What a mutated segment becomes. "..", "." and "" never name a directory, so a key
#: holding one is refused; "/" turns a dotted key into a slash one or adds a level.
_MUTATIONS = ("..", ".", "", "/")


class AllowedKey(NamedTuple):
    """A key built from one of the allowed patterns, and the path it must write."""

    segments: tuple[str, ...]
    separator: str
    ifname: str
    expected: str


@st.composite
def allowed_keys(draw: st.DrawFn) -> AllowedKey:
    separator = draw(st.sampled_from([".", "/"]))
    if draw(st.booleans()):
        return draw(_per_interface_keys(separator))
    name = draw(st.sampled_from(sorted(NAMESPACED_GLOBALS)))
    return AllowedKey(tuple(name.split(".")), separator, draw(_NAME), name.replace(".", "/"))


@st.composite
def _per_interface_keys(draw: st.DrawFn, separator: str) -> AllowedKey:
    family, directory = draw(st.sampled_from(sorted(tuning.PER_INTERFACE)))
    interface = draw(st.lists(_NAME, min_size=1, max_size=3).map(".".join))
    leaf = draw(_NAME)
    expected = f"net/{family}/{directory}/{interface}/{leaf}"
    if draw(st.booleans()):
        return AllowedKey(
            ("net", family, directory, "IFNAME", leaf), separator, interface, expected
        )
    # The dotted form spells a dotted interface name (eth0.100) as several segments.
    named = interface.split(".") if separator == "." else [interface]
    return AllowedKey(("net", family, directory, *named, leaf), separator, draw(_NAME), expected)


def mutants(allowed: AllowedKey) -> Iterator[tuple[str, str, str]]:
    """(key, ifname, mutation): each segment replaced by, and preceded by, each mutation."""
    segments = list(allowed.segments)
    for index, segment in enumerate(segments):
        for mutation in _MUTATIONS:
            replaced = [*segments[:index], mutation, *segments[index + 1 :]]
            inserted = [*segments[:index], mutation, *segments[index:]]
            yield allowed.separator.join(replaced), allowed.ifname, mutation
            yield allowed.separator.join(inserted), allowed.ifname, mutation
            if segment == "IFNAME":  # the pod's interface name is the mutated segment
                yield allowed.separator.join(segments), mutation, mutation


@given(allowed_keys())
def test_whatever_is_accepted_stays_in_the_namespace(allowed: AllowedKey) -> None:
    # The pattern's own key is accepted (every example reaches the accepted branch) ...
    key = allowed.separator.join(allowed.segments)
    assert sysctl_target(key, allowed.ifname) == allowed.expected
    # ... and no mutation of it gets out of the namespace.
    for key, ifname, mutation in mutants(allowed):
        try:
            path = sysctl_target(key, ifname)
        except InvalidConfigError:
            continue
        assert mutation == "/", f"{key!r} (IFNAME {ifname!r}) was accepted as {path!r}"
        parts = path.split("/")
        assert parts[0] == "net" and not {"", ".", ".."} & set(parts), (key, ifname, path)
        per_interface = (parts[1], parts[2]) in tuning.PER_INTERFACE and len(parts) == 5
        assert per_interface or ".".join(parts) in NAMESPACED_GLOBALS, (key, ifname, path)


def test_mac_precedence_and_args_cni() -> None:
    base = {"mac": "02:00:00:00:00:01", "mtu": 1400, "sysctl": {"net.ipv4.ip_forward": "1"}}
    assert tuning.load_conf(request("multinic-tuning", **base)).mac == "02:00:00:00:00:01"
    conf = tuning.load_conf(request("multinic-tuning", cni_args="MAC=02:00:00:00:00:02", **base))
    assert conf.mac == "02:00:00:00:00:02"
    runtime = {"runtimeConfig": {"mac": "02:00:00:00:00:03"}}
    conf = tuning.load_conf(
        request("multinic-tuning", cni_args="MAC=02:00:00:00:00:02", **base, **runtime)
    )
    assert conf.mac == "02:00:00:00:00:03"
    cni = {"args": {"cni": {"mac": "02:00:00:00:00:0A", "allmulti": False, "txQLen": 10}}}
    conf = tuning.load_conf(request("multinic-tuning", **base, **runtime, **cni))
    assert (conf.mac, conf.allmulti, conf.txqlen, conf.mtu) == (
        "02:00:00:00:00:0a",
        False,
        10,
        1400,
    )
    merged = {"args": {"cni": {"sysctl": {"net.core.somaxconn": "9"}}}}
    conf = tuning.load_conf(request("multinic-tuning", **base, **merged))
    assert {s.key for s in conf.sysctls} == {"net.ipv4.ip_forward", "net.core.somaxconn"}


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"mtu": -1}, "'mtu' must be between"),
        ({"mtu": "1400"}, "'mtu' must be an integer"),
        ({"txQLen": True}, "'txQLen' must be an integer"),
        ({"allmulti": "yes"}, "'allmulti' must be true or false"),
        ({"sysctl": {"net.ipv4.ip_forward": 1}}, "must be a string"),
        ({"sysctl": ["net.ipv4.ip_forward"]}, "'sysctl' must be an object"),
        ({"mac": "02:00:00:00:00"}, "invalid MAC"),
        ({"dataDir": "tuning"}, "'dataDir' must be an absolute path"),
    ],
)
def test_bad_tuning_fields(fields: dict[str, Any], problem: str) -> None:
    with pytest.raises(InvalidConfigError, match=problem):
        tuning.load_conf(request("multinic-tuning", **fields))


def test_sbr_fields() -> None:
    conf = sbr.load_conf(request("multinic-sbr", gateways=["198.18.99.1", "fd00:96::1"]))
    assert {v: str(g) for v, g in conf.gateways.items()} == {4: "198.18.99.1", 6: "fd00:96::1"}
    assert conf.table is None and not conf.source_hints
    assert sbr.load_conf(request("multinic-sbr", table=5001, addSourceHints=True)).table == 5001
    for bad in ({"table": 0}, {"table": "100"}, {"gateways": [1]}, {"addSourceHints": "on"}):
        with pytest.raises(InvalidConfigError):
            sbr.load_conf(request("multinic-sbr", **bad))


def test_free_table_and_addresses_of_interface() -> None:
    assert sbr.free_table({100, 101, 103}, 100) == 102
    assert sbr.free_table(set(), 100) == 100
    prev = {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "br0"}, {"name": "net1", "sandbox": "/x"}],
        "ips": [
            {"address": "198.18.99.2/24", "interface": 1},
            {"address": "198.18.98.2/24", "interface": 0},
            {"address": "fd00:96::2/64"},  # no index: counts, as in the reference
        ],
    }
    req = request("multinic-sbr", prevResult=prev)
    assert req.config.prev_result is not None
    found = sbr.addresses_of(req.config.prev_result, "net1")
    assert [str(ip.address) for ip in found] == ["198.18.99.2/24", "fd00:96::2/64"]
