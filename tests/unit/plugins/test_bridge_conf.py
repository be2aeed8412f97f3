"""Config parsing of multinic-bridge/ptp and the nftables rule tags (no root needed)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from multinic.cni import skel
from multinic.cni.errors import InvalidConfigError
from multinic.cni.version import SUPPORTED_VERSIONS
from multinic.plugins import bridge, ptp
from multinic.plugins.masq import masq_rule
from multinic.plugins.nftables import MAX_COMMENT, Tag
from multinic.plugins.veth import random_veth_name, requested_mac

ENV = {
    "CNI_COMMAND": "ADD",
    "CNI_CONTAINERID": "c1",
    "CNI_NETNS": "/run/netns/x",
    "CNI_IFNAME": "eth0",
    "CNI_PATH": "/x",
}


def request(conf: dict[str, Any], args: str = "") -> skel.Request:
    full = {"cniVersion": "1.1.0", "name": "net", "type": "multinic-bridge", **conf}
    env = {**ENV, "CNI_ARGS": args}
    return skel.parse_request("ADD", env, json.dumps(full).encode(), SUPPORTED_VERSIONS)


def test_bridge_defaults_are_the_references() -> None:
    conf = bridge.load_conf(request({}))
    assert conf.bridge == "cni0"
    assert not (conf.is_gateway or conf.ip_masq or conf.hairpin or conf.promisc)
    assert conf.preserve_default_vlan and conf.mtu is None and not conf.layer3


def test_is_default_gateway_implies_is_gateway() -> None:
    conf = bridge.load_conf(request({"isDefaultGateway": True, "ipam": {"type": "x"}}))
    assert conf.is_gateway and conf.is_default_gateway and conf.layer3


def test_vlan_trunk_ranges_and_ids_are_merged_and_sorted() -> None:
    trunk = [{"minID": 12, "maxID": 14}, {"id": 5}, {"id": 13}]
    assert bridge.load_conf(request({"vlanTrunk": trunk})).vlan_trunk == (5, 12, 13, 14)


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"vlan": -1}, "'vlan' must be between"),
        ({"isGateway": "yes"}, "'isGateway' must be true or false"),
        ({"vlanTrunk": [{"minID": 9, "maxID": 3}]}, "greater than maxID"),
        ({"vlanTrunk": [{"id": 4095}]}, "'id' must be between"),
        ({"vlanTrunk": {"id": 3}}, "must be a list"),
        ({"bridge": "x" * 16}, "not a valid interface name"),
    ],
)
def test_bridge_config_errors_name_the_field(fields: dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidConfigError, match=words):
        bridge.load_conf(request(fields))


def test_ptp_needs_ipam() -> None:
    with pytest.raises(InvalidConfigError, match="ipam"):
        ptp.load_conf(request({"type": "multinic-ptp"}))
    assert ptp.load_conf(request({"ipam": {"type": "x"}, "mtu": 1400})).mtu == 1400


def test_mac_precedence_is_the_references() -> None:
    conf = {"args": {"cni": {"mac": "02:00:00:00:00:02"}}}
    assert requested_mac(request({}, "MAC=02:00:00:00:00:01")) == "02:00:00:00:00:01"
    assert requested_mac(request(conf, "MAC=02:00:00:00:00:01")) == "02:00:00:00:00:02"
    both = {**conf, "runtimeConfig": {"mac": "02:00:00:00:00:03"}}
    assert requested_mac(request(both)) == "02:00:00:00:00:03"
    with pytest.raises(InvalidConfigError, match="invalid MAC"):
        requested_mac(request({"runtimeConfig": {"mac": "02-00-00-00-00-03"}}))


def test_host_veth_names_are_like_the_references() -> None:
    name = random_veth_name()
    assert name.startswith("veth") and len(name) == 12
    int(name[4:], 16)


@given(
    network=st.text(min_size=1, max_size=200),
    container=st.text(min_size=1, max_size=200),
    ifname=st.text(alphabet="abcdefghij0123456789._-", min_size=1, max_size=15),
)
def test_tags_always_fit_a_comment_and_tell_attachments_apart(
    network: str, container: str, ifname: str
) -> None:
    tag = Tag(network, container, ifname)
    comment = tag.comment()
    assert len(comment.encode()) <= MAX_COMMENT
    assert '"' not in comment and "\\" not in comment
    assert comment.startswith(tag.network_prefix())
    assert Tag(network, container + "x", ifname).comment() != comment
    assert Tag(network, container, ifname + "x").comment() != comment


def test_a_plain_tag_is_readable() -> None:
    assert Tag("net", "abc", "eth0").comment() == "multinic net=net id=abc if=eth0"


def test_masquerade_rule_excludes_the_subnet_and_multicast() -> None:
    from ipaddress import ip_interface

    rule = masq_rule(ip_interface("198.18.64.5/24"), Tag("n", "c", "eth0"))
    assert "ip saddr 198.18.64.5 ip daddr != { 198.18.64.0/24, 224.0.0.0/4 } masquerade" in rule
    six = masq_rule(ip_interface("fd00:64::5/64"), Tag("n", "c", "eth0"))
    assert "ip6 saddr fd00:64::5 ip6 daddr != { fd00:64::/64, ff00::/8 } masquerade" in six


#: The nftables code bridge and ptp import only for ipMasq or macspoofchk, by name: a
#: renamed module fails the probe below instead of silently dropping out of the check.
NFTABLES_MODULES = ("multinic.plugins.masq", "multinic.plugins.nftables")


def test_nftables_code_is_loaded_only_by_configs_that_use_it() -> None:
    # Structural, not timing: most networks use neither ipMasq nor macspoofchk.
    import subprocess
    import sys

    probe = (
        "import importlib, json, sys; import multinic.plugins.bridge, multinic.plugins.ptp; "
        f"names = {NFTABLES_MODULES!r}; loaded = [m for m in names if m in sys.modules]; "
        "[importlib.import_module(m) for m in names]; "  # renamed: ModuleNotFoundError
        "print(json.dumps([loaded, [m for m in names if m in sys.modules]]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    loaded_by_the_plugins, loaded_at_the_end = json.loads(done.stdout)
    assert loaded_by_the_plugins == []
    assert loaded_at_the_end == list(NFTABLES_MODULES)  # the probe can see them when loaded
