"""Config fields that name a link follow the kernel's rules: a bad name is code 7 naming
the field at config time, not a netlink failure (or an internal error) half-way through ADD."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from multinic.cni import skel
from multinic.cni.args import ifname_problem
from multinic.cni.errors import InvalidConfigError
from multinic.plugins import bridge, host_device, ipvlan, macvlan, vlan
from multinic.plugins.fields import Fields

ENV = {"CNI_CONTAINERID": "c", "CNI_NETNS": "/x", "CNI_IFNAME": "net1", "CNI_PATH": "/x"}

#: (plugin module, its type, the field naming a link, other fields it needs)
LINK_FIELDS = [
    (bridge, "multinic-bridge", "bridge", {}),
    (macvlan, "multinic-macvlan", "master", {}),
    (ipvlan, "multinic-ipvlan", "master", {}),
    (vlan, "multinic-vlan", "master", {"vlanId": 7}),
    (host_device, "multinic-host-device", "device", {}),
]

BAD_NAMES = [
    "a" * 16,
    "\u20ac" * 6,  # 18 bytes
    ".",
    "..",
    "eth0:1",
    "a/b",
    "eth 0",
    "eth\t0",
    "eth\u00e0",  # 0xa0 byte: a space to the kernel
    "eth\x1b",
    "eth\udcff0",  # a byte that is not UTF-8
]


def load(module: Any, plugin_type: str, **fields: Any) -> Any:
    conf = {"cniVersion": "1.0.0", "name": "n", "type": plugin_type, **fields}
    # json.dumps writes a surrogate as a \\udcff escape; the plugin decodes it back.
    stdin = json.dumps(conf).encode()
    request = skel.parse_request("ADD", ENV, stdin, ("1.0.0",))
    return module.load_conf(request)


@pytest.mark.parametrize(("module", "plugin_type", "field", "extra"), LINK_FIELDS)
@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_bad_link_name_is_code_7_naming_the_field(
    module: Any, plugin_type: str, field: str, extra: dict[str, Any], name: str
) -> None:
    with pytest.raises(InvalidConfigError) as err:
        load(module, plugin_type, **{field: name}, **extra)
    assert err.value.code == 7
    assert f"field {field!r} is not a valid interface name" in str(err.value)


@pytest.mark.parametrize(("module", "plugin_type", "field", "extra"), LINK_FIELDS)
@pytest.mark.parametrize("name", ["eth0", "br-x.100", "a" * 15, "\u00e9" * 7])
def test_a_good_link_name_is_taken(
    module: Any, plugin_type: str, field: str, extra: dict[str, Any], name: str
) -> None:
    conf = load(module, plugin_type, **{field: name}, **extra)
    named = conf.lower.master if hasattr(conf, "lower") else getattr(conf, field)
    assert named == name


@given(st.text(st.characters(codec="utf-8") | st.sampled_from("/: .\xa0\udcff"), max_size=20))
def test_link_name_accepts_exactly_what_ifname_problem_accepts(name: str) -> None:
    fields = Fields({"master": name}, "t")
    if name and ifname_problem(name):
        with pytest.raises(InvalidConfigError):
            fields.link_name("master")
    elif "\0" not in name:
        assert fields.link_name("master", "dflt") == (name or "dflt")
