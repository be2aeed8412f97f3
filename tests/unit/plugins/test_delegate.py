"""IPAM delegation from a plugin: the spec's environment and config, real executables."""

from __future__ import annotations

import json
import stat
import sys
from ipaddress import ip_interface
from pathlib import Path

import pytest

from multinic.cni.errors import ErrorCode, InvalidConfigError, PluginError
from multinic.cni.skel import Request, parse_request
from multinic.plugins.delegate import ipam_add, ipam_check, ipam_del

# An IPAM plugin that logs what it was given and answers from its config.
FAKE_IPAM = """\
#!{python}
import json, os, sys
conf = json.loads(sys.stdin.read())
env = {{k: v for k, v in os.environ.items() if k.startswith("CNI_")}}
with open({log!r}, "a") as log:
    log.write(json.dumps({{"env": env, "conf": conf}}) + "\\n")
fail = conf["ipam"].get("fail")
if fail:
    print(json.dumps({{"cniVersion": conf["cniVersion"], "code": fail, "msg": "no addresses"}}))
    sys.exit(1)
if os.environ["CNI_COMMAND"] == "ADD":
    print(json.dumps({{"cniVersion": conf["cniVersion"],
                      "ips": [{{"address": "10.1.2.3/24", "gateway": "10.1.2.1"}}]}}))
"""


@pytest.fixture
def cni_path(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    plugin = bin_dir / "fake-ipam"
    plugin.write_text(FAKE_IPAM.format(python=sys.executable, log=str(tmp_path / "log")))
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)
    return bin_dir


def request(cni_path: Path, command: str = "ADD", **ipam: object) -> Request:
    conf = {"cniVersion": "1.0.0", "name": "net1", "type": "bridge", "ipam": ipam}
    env = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": "c1",
        "CNI_NETNS": "/var/run/netns/x",
        "CNI_IFNAME": "eth0",
        "CNI_ARGS": "K8S_POD_NAME=p;IP=10.1.2.3",
        "CNI_PATH": f"/nonexistent:{cni_path}",
    }
    return parse_request(command, env, json.dumps(conf).encode(), ("1.0.0",))


def calls(cni_path: Path) -> list[dict[str, dict[str, str]]]:
    log = cni_path.parent / "log"
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_add_returns_the_ipam_result_as_values(cni_path: Path) -> None:
    result = ipam_add(request(cni_path, type="fake-ipam"))
    assert [ip.address for ip in result.ips] == [ip_interface("10.1.2.3/24")]


def test_delegate_sees_the_same_environment_and_config(cni_path: Path) -> None:
    req = request(cni_path, type="fake-ipam")
    ipam_add(req)
    ipam_check(req._replace(command="CHECK"))
    ipam_del(req._replace(command="DEL"))
    logged = calls(cni_path)
    assert [c["env"]["CNI_COMMAND"] for c in logged] == ["ADD", "CHECK", "DEL"]
    for call in logged:
        assert call["env"]["CNI_CONTAINERID"] == "c1"
        assert call["env"]["CNI_NETNS"] == "/var/run/netns/x"
        assert call["env"]["CNI_IFNAME"] == "eth0"
        assert call["env"]["CNI_ARGS"] == "K8S_POD_NAME=p;IP=10.1.2.3"
        assert call["env"]["CNI_PATH"] == f"/nonexistent:{cni_path}"
        assert call["conf"] == json.loads(req.stdin)


def test_the_delegates_error_object_comes_back_with_its_code(cni_path: Path) -> None:
    with pytest.raises(PluginError) as caught:
        ipam_add(request(cni_path, type="fake-ipam", fail=ErrorCode.TRY_AGAIN_LATER))
    assert caught.value.code == ErrorCode.TRY_AGAIN_LATER
    assert caught.value.plugin == "fake-ipam"
    assert "no addresses" in str(caught.value)


def test_a_missing_ipam_plugin_is_a_config_error_naming_the_search_path(cni_path: Path) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        ipam_add(request(cni_path, type="absent-ipam"))
    assert "absent-ipam" in caught.value.msg
    assert str(cni_path) in caught.value.details


def test_a_config_without_ipam_type_is_a_config_error(cni_path: Path) -> None:
    with pytest.raises(InvalidConfigError, match="needs an ipam section"):
        ipam_add(request(cni_path))
