"""Tests for multinic.cni.config: config lists, single configs and a plugin's stdin config."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from multinic.cni.config import (
    VALID_ATTACHMENTS_KEYS,
    Attachment,
    PluginConfig,
    parse_attachments,
    parse_net_conf,
    parse_network_config,
    parse_network_config_list,
)
from multinic.cni.errors import (
    DecodingError,
    ErrorCode,
    IncompatibleVersionError,
    InvalidConfigError,
)
from multinic.cni.types import Result

# A config list in the shape of the SPEC's example, with unknown keys at both levels.
CONFLIST_TEXT = """{
  "cniVersion": "1.0.0",
  "name": "dbnet",
  "vendor.example/owner": {"team": "db", "ticket": 42},
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "keyA": ["some more", "plugin specific", "configuration"],
      "ipam": {
        "type": "host-local",
        "subnet": "10.1.0.0/16",
        "gateway": "10.1.0.1",
        "routes": [{"dst": "0.0.0.0/0"}]
      },
      "dns": {"nameservers": ["10.1.0.1"]}
    },
    {
      "type": "tuning",
      "capabilities": {"mac": true, "ips": false},
      "sysctl": {"net.core.somaxconn": "500"}
    },
    {
      "type": "portmap",
      "capabilities": {"portMappings": true}
    }
  ]
}
"""
CONFLIST_BYTES = CONFLIST_TEXT.encode()


def minimal_list(**extra) -> dict:
    return {"cniVersion": "1.0.0", "name": "net", "plugins": [{"type": "bridge"}], **extra}


def list_error(exc_type, data, **kwargs):
    with pytest.raises(exc_type) as err:
        parse_network_config_list(data, **kwargs)
    return err.value


# --- parse_network_config_list: content ----------------------------------------------


def test_list_fields_are_read():
    net = parse_network_config_list(CONFLIST_BYTES)
    assert net.name == "dbnet"
    assert net.cni_version == "1.0.0"
    assert net.cni_versions == ()
    assert (net.disable_check, net.disable_gc, net.load_only_inlined_plugins) == (
        False,
        False,
        False,
    )
    assert [p.type for p in net.plugins] == ["bridge", "tuning", "portmap"]
    assert net.source is None


def test_unknown_top_level_fields_are_kept_in_raw():
    net = parse_network_config_list(CONFLIST_BYTES)
    assert net.raw["vendor.example/owner"] == {"team": "db", "ticket": 42}
    assert net.raw == json.loads(CONFLIST_TEXT)


def test_unknown_plugin_fields_are_kept_in_plugin_raw():
    bridge, tuning, _ = parse_network_config_list(CONFLIST_BYTES).plugins
    assert bridge.raw["bridge"] == "cni0"
    assert bridge.raw["keyA"] == ["some more", "plugin specific", "configuration"]
    assert bridge.raw["ipam"]["subnet"] == "10.1.0.0/16"
    assert tuning.raw == {
        "type": "tuning",
        "capabilities": {"mac": True, "ips": False},
        "sysctl": {"net.core.somaxconn": "500"},
    }


def test_plugin_raw_keeps_key_order():
    bridge = parse_network_config_list(CONFLIST_BYTES).plugins[0]
    assert list(bridge.raw) == ["type", "bridge", "keyA", "ipam", "dns"]


def test_capabilities_are_the_keys_set_to_true():
    _, tuning, portmap = parse_network_config_list(CONFLIST_BYTES).plugins
    assert tuning.capabilities == frozenset({"mac"})
    assert portmap.capabilities == frozenset({"portMappings"})


def test_capabilities_need_the_json_value_true():
    plugin = PluginConfig({"type": "x", "capabilities": {"a": 1, "b": "true", "c": True}})
    assert plugin.capabilities == frozenset({"c"})


def test_plugin_without_capabilities_has_none():
    assert parse_network_config_list(minimal_list()).plugins[0].capabilities == frozenset()


@pytest.mark.parametrize("caps", [["mac"], "mac", True, 1])
def test_capabilities_that_are_not_an_object_are_code_7(caps):
    data = minimal_list(plugins=[{"type": "bridge"}, {"type": "tuning", "capabilities": caps}])
    err = list_error(InvalidConfigError, data)
    assert err.code == 7
    assert err.details == "plugins[1].capabilities is not an object"


def test_source_bytes_are_kept_byte_for_byte():
    net = parse_network_config_list(CONFLIST_BYTES)
    assert net.source_bytes == CONFLIST_BYTES
    assert net.source_bytes.endswith(b"}\n")


def test_source_bytes_from_text_are_its_utf8_encoding():
    text = CONFLIST_TEXT.replace('"db"', '"d\u00e9j\u00e0"')
    assert parse_network_config_list(text).source_bytes == text.encode("utf-8")


def test_source_bytes_from_a_mapping_are_compact_json():
    data = {"name": "net", "cniVersion": "1.0.0", "plugins": [{"type": "bridge"}]}
    assert parse_network_config_list(data).source_bytes == (
        b'{"name":"net","cniVersion":"1.0.0","plugins":[{"type":"bridge"}]}'
    )


def test_source_path_is_kept_and_named_in_errors():
    source = Path("/etc/cni/net.d/10-net.conflist")
    assert parse_network_config_list(minimal_list(), source).source == source
    err = list_error(InvalidConfigError, minimal_list(plugins=[]), source=source)
    assert err.msg == "invalid network config list '/etc/cni/net.d/10-net.conflist'"


def test_mapping_input_is_not_modified():
    data = minimal_list()
    before = json.dumps(data)
    parse_network_config_list(data, extra_plugins=[{"type": "tuning"}])
    assert json.dumps(data) == before


# --- plugins --------------------------------------------------------------------------


def test_missing_plugins_is_code_7():
    data = minimal_list()
    del data["plugins"]
    err = list_error(InvalidConfigError, data)
    assert err.code == ErrorCode.INVALID_NETWORK_CONFIG == 7
    assert err.details == "no plugins in list"


def test_empty_plugins_is_code_7():
    assert list_error(InvalidConfigError, minimal_list(plugins=[])).details == "no plugins in list"


@pytest.mark.parametrize("plugins", [{"type": "bridge"}, "bridge", 1])
def test_plugins_that_are_not_a_list_are_code_7(plugins):
    err = list_error(InvalidConfigError, minimal_list(plugins=plugins))
    assert err.code == 7
    assert err.details == "'plugins' must be a list"


@pytest.mark.parametrize("entry", ["bridge", ["bridge"], None])
def test_plugin_entries_must_be_objects(entry):
    err = list_error(InvalidConfigError, minimal_list(plugins=[{"type": "bridge"}, entry]))
    assert err.details == "plugins[1] is not an object"


@pytest.mark.parametrize("plugin", [{}, {"type": ""}, {"type": None}, {"type": 3}])
def test_plugin_without_a_string_type_is_code_7(plugin):
    err = list_error(InvalidConfigError, minimal_list(plugins=[plugin]))
    assert err.code == 7
    assert err.details == "plugins[0] has no 'type'"


@pytest.mark.parametrize("plugin_type", ["../bin/sh", "/usr/bin/bridge", "a/b", ".", ".."])
def test_plugin_type_that_is_a_path_is_code_7(plugin_type):
    err = list_error(InvalidConfigError, minimal_list(plugins=[{"type": plugin_type}]))
    assert err.details == f"plugins[0].type {plugin_type!r} is not a plugin name"


def test_extra_plugins_are_appended_after_inlined_ones():
    net = parse_network_config_list(
        CONFLIST_BYTES, extra_plugins=[{"type": "firewall"}, {"type": "bandwidth"}]
    )
    assert [p.type for p in net.plugins] == [
        "bridge",
        "tuning",
        "portmap",
        "firewall",
        "bandwidth",
    ]


def test_extra_plugins_alone_make_a_valid_list():
    data = minimal_list()
    del data["plugins"]
    net = parse_network_config_list(data, extra_plugins=[{"type": "bridge"}])
    assert [p.raw for p in net.plugins] == [{"type": "bridge"}]


def test_extra_plugins_are_validated_with_their_position():
    err = list_error(InvalidConfigError, minimal_list(), extra_plugins=[{"cfg": 1}])
    assert err.details == "plugins[1] has no 'type'"


# --- versions -------------------------------------------------------------------------


def test_cni_versions_negotiate_the_highest_supported():
    net = parse_network_config_list(minimal_list(cniVersions=["0.3.1", "1.0.0", "1.1.0"]))
    assert net.cni_versions == ("0.3.1", "1.0.0", "1.1.0")
    assert net.negotiated_version() == "1.1.0"


def test_cni_version_takes_part_in_negotiation():
    net = parse_network_config_list(minimal_list(cniVersion="1.1.0", cniVersions=["0.4.0"]))
    assert net.negotiated_version() == "1.1.0"


def test_unsupported_cni_versions_are_skipped():
    data = minimal_list(cniVersion="0.4.0", cniVersions=["0.2.0", "1.0.0", "2.0.0"])
    assert parse_network_config_list(data).negotiated_version() == "1.0.0"


def test_cni_version_is_optional_when_cni_versions_is_given():
    data = minimal_list(cniVersions=["1.0.0", "0.4.0"])
    del data["cniVersion"]
    net = parse_network_config_list(data)
    assert net.cni_version == ""
    assert net.negotiated_version() == "1.0.0"


def test_negotiation_respects_the_supported_argument():
    net = parse_network_config_list(minimal_list(cniVersions=["0.4.0", "1.0.0", "1.1.0"]))
    assert net.negotiated_version(["0.4.0", "1.0.0"]) == "1.0.0"


def test_without_cni_versions_the_cni_version_is_used():
    assert parse_network_config_list(minimal_list(cniVersion="0.3.1")).negotiated_version() == (
        "0.3.1"
    )


def test_an_unsupported_but_well_formed_cni_version_parses_but_does_not_negotiate():
    net = parse_network_config_list(minimal_list(cniVersion="2.0.0"))
    assert net.cni_version == "2.0.0"
    with pytest.raises(IncompatibleVersionError) as err:
        net.negotiated_version()
    assert err.value.code == 1


@pytest.mark.parametrize("versions", [None, []])
def test_cni_version_is_required_without_cni_versions(versions):
    data = minimal_list()
    del data["cniVersion"]
    if versions is not None:
        data["cniVersions"] = versions
    err = list_error(IncompatibleVersionError, data)
    assert err.code == 1
    assert err.details == "'cniVersion' is missing"


@pytest.mark.parametrize("version", [1.0, "1.0", "v1.0.0", ""])
def test_malformed_cni_version_is_code_1(version):
    assert list_error(IncompatibleVersionError, minimal_list(cniVersion=version)).code == 1


@pytest.mark.parametrize("versions", ["1.0.0", ["1.0.0", 1], {"1.0.0": True}])
def test_cni_versions_must_be_a_list_of_strings(versions):
    err = list_error(InvalidConfigError, minimal_list(cniVersions=versions))
    assert err.code == 7
    assert err.details == "'cniVersions' must be a list of strings"


def test_malformed_entry_in_cni_versions_is_code_1():
    err = list_error(IncompatibleVersionError, minimal_list(cniVersions=["1.0.0", "1.1"]))
    assert err.details == "'1.1' is not major.minor.patch"


# --- boolean flags --------------------------------------------------------------------

FLAGS = {
    "disableCheck": "disable_check",
    "disableGC": "disable_gc",
    "loadOnlyInlinedPlugins": "load_only_inlined_plugins",
}


@pytest.mark.parametrize("key", FLAGS)
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        ("true", True),
        ("false", False),
        ("TRUE", True),
        ("False", False),
        ("tRuE", True),
    ],
)
def test_flags_accept_bools_and_true_false_strings(key, value, expected):
    net = parse_network_config_list(minimal_list(**{key: value}))
    assert getattr(net, FLAGS[key]) is expected


@pytest.mark.parametrize("key", FLAGS)
def test_flags_default_to_false(key):
    assert getattr(parse_network_config_list(minimal_list()), FLAGS[key]) is False


@pytest.mark.parametrize("key", FLAGS)
@pytest.mark.parametrize("value", ["yes", "1", "", " true", 1, 0, None, [], {}])
def test_flags_reject_other_values_with_code_7(key, value):
    err = list_error(InvalidConfigError, minimal_list(**{key: value}))
    assert err.code == 7
    assert err.details == f"{key!r} must be true or false, not {value!r}"


# --- names ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "0net", "my-net_1.2", "A.B-C_D", "n" * 200])
def test_valid_network_names_are_accepted(name):
    assert parse_network_config_list(minimal_list(name=name)).name == name


@pytest.mark.parametrize(
    "name", ["-net", ".net", "_net", "my net", "net/1", "../net", "net:1", "n\u00e9t", "net\t"]
)
def test_invalid_network_names_are_code_7(name):
    err = list_error(InvalidConfigError, minimal_list(name=name))
    assert err.code == 7
    assert err.details.startswith(f"name {name!r} must start with a letter or digit")


@pytest.mark.parametrize("name", [None, "", 5, ["net"]])
def test_missing_or_non_string_name_is_code_7(name):
    data = minimal_list(name=name)
    if name is None:
        del data["name"]
    err = list_error(InvalidConfigError, data)
    assert err.code == 7
    assert err.details == "'name' is missing"


def test_network_name_with_a_trailing_newline_is_code_7():
    with pytest.raises(InvalidConfigError):
        parse_network_config_list(minimal_list(name="net\n"))


# --- JSON errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"", b"{", b'{"name": "net",}', "not json", b"\xff\xfe{}", b'{"a": NaN'],
)
def test_undecodable_json_is_code_6(data):
    err = list_error(DecodingError, data)
    assert err.code == ErrorCode.DECODING_FAILURE == 6
    assert err.msg == "cannot decode network config list"


@pytest.mark.parametrize("data", [b"[]", b'"net"', b"null", b"42"])
def test_json_that_is_not_an_object_is_code_6(data):
    err = list_error(DecodingError, data)
    assert err.details == "top level is not a JSON object"


# --- parse_network_config (single .conf) ----------------------------------------------

CONF_TEXT = """{
  "cniVersion": "0.4.0",
  "name": "mynet",
  "type": "bridge",
  "bridge": "cni0",
  "isGateway": true,
  "ipam": {"type": "host-local", "subnet": "10.22.0.0/16"}
}"""


def test_single_config_is_wrapped_as_a_list_of_one():
    net = parse_network_config(CONF_TEXT)
    assert net.name == "mynet"
    assert net.cni_version == "0.4.0"
    assert len(net.plugins) == 1
    assert net.plugins[0].raw == json.loads(CONF_TEXT)
    assert net.plugins[0].type == "bridge"


def test_single_config_wrapper_has_name_version_and_the_plugin():
    net = parse_network_config(CONF_TEXT)
    assert net.raw == {"cniVersion": "0.4.0", "name": "mynet", "plugins": [json.loads(CONF_TEXT)]}
    assert json.loads(net.source_bytes) == net.raw


def test_single_config_carries_disable_check():
    conf = json.loads(CONF_TEXT) | {"disableCheck": "true"}
    assert parse_network_config(conf).disable_check is True


def test_single_config_keeps_its_source():
    source = Path("/etc/cni/net.d/10-mynet.conf")
    assert parse_network_config(CONF_TEXT, source).source == source


def test_single_config_requires_cni_version():
    conf = json.loads(CONF_TEXT)
    del conf["cniVersion"]
    with pytest.raises(IncompatibleVersionError) as err:
        parse_network_config(conf)
    assert err.value.code == 1


def test_single_config_requires_type():
    conf = json.loads(CONF_TEXT)
    del conf["type"]
    with pytest.raises(InvalidConfigError) as err:
        parse_network_config(conf)
    assert err.value.code == 7
    assert err.value.details == "plugins[0] has no 'type'"


@pytest.mark.parametrize("name", [None, "-x", "a b"])
def test_single_config_requires_a_valid_name(name):
    conf = json.loads(CONF_TEXT) | {"name": name}
    with pytest.raises(InvalidConfigError) as err:
        parse_network_config(conf, Path("/x/a.conf"))
    assert err.value.code == 7
    assert err.value.msg == "invalid network config '/x/a.conf'"


def test_single_config_bad_json_is_code_6():
    with pytest.raises(DecodingError) as err:
        parse_network_config(b"{\n", Path("/x/a.conf"))
    assert err.value.code == 6
    assert err.value.msg == "cannot decode network config '/x/a.conf'"


# --- parse_net_conf (a plugin's stdin) ------------------------------------------------

PREV_RESULT = {
    "cniVersion": "1.0.0",
    "interfaces": [{"name": "eth0", "sandbox": "/var/run/netns/blue"}],
    "ips": [{"address": "10.1.0.5/16", "gateway": "10.1.0.1", "interface": 0}],
    "dns": {},
}


def stdin_conf(**extra) -> dict:
    return {"cniVersion": "1.0.0", "name": "dbnet", "type": "tuning", **extra}


def net_conf_error(exc_type, data):
    with pytest.raises(exc_type) as err:
        parse_net_conf(data)
    return err.value


def test_net_conf_fields_are_read():
    conf = parse_net_conf(
        json.dumps(
            stdin_conf(
                ipam={"type": "host-local"},
                runtimeConfig={"mac": "c2:11:22:33:44:55"},
                sysctl={"a": "b"},
            )
        ).encode()
    )
    assert (conf.cni_version, conf.name, conf.type) == ("1.0.0", "dbnet", "tuning")
    assert conf.runtime_config == {"mac": "c2:11:22:33:44:55"}
    assert conf.ipam == {"type": "host-local"}
    assert conf.raw["sysctl"] == {"a": "b"}
    assert conf.prev_result is None
    assert conf.valid_attachments is None


def test_net_conf_defaults_for_optional_keys():
    conf = parse_net_conf(stdin_conf(ipam="host-local"))
    assert conf.runtime_config == {}
    assert conf.ipam is None


def test_net_conf_decodes_prev_result_as_a_result():
    conf = parse_net_conf(stdin_conf(prevResult=PREV_RESULT))
    assert isinstance(conf.prev_result, Result)
    assert conf.prev_result.cni_version == "1.0.0"
    assert conf.prev_result.ips[0].address == ipaddress.IPv4Interface("10.1.0.5/16")
    assert conf.prev_result.interfaces[0].sandbox == "/var/run/netns/blue"


def test_net_conf_reads_prev_result_at_the_config_version():
    prev = PREV_RESULT | {"cniVersion": "0.4.0"}
    conf = parse_net_conf(stdin_conf(prevResult=prev))
    assert conf.prev_result.cni_version == "1.0.0"


def test_net_conf_bad_prev_result_is_code_6():
    prev = PREV_RESULT | {"ips": [{"address": "10.1.0.5"}]}
    err = net_conf_error(DecodingError, stdin_conf(prevResult=prev))
    assert err.code == 6
    assert err.details == "ips[0].address '10.1.0.5' has no prefix length"


@pytest.mark.parametrize("key", VALID_ATTACHMENTS_KEYS)
def test_gc_valid_attachments_are_read_under_both_keys(key):
    attachments = [
        {"containerID": "c1", "ifname": "eth0"},
        {"containerID": "c2", "ifname": "net1"},
    ]
    conf = parse_net_conf(stdin_conf(**{key: attachments}))
    assert conf.valid_attachments == (Attachment("c1", "eth0"), Attachment("c2", "net1"))


def test_gc_attachment_keys_are_the_spec_one_and_the_legacy_one():
    assert VALID_ATTACHMENTS_KEYS == ("cni.dev/valid-attachments", "cni.dev/attachments")


def test_gc_valid_attachments_key_wins_over_the_legacy_key():
    conf = parse_net_conf(
        stdin_conf(
            **{
                "cni.dev/attachments": [{"containerID": "old", "ifname": "eth0"}],
                "cni.dev/valid-attachments": [{"containerID": "new", "ifname": "eth0"}],
            }
        )
    )
    assert conf.valid_attachments == (Attachment("new", "eth0"),)


def test_gc_empty_attachment_list_is_empty_not_absent():
    conf = parse_net_conf(stdin_conf(**{"cni.dev/valid-attachments": []}))
    assert conf.valid_attachments == ()


@pytest.mark.parametrize(
    ("value", "details"),
    [
        ({"containerID": "c1"}, "'cni.dev/valid-attachments' must be a list"),
        (["c1"], "cni.dev/valid-attachments[0] needs string containerID and ifname"),
        (
            [{"containerID": "c1"}],
            "cni.dev/valid-attachments[0] needs string containerID and ifname",
        ),
        (
            [{"containerID": "c1", "ifname": "eth0"}, {"containerId": "c2", "ifname": "eth0"}],
            "cni.dev/valid-attachments[1] needs string containerID and ifname",
        ),
        (
            [{"containerID": 1, "ifname": "eth0"}],
            "cni.dev/valid-attachments[0] needs string containerID and ifname",
        ),
    ],
)
def test_malformed_gc_attachments_are_code_7(value, details):
    err = net_conf_error(InvalidConfigError, stdin_conf(**{"cni.dev/valid-attachments": value}))
    assert err.code == 7
    assert err.details == details


def test_parse_attachments_names_the_given_key():
    with pytest.raises(InvalidConfigError) as err:
        parse_attachments([None], "cni.dev/attachments")
    assert err.value.details == "cni.dev/attachments[0] needs string containerID and ifname"


def test_net_conf_without_cni_version_is_code_1():
    data = stdin_conf()
    del data["cniVersion"]
    err = net_conf_error(IncompatibleVersionError, data)
    assert err.code == 1
    assert err.msg == "network config has no cniVersion"


@pytest.mark.parametrize("version", [1, "1.0", "latest"])
def test_net_conf_with_malformed_cni_version_is_code_1(version):
    assert net_conf_error(IncompatibleVersionError, stdin_conf(cniVersion=version)).code == 1


@pytest.mark.parametrize("name", ["", "-net", "a/b"])
def test_net_conf_with_invalid_name_is_code_7(name):
    err = net_conf_error(InvalidConfigError, stdin_conf(name=name))
    assert err.code == 7
    assert err.msg == "invalid network config"


def test_net_conf_type_must_be_a_string():
    err = net_conf_error(InvalidConfigError, stdin_conf(type=["bridge"]))
    assert err.details == "'type' must be a string"


def test_net_conf_runtime_config_must_be_an_object():
    err = net_conf_error(InvalidConfigError, stdin_conf(runtimeConfig=["mac"]))
    assert err.details == "'runtimeConfig' must be an object"


@pytest.mark.parametrize("data", [b"", b"{", b"[]", "null"])
def test_net_conf_bad_json_is_code_6(data):
    err = net_conf_error(DecodingError, data)
    assert err.code == 6
    assert err.msg == "cannot decode network config"


@pytest.mark.parametrize("length", [256, 300, 5000])
def test_a_network_name_longer_than_a_directory_name_is_code_7(length: int) -> None:
    conf = {"cniVersion": "1.0.0", "name": "n" * length, "type": "bridge"}
    for parse in (parse_net_conf, parse_network_config):
        with pytest.raises(InvalidConfigError, match="names a directory"):
            parse(json.dumps(conf))
    assert parse_net_conf(json.dumps({**conf, "name": "n" * 255})).name == "n" * 255
