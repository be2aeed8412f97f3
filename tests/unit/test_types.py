"""Tests for multinic.cni.types: Result encoding, decoding and version conversion.

The examples follow the shape of the CNI SPEC's example result: a bridge plugin
that made a host bridge, the host end of a veth and the sandbox's eth0, with one
IPv4 and one IPv6 address on eth0, default routes and DNS.
"""

from __future__ import annotations

import copy
import ipaddress
import json
from itertools import product

import pytest
from hypothesis import given
from hypothesis import strategies as st

from multinic.cni.errors import DecodingError, ErrorCode, IncompatibleVersionError
from multinic.cni.types import DNS, Interface, IPConfig, Result, Route, convert_result
from multinic.cni.version import SUPPORTED_VERSIONS

ALL_VERSIONS = SUPPORTED_VERSIONS  # 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0
TAGGED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0")
LOSSLESS_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0")
BEFORE_1_1 = LOSSLESS_VERSIONS

IF_BRIDGE = Interface(name="cni0", mac="00:11:22:33:44:55")
IF_VETH = Interface(name="veth3243", mac="55:44:33:22:11:11")
IF_ETH0 = Interface(name="eth0", mac="99:88:77:66:55:44", sandbox="/var/run/netns/blue")


def bridge_result(version: str) -> Result:
    """The SPEC's bridge example, without any 1.1-only field."""
    return Result(
        cni_version=version,
        interfaces=(IF_BRIDGE, IF_VETH, IF_ETH0),
        ips=(
            IPConfig(
                address=ipaddress.IPv4Interface("10.1.0.5/16"),
                gateway=ipaddress.IPv4Address("10.1.0.1"),
                interface=2,
            ),
            IPConfig(
                address=ipaddress.IPv6Interface("2001:db8::5/64"),
                gateway=ipaddress.IPv6Address("2001:db8::1"),
                interface=2,
            ),
        ),
        routes=(
            Route(dst=ipaddress.IPv4Network("0.0.0.0/0")),
            Route(dst=ipaddress.IPv6Network("::/0"), gw=ipaddress.IPv6Address("2001:db8::1")),
        ),
        dns=DNS(
            nameservers=("10.1.0.1", "2001:db8::1"),
            domain="example.com",
            search=("example.com", "svc.example.com"),
            options=("ndots:5",),
        ),
    )


def relabel(result: Result, version: str) -> Result:
    """The same values under another version label (no conversion)."""
    return Result(version, result.interfaces, result.ips, result.routes, result.dns)


def bridge_result_1_1() -> Result:
    """The bridge example at 1.1.0 with every 1.1-only field set."""
    base = bridge_result("1.1.0")
    eth0 = Interface(
        name="eth0",
        mac="99:88:77:66:55:44",
        mtu=1450,
        sandbox="/var/run/netns/blue",
        socket_path="/run/vhost/eth0.sock",
        pci_id="0000:00:1f.6",
    )
    routes = (
        Route(
            dst=ipaddress.IPv4Network("0.0.0.0/0"),
            mtu=1400,
            advmss=1360,
            priority=100,
            table=200,
            scope=0,
        ),
        base.routes[1],
    )
    return Result("1.1.0", (IF_BRIDGE, IF_VETH, eth0), base.ips, routes, base.dns)


def bridge_dict(version: str) -> dict:
    """bridge_result(version).to_dict() as libcni would write it (modulo key order)."""
    tagged = version in TAGGED_VERSIONS
    ip4 = {"interface": 2, "address": "10.1.0.5/16", "gateway": "10.1.0.1"}
    ip6 = {"interface": 2, "address": "2001:db8::5/64", "gateway": "2001:db8::1"}
    if tagged:
        ip4 = {"version": "4", **ip4}
        ip6 = {"version": "6", **ip6}
    return {
        "cniVersion": version,
        "interfaces": [
            {"name": "cni0", "mac": "00:11:22:33:44:55"},
            {"name": "veth3243", "mac": "55:44:33:22:11:11"},
            {"name": "eth0", "mac": "99:88:77:66:55:44", "sandbox": "/var/run/netns/blue"},
        ],
        "ips": [ip4, ip6],
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0", "gw": "2001:db8::1"}],
        "dns": {
            "nameservers": ["10.1.0.1", "2001:db8::1"],
            "domain": "example.com",
            "search": ["example.com", "svc.example.com"],
            "options": ["ndots:5"],
        },
    }


def decode_error(data, version=None) -> DecodingError:
    with pytest.raises(DecodingError) as err:
        Result.from_dict(data, version)
    assert err.value.code == ErrorCode.DECODING_FAILURE == 6
    assert err.value.msg == "invalid result"
    return err.value


# --- encoding ----------------------------------------------------------------------


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_to_dict_matches_the_spec_example_for_every_version(version):
    assert bridge_result(version).to_dict() == bridge_dict(version)


@pytest.mark.parametrize("version", TAGGED_VERSIONS)
def test_0x_ips_carry_a_version_tag_first_in_struct_order(version):
    ips = bridge_result(version).to_dict()["ips"]
    assert [ip["version"] for ip in ips] == ["4", "6"]
    assert list(ips[0]) == ["version", "interface", "address", "gateway"]


@pytest.mark.parametrize("version", ["1.0.0", "1.1.0"])
def test_1x_ips_have_no_version_tag(version):
    ips = bridge_result(version).to_dict()["ips"]
    assert all("version" not in ip for ip in ips)
    assert list(ips[0]) == ["interface", "address", "gateway"]


def test_top_level_keys_follow_struct_order():
    assert list(bridge_result("1.0.0").to_dict()) == [
        "cniVersion",
        "interfaces",
        "ips",
        "routes",
        "dns",
    ]


def test_to_dict_output_is_json_serialisable_and_stable():
    data = bridge_result_1_1().to_dict()
    assert json.loads(json.dumps(data)) == data


def test_1_1_fields_are_written_at_1_1_0():
    data = bridge_result_1_1().to_dict()
    assert data["interfaces"][2] == {
        "name": "eth0",
        "mac": "99:88:77:66:55:44",
        "mtu": 1450,
        "sandbox": "/var/run/netns/blue",
        "socketPath": "/run/vhost/eth0.sock",
        "pciID": "0000:00:1f.6",
    }
    assert data["routes"][0] == {
        "dst": "0.0.0.0/0",
        "mtu": 1400,
        "advmss": 1360,
        "priority": 100,
        "table": 200,
        "scope": 0,
    }


@pytest.mark.parametrize("version", BEFORE_1_1)
def test_1_1_fields_are_not_written_before_1_1_0(version):
    # Even a Result value that carries them (built directly) leaves them out.
    data = relabel(bridge_result_1_1(), version).to_dict()
    assert data == bridge_dict(version) | {
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0", "gw": "2001:db8::1"}]
    }
    text = json.dumps(data)
    for key in ("mtu", "socketPath", "pciID", "advmss", "priority", "table", "scope"):
        assert f'"{key}"' not in text


def test_route_table_and_scope_zero_are_kept_at_1_1_0():
    route = Route(dst=ipaddress.IPv4Network("10.0.0.0/8"), table=0, scope=0)
    data = Result("1.1.0", routes=(route,)).to_dict()
    assert data["routes"] == [{"dst": "10.0.0.0/8", "table": 0, "scope": 0}]


def test_empty_optional_fields_are_left_out():
    result = Result(
        "1.0.0",
        interfaces=(Interface(name="eth0"),),
        ips=(IPConfig(address=ipaddress.IPv4Interface("192.0.2.7/24")),),
    )
    data = result.to_dict()
    assert data["interfaces"] == [{"name": "eth0"}]
    assert data["ips"] == [{"address": "192.0.2.7/24"}]
    assert "routes" not in data


def test_ipv6_addresses_are_written_compressed():
    ip = IPConfig(address=ipaddress.IPv6Interface("2001:0db8:0000:0000:0000:0000:0000:0005/64"))
    assert Result("1.0.0", ips=(ip,)).to_dict()["ips"] == [{"address": "2001:db8::5/64"}]


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_empty_dns_is_left_out_of_1x_results_only(version):
    # As libcni 1.2+ writes results (the reference plugins 1.10 print them so):
    # 0.x keeps an empty object, 1.x drops the key. libcni 1.1 always wrote it.
    expected = {"cniVersion": version} if version >= "1.0.0" else {"cniVersion": version, "dns": {}}
    assert Result(version).to_dict() == expected


def test_dns_is_falsy_only_when_every_field_is_empty():
    assert not DNS()
    assert DNS(domain="x")
    assert DNS(options=("ndots:1",))


# --- round trips ---------------------------------------------------------------------


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_decode_of_encode_is_identity_for_every_version(version):
    result = bridge_result(version)
    assert Result.from_dict(result.to_dict()) == result


def test_decode_of_encode_keeps_1_1_fields_at_1_1_0():
    result = bridge_result_1_1()
    assert Result.from_dict(result.to_dict()) == result


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_encode_of_decode_is_identity_for_libcni_shaped_json(version):
    data = bridge_dict(version)
    assert Result.from_dict(copy.deepcopy(data)).to_dict() == data


def test_round_trip_through_json_text():
    result = bridge_result_1_1()
    assert Result.from_dict(json.loads(json.dumps(result.to_dict()))) == result


def test_decoded_values_are_ipaddress_objects():
    result = Result.from_dict(bridge_dict("1.0.0"))
    assert result.ips[0].address == ipaddress.IPv4Interface("10.1.0.5/16")
    assert result.ips[1].gateway == ipaddress.IPv6Address("2001:db8::1")
    assert result.routes[1].dst == ipaddress.IPv6Network("::/0")
    assert result.dns.nameservers == ("10.1.0.1", "2001:db8::1")


# --- decoding ------------------------------------------------------------------------


def test_from_dict_version_argument_overrides_the_result_version():
    data = bridge_dict("1.0.0")
    assert Result.from_dict(data, "1.1.0").cni_version == "1.1.0"


def test_from_dict_version_argument_supplies_a_missing_version():
    data = bridge_dict("1.0.0")
    del data["cniVersion"]
    assert Result.from_dict(data, "1.0.0") == bridge_result("1.0.0")


def test_0x_decode_accepts_ips_without_a_version_tag():
    data = bridge_dict("1.0.0")
    data["cniVersion"] = "0.4.0"
    assert Result.from_dict(data) == bridge_result("0.4.0")


def test_0x_version_tag_must_match_the_address_family():
    data = bridge_dict("0.4.0")
    data["ips"][0]["version"] = "6"
    err = decode_error(data)
    assert err.details == "ips[0].version '6' does not match 10.1.0.5/16"


def test_1x_decode_ignores_a_stray_version_tag():
    data = bridge_dict("1.0.0")
    data["ips"][0]["version"] = "6"
    assert Result.from_dict(data) == bridge_result("1.0.0")


def test_route_destination_host_bits_are_masked_off():
    data = {"cniVersion": "1.0.0", "routes": [{"dst": "10.1.2.3/16"}]}
    assert Result.from_dict(data).routes[0].dst == ipaddress.IPv4Network("10.1.0.0/16")


def test_missing_lists_and_null_dns_decode_as_empty():
    result = Result.from_dict({"cniVersion": "1.0.0", "dns": None, "ips": None})
    assert result == Result("1.0.0")


def test_unknown_keys_are_ignored():
    data = bridge_dict("1.0.0") | {"vendor": {"x": 1}}
    assert Result.from_dict(data) == bridge_result("1.0.0")


@pytest.mark.parametrize("data", [[], "result", 7, None, True])
def test_non_object_result_is_a_decoding_error(data):
    assert decode_error(data, "1.0.0").details == "result is not a JSON object"


@pytest.mark.parametrize("version", [None, 1, 1.0])
def test_missing_or_non_string_cni_version_is_a_decoding_error(version):
    data = bridge_dict("1.0.0")
    data["cniVersion"] = version
    assert decode_error(data).details == "cniVersion is missing or not a string"


@pytest.mark.parametrize("version", ["0.2.0", "9.9.9"])
def test_unsupported_result_version_is_code_1(version):
    data = bridge_dict("1.0.0")
    data["cniVersion"] = version
    with pytest.raises(IncompatibleVersionError) as err:
        Result.from_dict(data)
    assert err.value.code == 1


@pytest.mark.parametrize(
    ("address", "detail_start"),
    [
        ("10.1.0.500/16", "ips[0].address: "),
        ("10.1.0.5/33", "ips[0].address: "),
        ("not-an-ip/16", "ips[0].address: "),
        ("10.1.0.5/", "ips[0].address '10.1.0.5/': the prefix length must be a number"),
        ("10.1.0.5/255.255.0.0", "ips[0].address '10.1.0.5/255.255.0.0': the prefix length"),
    ],
)
def test_bad_address_is_a_decoding_error_naming_the_field(address, detail_start):
    data = bridge_dict("1.0.0")
    data["ips"][0]["address"] = address
    assert decode_error(data).details.startswith(detail_start)


@pytest.mark.parametrize("address", ["10.1.0.5", "2001:db8::5", ""])
def test_address_without_prefix_is_a_decoding_error(address):
    data = bridge_dict("1.0.0")
    data["ips"][1]["address"] = address
    assert decode_error(data).details == f"ips[1].address {address!r} has no prefix length"


def test_missing_address_is_a_decoding_error():
    data = bridge_dict("1.0.0")
    del data["ips"][0]["address"]
    assert decode_error(data).details == "ips[0].address is missing"


def test_bad_gateway_is_a_decoding_error_naming_the_field():
    data = bridge_dict("1.0.0")
    data["ips"][0]["gateway"] = "10.1.0.256"
    assert decode_error(data).details.startswith("ips[0].gateway: ")


@pytest.mark.parametrize(
    ("index", "gateway", "expected"),
    [
        (0, "2001:db8::1", "ips[0]: gateway 2001:db8::1 is not IPv4"),
        (1, "10.1.0.1", "ips[1]: gateway 10.1.0.1 is not IPv6"),
    ],
)
def test_gateway_family_mismatch_is_a_decoding_error(index, gateway, expected):
    data = bridge_dict("1.0.0")
    data["ips"][index]["gateway"] = gateway
    assert decode_error(data).details == expected


@pytest.mark.parametrize("index", [3, 99, -1])
def test_ip_interface_index_out_of_range_is_a_decoding_error(index):
    data = bridge_dict("1.0.0")
    data["ips"][1]["interface"] = index
    assert decode_error(data).details == f"ips[1].interface {index} names no interface"


def test_ip_interface_index_needs_interfaces():
    data = {"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24", "interface": 0}]}
    assert decode_error(data).details == "ips[0].interface 0 names no interface"


@pytest.mark.parametrize("value", ["2", 2.0, True])
def test_ip_interface_index_must_be_an_integer(value):
    data = bridge_dict("1.0.0")
    data["ips"][0]["interface"] = value
    assert decode_error(data).details == "ips[0].interface is not an integer"


@pytest.mark.parametrize("key", ["interfaces", "ips", "routes"])
def test_top_level_lists_must_be_lists(key):
    data = bridge_dict("1.0.0")
    data[key] = {"0": data[key][0]}
    assert decode_error(data).details == f"{key} is not a list"


@pytest.mark.parametrize(
    ("key", "entry", "expected"),
    [
        ("interfaces", "eth0", "interfaces[0] is not a JSON object"),
        ("ips", ["10.0.0.1/24"], "ips[0] is not a JSON object"),
        ("routes", None, "routes[0] is not a JSON object"),
    ],
)
def test_list_entries_must_be_objects(key, entry, expected):
    data = bridge_dict("1.0.0")
    data[key][0] = entry
    assert decode_error(data).details == expected


@pytest.mark.parametrize(
    ("interface", "expected"),
    [
        ({"mac": "00:11:22:33:44:55"}, "interfaces[1].name is missing"),
        ({"name": ""}, "interfaces[1].name is empty"),
        ({"name": 0}, "interfaces[1].name is not a string"),
        ({"name": "veth0", "mac": 5}, "interfaces[1].mac is not a string"),
        ({"name": "veth0", "sandbox": ["/x"]}, "interfaces[1].sandbox is not a string"),
        ({"name": "veth0", "mtu": "1500"}, "interfaces[1].mtu is not an integer"),
        ({"name": "veth0", "mtu": 1500.0}, "interfaces[1].mtu is not an integer"),
        ({"name": "veth0", "socketPath": 1}, "interfaces[1].socketPath is not a string"),
        ({"name": "veth0", "pciID": False}, "interfaces[1].pciID is not a string"),
    ],
)
def test_interface_field_type_errors_name_the_field(interface, expected):
    data = bridge_dict("1.1.0")
    data["interfaces"][1] = interface
    assert decode_error(data).details == expected


@pytest.mark.parametrize(
    ("route", "expected_start"),
    [
        ({"gw": "10.0.0.1"}, "routes[1].dst is missing"),
        ({"dst": 0}, "routes[1].dst is not a string"),
        ({"dst": "10.0.0.0/40"}, "routes[1].dst: "),
        ({"dst": "10.0.0.0/8", "gw": "::1"}, "routes[1]: gw ::1 is not IPv4"),
        ({"dst": "::/0", "gw": "10.0.0.1"}, "routes[1]: gw 10.0.0.1 is not IPv6"),
        ({"dst": "::/0", "gw": "fe80::zz"}, "routes[1].gw: "),
        ({"dst": "::/0", "priority": "high"}, "routes[1].priority is not an integer"),
        ({"dst": "::/0", "table": True}, "routes[1].table is not an integer"),
        ({"dst": "::/0", "scope": 25.5}, "routes[1].scope is not an integer"),
        ({"dst": "::/0", "mtu": "1400"}, "routes[1].mtu is not an integer"),
        ({"dst": "::/0", "advmss": [1]}, "routes[1].advmss is not an integer"),
    ],
)
def test_route_errors_name_the_field(route, expected_start):
    data = bridge_dict("1.1.0")
    data["routes"][1] = route
    assert decode_error(data).details.startswith(expected_start)


@pytest.mark.parametrize(
    ("dns", "expected"),
    [
        ("10.1.0.1", "dns is not a JSON object"),
        ([], "dns is not a JSON object"),
        ({"nameservers": "10.1.0.1"}, "dns.nameservers is not a list of strings"),
        ({"nameservers": ["10.1.0.1", 53]}, "dns.nameservers is not a list of strings"),
        ({"search": [None]}, "dns.search is not a list of strings"),
        ({"options": "ndots:5"}, "dns.options is not a list of strings"),
        ({"domain": ["example.com"]}, "dns.domain is not a string"),
    ],
)
def test_dns_type_errors_name_the_field(dns, expected):
    data = bridge_dict("1.0.0")
    data["dns"] = dns
    assert decode_error(data).details == expected


def test_decoding_error_renders_msg_and_details():
    data = bridge_dict("1.0.0")
    data["ips"][0]["address"] = "10.1.0.5"
    err = decode_error(data)
    assert str(err) == "invalid result: ips[0].address '10.1.0.5' has no prefix length"
    assert err.to_dict("1.0.0") == {
        "cniVersion": "1.0.0",
        "code": 6,
        "msg": "invalid result",
        "details": "ips[0].address '10.1.0.5' has no prefix length",
    }


# --- conversion ----------------------------------------------------------------------


@pytest.mark.parametrize(("source", "target"), list(product(LOSSLESS_VERSIONS, repeat=2)))
def test_conversion_among_0_3_0_and_1_0_0_is_lossless(source, target):
    converted = bridge_result(source).convert(target)
    assert converted == bridge_result(target)
    assert converted.to_dict() == bridge_dict(target)
    assert converted.convert(source) == bridge_result(source)


@pytest.mark.parametrize("source", LOSSLESS_VERSIONS)
def test_conversion_up_to_1_1_0_relabels(source):
    assert bridge_result(source).convert("1.1.0") == bridge_result("1.1.0")


@pytest.mark.parametrize("target", BEFORE_1_1)
def test_conversion_from_1_1_0_drops_1_1_fields(target):
    converted = bridge_result_1_1().convert(target)
    assert converted == bridge_result(target)
    eth0 = converted.interfaces[2]
    assert (eth0.mtu, eth0.socket_path, eth0.pci_id) == (None, "", "")
    route = converted.routes[0]
    assert (route.mtu, route.advmss, route.priority, route.table, route.scope) == (None,) * 5


def test_conversion_from_1_1_0_to_1_1_0_keeps_everything():
    result = bridge_result_1_1()
    assert result.convert("1.1.0") == result
    assert result.convert("1.1.0", strict=True) == result


@pytest.mark.parametrize("target", BEFORE_1_1)
def test_strict_conversion_names_every_lost_field(target):
    with pytest.raises(IncompatibleVersionError) as err:
        bridge_result_1_1().convert(target, strict=True)
    assert err.value.code == 1
    assert err.value.msg == f"cannot convert result from 1.1.0 to {target} without loss"
    assert err.value.details == (
        f"{target} has no place for: interfaces[2].mtu, interfaces[2].socketPath, "
        "interfaces[2].pciID, routes[0].mtu, routes[0].advmss, routes[0].priority, "
        "routes[0].table, routes[0].scope"
    )


def test_strict_conversion_treats_zero_as_a_set_value():
    result = Result("1.1.0", interfaces=(Interface(name="eth0", mtu=0),))
    with pytest.raises(IncompatibleVersionError) as err:
        result.convert("1.0.0", strict=True)
    assert err.value.details == "1.0.0 has no place for: interfaces[0].mtu"


@pytest.mark.parametrize("target", BEFORE_1_1)
def test_strict_conversion_without_1_1_fields_succeeds(target):
    assert bridge_result("1.1.0").convert(target, strict=True) == bridge_result(target)


@pytest.mark.parametrize("target", ["0.1.0", "0.2.0", "9.9.9", "1.2.0"])
def test_conversion_to_an_unsupported_version_is_code_1(target):
    with pytest.raises(IncompatibleVersionError) as err:
        bridge_result("1.0.0").convert(target)
    assert err.value.code == 1
    assert err.value.msg == "incompatible CNI versions"


def test_conversion_to_a_malformed_version_is_code_1():
    with pytest.raises(IncompatibleVersionError) as err:
        convert_result(bridge_result("1.0.0"), "1.0")
    assert err.value.code == 1
    assert err.value.msg == "invalid cniVersion"


def test_conversion_does_not_change_the_original():
    original = bridge_result_1_1()
    original.convert("0.3.0")
    assert original == bridge_result_1_1()


def test_converted_0x_result_is_tagged_on_output():
    ips = bridge_result("1.0.0").convert("0.3.1").to_dict()["ips"]
    assert [ip["version"] for ip in ips] == ["4", "6"]


# --- property tests ----------------------------------------------------------------

_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_names = _text.filter(bool)
_ints = st.integers(min_value=0, max_value=2**31 - 1)


@st.composite
def _interface_address(draw, version):
    address = draw(st.ip_addresses(v=version))
    prefix = draw(st.integers(min_value=0, max_value=32 if version == 4 else 128))
    return ipaddress.ip_interface(f"{address}/{prefix}")


@st.composite
def _ip_config(draw, interface_count):
    version = draw(st.sampled_from([4, 6]))
    address = draw(_interface_address(version))
    gateway = draw(st.none() | st.ip_addresses(v=version))
    index = draw(
        st.none() | st.integers(min_value=0, max_value=interface_count - 1)
        if interface_count
        else st.none()
    )
    return IPConfig(address=address, gateway=gateway, interface=index)


@st.composite
def _route(draw):
    version = draw(st.sampled_from([4, 6]))
    dst = draw(_interface_address(version)).network
    extras = {key: draw(st.none() | _ints) for key in ("mtu", "advmss", "priority", "table")}
    return Route(
        dst=dst,
        gw=draw(st.none() | st.ip_addresses(v=version)),
        scope=draw(st.none() | st.sampled_from([0, 200, 253, 254])),
        **extras,
    )


_interfaces = st.builds(
    Interface,
    name=_names,
    mac=st.sampled_from(["", "00:11:22:33:44:55", "02:42:ac:11:00:02"]),
    mtu=st.none() | st.integers(min_value=0, max_value=65535),
    sandbox=st.sampled_from(["", "/var/run/netns/blue", "/proc/1234/ns/net"]),
    socket_path=_text,
    pci_id=st.sampled_from(["", "0000:00:1f.6", "0000:3b:00.1"]),
)

_dns = st.builds(
    DNS,
    nameservers=st.lists(st.ip_addresses().map(str), max_size=3).map(tuple),
    domain=_text,
    search=st.lists(_names, max_size=3).map(tuple),
    options=st.lists(_names, max_size=3).map(tuple),
)


@st.composite
def results_1_1(draw):
    """A valid 1.1.0 Result, possibly with every 1.1-only field set."""
    interfaces = tuple(draw(st.lists(_interfaces, max_size=4)))
    ips = tuple(draw(st.lists(_ip_config(len(interfaces)), max_size=4)))
    routes = tuple(draw(st.lists(_route(), max_size=4)))
    return Result("1.1.0", interfaces, ips, routes, draw(_dns))


@given(results_1_1(), st.sampled_from(ALL_VERSIONS))
def test_property_every_version_round_trips_through_dict_and_json(result, version):
    value = result.convert(version)
    assert Result.from_dict(value.to_dict()) == value
    assert Result.from_dict(json.loads(json.dumps(value.to_dict()))) == value


@given(results_1_1())
def test_property_1_1_0_round_trip_keeps_1_1_fields(result):
    assert Result.from_dict(result.to_dict()) == result


@given(
    results_1_1(),
    st.sampled_from(LOSSLESS_VERSIONS),
    st.sampled_from(LOSSLESS_VERSIONS),
)
def test_property_conversion_among_0_3_0_and_1_0_0_is_lossless(result, a, b):
    base = result.convert("1.0.0")
    assert base.convert(a).convert(b) == relabel(base, b)
    assert base.convert(a).convert(b).to_dict() == relabel(base, b).to_dict()


@given(results_1_1(), st.sampled_from(BEFORE_1_1))
def test_property_down_and_up_again_loses_only_1_1_fields(result, version):
    back = result.convert(version).convert("1.1.0")
    assert back == result.convert("1.0.0").convert("1.1.0")
    assert back.ips == result.ips
    assert back.dns == result.dns
    assert [r.dst for r in back.routes] == [r.dst for r in result.routes]
    assert [i.name for i in back.interfaces] == [i.name for i in result.interfaces]


# --- value semantics -------------------------------------------------------------------


def test_results_are_immutable_and_hashable():
    result = bridge_result("1.0.0")
    with pytest.raises(AttributeError):
        result.cni_version = "1.1.0"
    with pytest.raises(AttributeError):
        result.interfaces[0].name = "br0"
    assert hash(result) == hash(bridge_result("1.0.0"))
    assert len({result, bridge_result("1.0.0"), bridge_result("0.4.0")}) == 2


def test_default_dns_is_shared_safely_between_results():
    first, second = Result("1.0.0"), Result("1.1.0")
    assert first.dns == second.dns == DNS()
    assert first.dns.nameservers == ()


@pytest.mark.parametrize("dst", ["10.0.0.0", "10.0.0.0/255.0.0.0", "10.0.0.0/"])
def test_route_destination_needs_a_decimal_prefix_length(dst):
    data = bridge_dict("1.0.0")
    data["routes"][0]["dst"] = dst
    assert decode_error(data).details.startswith(f"routes[0].dst {dst!r}")
