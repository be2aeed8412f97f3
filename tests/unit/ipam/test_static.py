"""multinic-static called in-process: the reference static plugin's fields and precedence."""

from __future__ import annotations

import json
from typing import Any

import pytest

from multinic.cni import skel
from multinic.cni.errors import ErrorCode
from multinic.plugins.static import PLUGIN


def conf(ipam: dict[str, Any], version: str = "1.1.0", **extra: Any) -> dict[str, Any]:
    return {
        "cniVersion": version,
        "name": "net1",
        "type": "macvlan",
        "ipam": {"type": "multinic-static", **ipam},
        **extra,
    }


def call(command: str, config: dict[str, Any], args: str = "") -> tuple[int, Any]:
    env = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": "c1",
        "CNI_NETNS": "/var/run/netns/x",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/usr/lib/cni",
        "CNI_ARGS": args,
    }
    status, out = skel.run(PLUGIN, env, json.dumps(config).encode())
    return status, json.loads(out) if out else None


ADDRS = {"addresses": [{"address": "10.0.0.5/24", "gateway": "10.0.0.1"}]}


def test_addresses_routes_and_dns() -> None:
    status, result = call(
        "ADD",
        conf(
            {
                **ADDRS,
                "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}],
                "dns": {"nameservers": ["1.1.1.1"], "domain": "x.example", "search": ["x.example"]},
            }
        ),
    )
    assert status == 0
    assert result == {
        "cniVersion": "1.1.0",
        "ips": [{"address": "10.0.0.5/24", "gateway": "10.0.0.1"}],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}],
        "dns": {"nameservers": ["1.1.1.1"], "domain": "x.example", "search": ["x.example"]},
    }


def test_cni_args_add_addresses_and_set_gateways() -> None:
    status, result = call("ADD", conf(ADDRS), args="IP=10.0.1.5/24,fd00::5/64;GATEWAY=10.0.1.1")
    assert status == 0
    assert result["ips"] == [
        {"address": "10.0.0.5/24", "gateway": "10.0.0.1"},
        {"address": "10.0.1.5/24", "gateway": "10.0.1.1"},
        {"address": "fd00::5/64"},
    ]


def test_args_and_the_ips_capability_replace_the_addresses() -> None:
    in_args = conf(ADDRS, args={"cni": {"ips": ["10.0.2.5/24"]}})
    assert call("ADD", in_args, args="IP=10.0.1.5/24")[1]["ips"] == [{"address": "10.0.2.5/24"}]
    both = conf(
        ADDRS, args={"cni": {"ips": ["10.0.2.5/24"]}}, runtimeConfig={"ips": ["10.0.3.5/24"]}
    )
    assert call("ADD", both)[1]["ips"] == [{"address": "10.0.3.5/24"}]


def test_no_addresses_is_an_empty_result() -> None:
    assert call("ADD", conf({})) == (0, {"cniVersion": "1.1.0"})


def test_old_versions_tag_addresses() -> None:
    status, result = call("ADD", conf(ADDRS, version="0.3.1"))
    assert status == 0
    assert result["ips"] == [{"version": "4", "address": "10.0.0.5/24", "gateway": "10.0.0.1"}]


@pytest.mark.parametrize(
    ("ipam", "extra", "args", "code", "words"),
    [
        ({"addresses": [{"address": "10.0.0.5"}]}, {}, "", 7, "must be in CIDR notation"),
        ({"addresses": "10.0.0.5/24"}, {}, "", 7, "ipam.addresses must be a list"),
        ({"addresses": [{"address": "10.0.0.5/24", "gateway": "fd00::1"}]}, {}, "", 7, "gateway"),
        ({}, {"runtimeConfig": {"ips": ["10.0.3.5"]}}, "", 7, "runtimeConfig.ips[0]"),
        ({}, {}, "IP=10.0.0.5", ErrorCode.INVALID_ENVIRONMENT, "CNI_ARGS IP"),
        ({}, {}, "GATEWAY=x", ErrorCode.INVALID_ENVIRONMENT, "CNI_ARGS GATEWAY"),
        ({"dns": {"nameservers": "1.1.1.1"}}, {}, "", 7, "ipam.dns.nameservers"),
        ({"routes": [{"dst": "0.0.0.0/0", "gw": "fd00::1"}]}, {}, "", 7, "ipam.routes[0].gw"),
    ],
)
def test_bad_config_names_the_field(
    ipam: dict[str, Any], extra: dict[str, Any], args: str, code: int, words: str
) -> None:
    status, err = call("ADD", conf(ipam, **extra), args=args)
    assert status == 1 and err["code"] == code
    assert words in err["msg"] + " " + err.get("details", "")


def test_check_needs_a_prev_result_holding_the_addresses() -> None:
    status, err = call("CHECK", conf(ADDRS))
    assert status == 1 and "prevResult" in err["msg"]
    good = {"cniVersion": "1.1.0", "ips": [{"address": "10.0.0.5/24"}]}
    assert call("CHECK", conf(ADDRS, prevResult=good)) == (0, None)
    bad = {"cniVersion": "1.1.0", "ips": [{"address": "10.0.0.6/24"}]}
    status, err = call("CHECK", conf(ADDRS, prevResult=bad))
    assert status == 1 and err["details"] == "10.0.0.5/24"


def test_del_gc_and_status_have_nothing_to_do() -> None:
    assert call("DEL", conf(ADDRS)) == (0, None)
    assert call("GC", conf(ADDRS, **{"cni.dev/valid-attachments": []})) == (0, None)
    assert call("STATUS", conf(ADDRS)) == (0, None)
    status, err = call("DEL", {"cniVersion": "1.1.0", "name": "n", "type": "x"})
    assert status == 1 and err["code"] == ErrorCode.INVALID_NETWORK_CONFIG
