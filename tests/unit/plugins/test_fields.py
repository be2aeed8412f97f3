"""Typed reading of plugin config fields: wrong types are config errors naming the field."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from multinic.cni.errors import ErrorCode, InvalidConfigError
from multinic.plugins.fields import plugin_fields

CONF = {
    "bridge": "br0",
    "isGateway": True,
    "mtu": 1400,
    "mode": "l3",
    "flag": "yes",
    "count": True,
    "args": {"a": "1", "b": 2},
    "gw": "10.0.0.1",
    "nothing": None,
    "dataDir": "/var/lib/cni\0/networks",
    "sysctl": {"net.ipv4.ip_forward": "1\0"},
}


def test_values_of_the_right_type_are_returned() -> None:
    f = plugin_fields(CONF, "multinic-bridge")
    assert f.string("bridge") == "br0"
    assert f.boolean("isGateway") is True
    assert f.integer("mtu", low=68, high=65535) == 1400
    assert f.choice("mode", ("l2", "l3", "l3s"), "l2") == "l3"
    assert f.address("gw") == ip_address("10.0.0.1")


def test_absent_and_null_fields_take_the_default() -> None:
    f = plugin_fields(CONF, "multinic-bridge")
    assert f.string("absent", "cni0") == "cni0"
    assert f.string("nothing", "cni0") == "cni0"
    assert f.boolean("absent") is False
    assert f.integer("absent") is None
    assert f.choice("absent", ("l2", "l3"), "l2") == "l2"
    assert f.address("absent") is None
    assert f.mapping("absent").obj == {}


@pytest.mark.parametrize(
    ("read", "message"),
    [
        (lambda f: f.boolean("flag"), "'flag' must be true or false, not str"),
        (lambda f: f.integer("count"), "'count' must be an integer, not a boolean"),
        (lambda f: f.integer("mtu", low=1500, high=9000), "must be between 1500 and 9000"),
        (lambda f: f.string("mtu"), "'mtu' must be a string, not int"),
        (lambda f: f.choice("mode", ("l2", "l3s"), "l2"), "must be one of l2, l3s, not 'l3'"),
        (lambda f: f.address("bridge"), "'bridge' is not an IP address"),
        (lambda f: f.required_string("absent"), "'absent' is required"),
        (lambda f: f.mapping("bridge"), "'bridge' must be an object"),
        (
            lambda f: f.mapping_of_strings("args"),
            "multinic-bridge.args: field 'b' must be a string",
        ),
        (lambda f: f.string("dataDir"), "'dataDir' must not contain a NUL character"),
        (
            lambda f: f.mapping_of_strings("sysctl"),
            "multinic-bridge.sysctl: field 'net.ipv4.ip_forward' must not contain a NUL",
        ),
    ],
)
def test_wrong_fields_are_config_errors_naming_plugin_and_field(read: object, message: str) -> None:
    f = plugin_fields(CONF, "multinic-bridge")
    with pytest.raises(InvalidConfigError) as caught:
        read(f)  # type: ignore[operator]
    assert caught.value.code == ErrorCode.INVALID_NETWORK_CONFIG
    assert message in caught.value.msg
    assert caught.value.msg.startswith("multinic-bridge")


@pytest.mark.parametrize("ipam", ["10.0.0.0/24", 1, ["host-local"], True])
def test_an_ipam_that_is_not_an_object_is_refused_not_read_as_none(ipam: object) -> None:
    with pytest.raises(InvalidConfigError, match="'ipam' must be an object") as caught:
        plugin_fields({"ipam": ipam}, "multinic-macvlan")
    assert caught.value.msg.startswith("multinic-macvlan")
    assert plugin_fields({"ipam": None}, "multinic-macvlan").mapping("ipam").obj == {}


def test_a_null_in_a_mapping_of_strings_is_refused_not_read_as_absent() -> None:
    """Found by the config fuzz: tuning's CHECK compared a null sysctl value (999)."""
    f = plugin_fields({"sysctl": {"net.ipv4.conf.eth0.proxy_arp": None}}, "multinic-tuning")
    with pytest.raises(InvalidConfigError, match=r"'net\.ipv4\.conf\.eth0\.proxy_arp' is null"):
        f.mapping_of_strings("sysctl")
