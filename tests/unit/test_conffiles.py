"""Tests for multinic.cni.conffiles: finding a network in a config dir as libcni does."""

from __future__ import annotations

import json

import pytest

from multinic.cni.conffiles import (
    DEFAULT_CONFIG_DIR,
    LIST_EXTENSIONS,
    SINGLE_EXTENSIONS,
    config_files,
    load_all,
    load_file,
    load_network,
)
from multinic.cni.errors import (
    ConfigNotFoundError,
    DecodingError,
    ErrorCode,
    InvalidConfigError,
)


def conflist(name: str, *types: str, **extra) -> dict:
    return {
        "cniVersion": "1.0.0",
        "name": name,
        "plugins": [{"type": t} for t in types or ("bridge",)],
        **extra,
    }


def conf(name: str, plugin_type: str = "bridge", **extra) -> dict:
    return {"cniVersion": "1.0.0", "name": name, "type": plugin_type, **extra}


def write(path, content) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content)
    else:
        path.write_text(json.dumps(content, indent=2))


def plugin_types(net) -> list[str]:
    return [p.type for p in net.plugins]


# --- constants and config_files ------------------------------------------------------


def test_defaults_match_libcni():
    assert DEFAULT_CONFIG_DIR.as_posix() == "/etc/cni/net.d"
    assert LIST_EXTENSIONS == (".conflist",)
    assert SINGLE_EXTENSIONS == (".conf", ".json")


def test_config_files_lists_matching_regular_files_by_name(tmp_path):
    for name in ["b.conf", "a.json", "c.conflist", "d.txt", "e.conf.bak", "f.CONF", "noext"]:
        write(tmp_path / name, "{}")
    (tmp_path / "dir.conf").mkdir()
    assert config_files(tmp_path, [".conf", ".json"]) == [tmp_path / "a.json", tmp_path / "b.conf"]
    assert config_files(tmp_path, LIST_EXTENSIONS) == [tmp_path / "c.conflist"]


def test_config_files_of_a_missing_dir_is_empty(tmp_path):
    assert config_files(tmp_path / "missing", [".conf"]) == []


# --- load_network: order --------------------------------------------------------------


def test_conflist_wins_over_conf_with_the_same_name(tmp_path):
    write(tmp_path / "00-net.conf", conf("net", "from-conf"))
    write(tmp_path / "99-net.conflist", conflist("net", "from-conflist"))
    net = load_network(tmp_path, "net")
    assert plugin_types(net) == ["from-conflist"]
    assert net.source == tmp_path / "99-net.conflist"


def test_conflists_are_tried_in_name_order(tmp_path):
    write(tmp_path / "20-b.conflist", conflist("net", "second"))
    write(tmp_path / "10-a.conflist", conflist("net", "first"))
    assert plugin_types(load_network(tmp_path, "net")) == ["first"]


def test_conf_and_json_files_share_one_name_order(tmp_path):
    write(tmp_path / "20-net.conf", conf("net", "from-conf"))
    write(tmp_path / "10-net.json", conf("net", "from-json"))
    assert plugin_types(load_network(tmp_path, "net")) == ["from-json"]


def test_conf_is_found_when_no_conflist_matches(tmp_path):
    write(tmp_path / "10-other.conflist", conflist("other"))
    write(tmp_path / "20-net.conf", conf("net", "macvlan", master="eth0"))
    net = load_network(tmp_path, "net")
    assert net.name == "net"
    assert [p.raw for p in net.plugins] == [conf("net", "macvlan", master="eth0")]
    assert net.source == tmp_path / "20-net.conf"


def test_the_name_inside_the_file_counts_not_the_file_name(tmp_path):
    write(tmp_path / "net.conflist", conflist("other"))
    write(tmp_path / "zz.conflist", conflist("net", "right"))
    assert plugin_types(load_network(tmp_path, "net")) == ["right"]


def test_loaded_conflist_keeps_the_file_bytes(tmp_path):
    text = '{ "cniVersion": "1.0.0",\n  "name": "net", "plugins": [ {"type": "bridge"} ] }\n'
    write(tmp_path / "net.conflist", text)
    assert load_network(tmp_path, "net").source_bytes == text.encode()


def test_load_all_lists_conflists_first_then_single_configs(tmp_path):
    write(tmp_path / "10-d.conf", conf("d"))
    write(tmp_path / "20-c.conflist", conflist("c"))
    write(tmp_path / "30-b.json", conf("b"))
    write(tmp_path / "40-a.conflist", conflist("a"))
    networks, problems = load_all(tmp_path)
    assert [n.name for n in networks] == ["c", "a", "d", "b"]
    assert problems == []


# --- plugins from <dir>/<name>/ -------------------------------------------------------


def test_plugins_from_the_network_directory_are_appended_in_name_order(tmp_path):
    write(tmp_path / "10-net.conflist", conflist("net", "bridge"))
    write(tmp_path / "net" / "20-tuning.conf", {"type": "tuning"})
    write(tmp_path / "net" / "10-portmap.conf", {"type": "portmap"})
    assert plugin_types(load_network(tmp_path, "net")) == ["bridge", "portmap", "tuning"]


def test_only_conf_files_are_read_from_the_network_directory(tmp_path):
    write(tmp_path / "10-net.conflist", conflist("net", "bridge"))
    write(tmp_path / "net" / "a.json", {"type": "json-plugin"})
    write(tmp_path / "net" / "b.conflist", {"type": "conflist-plugin"})
    write(tmp_path / "net" / "c.conf", {"type": "tuning"})
    assert plugin_types(load_network(tmp_path, "net")) == ["bridge", "tuning"]


def test_network_directory_plugins_alone_make_a_list(tmp_path):
    data = conflist("net")
    del data["plugins"]
    write(tmp_path / "10-net.conflist", data)
    write(tmp_path / "net" / "bridge.conf", {"type": "bridge"})
    assert plugin_types(load_network(tmp_path, "net")) == ["bridge"]


@pytest.mark.parametrize("flag", [True, "true", "TRUE"])
def test_load_only_inlined_plugins_ignores_the_network_directory(tmp_path, flag):
    write(tmp_path / "10-net.conflist", conflist("net", "bridge", loadOnlyInlinedPlugins=flag))
    write(tmp_path / "net" / "tuning.conf", {"type": "tuning"})
    net = load_network(tmp_path, "net")
    assert plugin_types(net) == ["bridge"]
    assert net.load_only_inlined_plugins is True


@pytest.mark.parametrize("flag", [False, "false"])
def test_load_only_inlined_plugins_false_reads_the_network_directory(tmp_path, flag):
    write(tmp_path / "10-net.conflist", conflist("net", "bridge", loadOnlyInlinedPlugins=flag))
    write(tmp_path / "net" / "tuning.conf", {"type": "tuning"})
    assert plugin_types(load_network(tmp_path, "net")) == ["bridge", "tuning"]


def test_single_conf_does_not_read_the_network_directory(tmp_path):
    write(tmp_path / "10-net.conf", conf("net", "bridge"))
    write(tmp_path / "net" / "tuning.conf", {"type": "tuning"})
    assert plugin_types(load_network(tmp_path, "net")) == ["bridge"]


def test_network_directory_of_another_network_is_not_read(tmp_path):
    write(tmp_path / "10-net.conflist", conflist("net", "bridge"))
    write(tmp_path / "other" / "tuning.conf", {"type": "tuning"})
    assert plugin_types(load_network(tmp_path, "net")) == ["bridge"]


def test_source_bytes_exclude_directory_plugins(tmp_path):
    write(tmp_path / "10-net.conflist", conflist("net", "bridge"))
    write(tmp_path / "net" / "tuning.conf", {"type": "tuning"})
    net = load_network(tmp_path, "net")
    assert net.source_bytes == (tmp_path / "10-net.conflist").read_bytes()


def test_broken_network_directory_plugin_fails_that_file(tmp_path):
    path = tmp_path / "10-net.conflist"
    write(path, conflist("net", "bridge"))
    write(tmp_path / "net" / "bad.conf", "{")
    with pytest.raises(DecodingError) as err:
        load_file(path)
    assert err.value.code == 6
    assert str(tmp_path / "net" / "bad.conf") in err.value.msg


def test_network_directory_plugin_without_type_is_code_7(tmp_path):
    path = tmp_path / "10-net.conflist"
    write(path, conflist("net", "bridge"))
    write(tmp_path / "net" / "notype.conf", {"cfg": 1})
    with pytest.raises(InvalidConfigError) as err:
        load_file(path)
    assert err.value.details == "plugins[1] has no 'type'"


def test_invalid_list_name_is_rejected_before_any_plugin_directory_is_read(tmp_path):
    confdir = tmp_path / "net.d"
    path = confdir / "10-evil.conflist"
    write(path, conflist("../outside", "bridge"))
    write(tmp_path / "outside" / "broken.conf", "{ this file must never be read")
    with pytest.raises(InvalidConfigError) as err:
        load_file(path)
    assert err.value.code == 7
    assert "'../outside'" in err.value.details


# --- broken files and not-found errors -----------------------------------------------


def test_broken_unrelated_file_does_not_hide_a_good_network(tmp_path):
    write(tmp_path / "00-broken.conflist", "{ not json")
    write(tmp_path / "01-notype.conflist", {"cniVersion": "1.0.0", "name": "x", "plugins": [{}]})
    write(tmp_path / "10-net.conflist", conflist("net", "bridge"))
    assert plugin_types(load_network(tmp_path, "net")) == ["bridge"]


def test_load_all_reports_broken_files(tmp_path):
    write(tmp_path / "00-broken.conflist", "{ not json")
    write(tmp_path / "05-noversion.conf", {"name": "nov", "type": "bridge"})
    write(tmp_path / "10-net.conflist", conflist("net"))
    networks, problems = load_all(tmp_path)
    assert [n.name for n in networks] == ["net"]
    assert [type(p).__name__ for p in problems] == ["DecodingError", "IncompatibleVersionError"]
    assert str(tmp_path / "00-broken.conflist") in problems[0].msg


def test_not_found_error_is_code_7_and_lists_the_networks(tmp_path):
    write(tmp_path / "10-b.conflist", conflist("b"))
    write(tmp_path / "20-a.conf", conf("a"))
    write(tmp_path / "30-a.conflist", conflist("a"))
    with pytest.raises(ConfigNotFoundError) as err:
        load_network(tmp_path, "missing")
    assert isinstance(err.value, InvalidConfigError)
    assert err.value.code == ErrorCode.INVALID_NETWORK_CONFIG == 7
    assert err.value.msg == f"no net configuration with name 'missing' in {tmp_path}"
    assert err.value.details == "networks found: ['a', 'b']"


def test_not_found_error_mentions_broken_files(tmp_path):
    write(tmp_path / "00-broken.conflist", "{ not json")
    write(tmp_path / "10-net.conflist", conflist("net"))
    with pytest.raises(ConfigNotFoundError) as err:
        load_network(tmp_path, "other")
    details = err.value.details
    assert details.startswith("networks found: ['net']; files that failed to parse: ")
    assert f"cannot decode network config list '{tmp_path / '00-broken.conflist'}'" in details


def test_not_found_error_when_only_broken_files_exist(tmp_path):
    write(tmp_path / "10-net.conf", "[1, 2]")
    with pytest.raises(ConfigNotFoundError) as err:
        load_network(tmp_path, "net")
    assert err.value.details.startswith(
        "no network configurations found; files that failed to parse: "
    )
    assert "top level is not a JSON object" in err.value.details


def test_missing_config_dir_is_not_found(tmp_path):
    missing = tmp_path / "net.d"
    with pytest.raises(ConfigNotFoundError) as err:
        load_network(missing, "net")
    assert err.value.code == 7
    assert err.value.msg == f"no net configuration with name 'net' in {missing}"
    assert err.value.details == "no network configurations found"


def test_empty_config_dir_is_not_found(tmp_path):
    write(tmp_path / "README", "not a config")
    with pytest.raises(ConfigNotFoundError) as err:
        load_network(tmp_path, "net")
    assert err.value.details == "no network configurations found"
