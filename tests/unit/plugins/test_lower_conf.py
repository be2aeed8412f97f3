"""Config parsing of macvlan, ipvlan and vlan (no kernel needed): fields, precedence, errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from multinic.cni import skel
from multinic.cni.errors import InvalidConfigError
from multinic.cni.types import DNS
from multinic.plugins import ipvlan, lower, macvlan, vlan


def request(plugin_type: str, args: str = "", **fields: Any) -> skel.Request:
    conf = {"cniVersion": "1.1.0", "name": "n", "type": plugin_type, **fields}
    env = {
        "CNI_CONTAINERID": "c",
        "CNI_NETNS": "/x",
        "CNI_IFNAME": "net1",
        "CNI_PATH": "/x",
        "CNI_ARGS": args,
    }
    return skel.parse_request("ADD", env, json.dumps(conf).encode(), ("1.1.0",))


def test_macvlan_defaults_and_mac_precedence() -> None:
    conf = macvlan.load_conf(request("multinic-macvlan"))
    assert conf == macvlan.MacvlanConf(lower.LowerConf("", None, False), "bridge", None)
    fields: dict[str, Any] = {"mac": "02:00:00:00:00:01", "mode": "", "mtu": 0}
    fields["linkInContainer"] = True
    conf = macvlan.load_conf(request("multinic-macvlan", **fields))
    assert conf == macvlan.MacvlanConf(lower.LowerConf("", None, True), "bridge", fields["mac"])
    args = "IgnoreUnknown=1;MAC=02:00:00:00:00:02"
    assert macvlan.load_conf(request("multinic-macvlan", args, **fields)).mac == "02:00:00:00:00:02"
    runtime = {"runtimeConfig": {"mac": "02:00:00:00:00:0A"}}
    conf = macvlan.load_conf(request("multinic-macvlan", args, **fields, **runtime))
    assert conf.mac == "02:00:00:00:00:0a"


@pytest.mark.parametrize(
    ("plugin", "fields", "message"),
    [
        (macvlan, {"mode": "source"}, "field 'mode' must be one of bridge, private, vepa"),
        (macvlan, {"mac": "nope"}, "invalid MAC address 'nope'"),
        (macvlan, {"mtu": 70000}, "field 'mtu' must be between 0 and 65535"),
        (macvlan, {"master": 3}, "field 'master' must be a string"),
        (ipvlan, {"mode": "l4"}, "field 'mode' must be one of l2, l3, l3s"),
        (vlan, {"master": "eth0"}, "field 'vlanId' is required"),
        (vlan, {"master": "eth0", "vlanId": 0}, "field 'vlanId' must be between 1 and 4094"),
        (vlan, {"master": "eth0", "vlanId": "7"}, "field 'vlanId' must be an integer"),
        (vlan, {"vlanId": 7}, "field 'master' is required"),
    ],
)
def test_bad_fields(plugin: Any, fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidConfigError, match=message):
        plugin.load_conf(request(plugin.TYPE, **fields))


def test_ipvlan_and_vlan_fields() -> None:
    assert ipvlan.load_conf(request("multinic-ipvlan")).mode == "l2"
    assert ipvlan.load_conf(request("multinic-ipvlan", mode="l3s")).mode == "l3s"
    conf = vlan.load_conf(request("multinic-vlan", master="eth0", vlanId=4094, mtu=1400))
    assert conf == vlan.VlanConf(lower.LowerConf("eth0", 1400, False), 4094)


def test_chained_master_comes_from_the_prev_result() -> None:
    prev = {"cniVersion": "1.1.0", "interfaces": [{"name": "eth5"}]}
    chained = request("multinic-ipvlan", prevResult=prev)
    conf = ipvlan.load_conf(chained).lower
    assert lower.master_name(chained, conf, chained=True) == "eth5"
    assert lower.master_name(chained, conf) == ""  # macvlan/vlan never chain
    named = request("multinic-ipvlan", master="eth9", prevResult=prev)
    assert lower.master_name(named, ipvlan.load_conf(named).lower, chained=True) == "eth9"
    two = request(
        "multinic-ipvlan", prevResult={**prev, "interfaces": [{"name": "a"}, {"name": "b"}]}
    )
    with pytest.raises(InvalidConfigError, match="chained master failure"):
        lower.master_name(two, ipvlan.load_conf(two).lower, chained=True)


def test_config_dns() -> None:
    assert lower.config_dns(request("multinic-macvlan")) == DNS()
    dns = {"nameservers": ["198.18.0.53"], "search": ["example.test"]}
    assert lower.config_dns(request("multinic-macvlan", dns=dns)) == DNS(
        ("198.18.0.53",), "", ("example.test",)
    )
