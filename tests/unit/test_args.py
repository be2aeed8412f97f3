"""Tests for multinic.cni.args: CNI_ARGS, container ids and interface names."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from multinic.cni.args import (
    MAX_IFNAME_BYTES,
    format_cni_args,
    ifname_problem,
    parse_cni_args,
    validate_container_id,
    validate_ifname,
)
from multinic.cni.errors import ErrorCode, InvalidEnvironmentError

# --- CNI_ARGS -------------------------------------------------------------------------


def test_empty_cni_args_give_no_pairs():
    assert parse_cni_args("") == ()


def test_cni_args_are_split_into_pairs_in_order():
    text = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0"
    assert parse_cni_args(text) == (
        ("IgnoreUnknown", "1"),
        ("K8S_POD_NAMESPACE", "default"),
        ("K8S_POD_NAME", "web-0"),
    )


def test_cni_args_keep_duplicate_keys_in_order():
    assert parse_cni_args("A=1;A=2") == (("A", "1"), ("A", "2"))


def test_cni_args_value_may_be_empty():
    assert parse_cni_args("K=") == (("K", ""),)


def test_cni_args_value_may_contain_equals():
    assert parse_cni_args("MAC=x;EXPR=a=b=c") == (("MAC", "x"), ("EXPR", "a=b=c"))


def test_cni_args_keep_whitespace():
    assert parse_cni_args(" K = v ") == ((" K ", " v "),)


@pytest.mark.parametrize(
    ("text", "bad_item"),
    [
        ("novalue", "novalue"),
        ("=v", "=v"),
        ("A=1;", ""),
        (";A=1", ""),
        ("A=1;;B=2", ""),
        (";", ""),
        ("A=1;B", "B"),
    ],
)
def test_malformed_cni_args_are_code_4(text, bad_item):
    with pytest.raises(InvalidEnvironmentError) as err:
        parse_cni_args(text)
    assert err.value.code == ErrorCode.INVALID_ENVIRONMENT == 4
    assert err.value.msg == "invalid CNI_ARGS"
    assert err.value.details == f"{bad_item!r} is not KEY=VALUE"


def test_format_cni_args_joins_pairs():
    assert format_cni_args([("IgnoreUnknown", "1"), ("K8S_POD_NAME", "web-0")]) == (
        "IgnoreUnknown=1;K8S_POD_NAME=web-0"
    )


def test_format_cni_args_of_nothing_is_empty():
    assert format_cni_args([]) == ""


def test_format_cni_args_accepts_a_generator():
    assert format_cni_args((k, v) for k, v in [("A", "1")]) == "A=1"


_keys = st.text(st.characters(blacklist_characters="=;", blacklist_categories=("Cs",)), min_size=1)
_values = st.text(st.characters(blacklist_characters=";", blacklist_categories=("Cs",)))
_pairs = st.lists(st.tuples(_keys, _values), max_size=6)


@given(_pairs)
def test_property_format_then_parse_is_identity(pairs):
    assert parse_cni_args(format_cni_args(pairs)) == tuple(pairs)


@given(_pairs)
def test_property_parse_then_format_is_identity(pairs):
    text = format_cni_args(pairs)
    assert format_cni_args(parse_cni_args(text)) == text


# --- container ids --------------------------------------------------------------------


@pytest.mark.parametrize(
    "container_id",
    [
        "a",
        "0",
        "cnitool-77383ca0a0715733ca6f",
        "3f2a9c1e8b7d6c5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a",
        "pod_1.ctr-2",
    ],
)
def test_valid_container_ids_are_returned(container_id):
    assert validate_container_id(container_id) == container_id


def test_empty_container_id_is_code_4():
    with pytest.raises(InvalidEnvironmentError) as err:
        validate_container_id("")
    assert err.value.code == 4
    assert err.value.msg == "missing containerID"


@pytest.mark.parametrize(
    "container_id",
    ["-abc", ".abc", "_abc", "../etc", "a/b", "a b", "a:b", "abc\t", "\u00e9t\u00e9", "a\x00b"],
)
def test_container_id_with_invalid_characters_is_code_4(container_id):
    with pytest.raises(InvalidEnvironmentError) as err:
        validate_container_id(container_id)
    assert err.value.code == 4
    assert err.value.msg == "invalid characters in containerID"
    assert err.value.details == container_id


def test_container_id_with_a_trailing_newline_is_code_4():
    with pytest.raises(InvalidEnvironmentError):
        validate_container_id("abc\n")


# --- interface names ------------------------------------------------------------------


def test_max_ifname_is_15_bytes():
    assert MAX_IFNAME_BYTES == 15


@pytest.mark.parametrize(
    "ifname",
    [
        "eth0",
        "a",
        "net1.100",
        "a" * 15,
        "...",
        ".a",
        "veth-3243_x",
        "\u00e9" * 7,  # 14 bytes in UTF-8
        "\u00e9" * 7 + "x",  # 15 bytes
    ],
)
def test_valid_interface_names_are_returned(ifname):
    assert validate_ifname(ifname) == ifname


def test_empty_interface_name_is_code_4():
    with pytest.raises(InvalidEnvironmentError) as err:
        validate_ifname("")
    assert err.value.code == 4
    assert err.value.msg == "missing interface name"


@pytest.mark.parametrize(
    "ifname",
    [
        "a" * 16,
        "a" * 100,
        "\u00e9" * 8,  # 8 characters, 16 bytes
        "\u00e9" * 7 + "xy",  # 9 characters, 16 bytes
        "\u20ac" * 6,  # 6 characters, 18 bytes
    ],
)
def test_interface_name_over_15_bytes_is_code_4(ifname):
    with pytest.raises(InvalidEnvironmentError) as err:
        validate_ifname(ifname)
    assert err.value.code == 4
    assert err.value.msg == "interface name is too long"


@pytest.mark.parametrize("ifname", [".", ".."])
def test_dot_and_dot_dot_are_code_4(ifname):
    with pytest.raises(InvalidEnvironmentError) as err:
        validate_ifname(ifname)
    assert err.value.code == 4
    assert err.value.msg == "interface name is . or .."


@pytest.mark.parametrize(
    "ifname",
    [
        "a/b",
        "/",
        "../x",
        "eth0:1",
        ":",
        "eth 0",
        " eth0",
        "eth0\t",
        "eth0\n",
        "eth\r0",
        "eth\x0b0",
        "eth\u00a00",  # no-break space
        "eth\u20030",  # em space
        "eth\x000",
        "eth\x7f0",
    ],
)
def test_slash_colon_whitespace_and_control_characters_are_code_4(ifname):
    with pytest.raises(InvalidEnvironmentError) as err:
        validate_ifname(ifname)
    assert err.value.code == 4
    assert err.value.msg == "invalid character in interface name"
    assert err.value.details == repr(ifname)


def test_a_name_that_is_not_utf8_is_code_4_not_an_internal_error():
    for raw in (b"\xff", b"eth\xff0", b"\xc3", b"\xed\xa0\x80"):
        ifname = raw.decode("utf-8", "surrogateescape")
        with pytest.raises(InvalidEnvironmentError) as err:
            validate_ifname(ifname)
        assert err.value.code == 4
        assert err.value.msg == "interface name is not UTF-8"


def test_the_kernels_isspace_includes_byte_0xa0():
    # "à" is C3 A0 in UTF-8: dev_valid_name() sees the 0xa0 byte as a space.
    with pytest.raises(InvalidEnvironmentError):
        validate_ifname("eth\u00e0")
    assert ifname_problem("eth\u00e9") == ""  # C3 A9 is fine


IFNAME_CHARS = st.characters(codec="utf-8") | st.sampled_from("/: \t.\xa0\udcff")


@given(st.text(IFNAME_CHARS, min_size=1, max_size=20))
def test_ifname_problem_follows_dev_valid_name(name):
    problem = ifname_problem(name)
    try:
        raw = name.encode()
    except UnicodeEncodeError:
        assert problem == "interface name is not UTF-8"
        return
    kernel_ok = (
        0 < len(raw) <= 15
        and name not in (".", "..")
        and not any(b in b"/: \t\n\v\f\r\xa0" for b in raw)
    )
    if not kernel_ok:
        assert problem  # the kernel refuses it: so do we, with a reason
    elif name.isprintable():
        assert problem == ""  # the kernel takes it and it prints: so do we
    else:
        assert problem == "invalid character in interface name"
