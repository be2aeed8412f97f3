"""The netlink attribute/message codec, without a kernel."""

from __future__ import annotations

import errno
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from multinic.dataplane import DataplaneError
from multinic.dataplane import netlink as nl
from multinic.dataplane.links import Link, decode_link, mac_bytes
from multinic.dataplane.routes import decode_route

types = st.integers(min_value=0, max_value=nl.NLA_TYPE_MASK)
payloads = st.binary(max_size=64)


@given(st.lists(st.tuples(types, payloads), max_size=12))
def test_attributes_round_trip(pairs: list[tuple[int, bytes]]) -> None:
    encoded = b"".join(nl.attr(t, p) for t, p in pairs)
    assert len(encoded) % 4 == 0
    assert list(nl.iter_attrs(encoded)) == pairs


@given(types, st.lists(st.tuples(types, payloads), max_size=6))
def test_nested_round_trip_masks_the_nested_flag(
    outer: int, inner: list[tuple[int, bytes]]
) -> None:
    encoded = nl.nested(outer, *(nl.attr(t, p) for t, p in inner))
    [(type_, payload)] = list(nl.iter_attrs(encoded))
    assert type_ == outer
    assert struct.unpack_from("=H", encoded, 2)[0] & nl.NLA_F_NESTED
    assert list(nl.iter_attrs(payload)) == inner


@given(st.integers(0, 2**32 - 1), st.integers(0, 2**16 - 1), st.integers(0, 255))
def test_integer_attributes(u32: int, u16: int, u8: int) -> None:
    attrs = nl.parse_attrs(
        nl.attr_u32(1, u32) + nl.attr_u16(2, u16) + nl.attr_u8(3, u8) + nl.attr_be16(4, u16)
    )
    assert nl.get_u32(attrs, 1) == u32
    assert nl.get_u16(attrs, 2) == u16
    assert nl.get_u8(attrs, 3) == u8
    assert nl.get_be16(attrs, 4) == u16
    assert attrs[4] == struct.pack("!H", u16)
    assert nl.get_u32(attrs, 9) is None


@given(st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=0x7F), max_size=15))
def test_string_attribute_is_nul_terminated(text: str) -> None:
    encoded = nl.attr_str(3, text)
    assert nl.parse_attrs(encoded)[3].endswith(b"\0")
    assert nl.get_str(nl.parse_attrs(encoded), 3) == text


def test_truncated_attribute_is_refused() -> None:
    encoded = nl.attr(1, b"abcdefgh")
    with pytest.raises(ValueError, match="malformed"):
        list(nl.iter_attrs(encoded[:-4]))


@given(st.integers(1, 2**16 - 1), st.integers(0, 2**16 - 1), st.integers(0, 2**32 - 1), payloads)
def test_messages_round_trip(type_: int, flags: int, seq: int, payload: bytes) -> None:
    data = nl.encode_message(type_, flags, seq, payload)
    data += nl.encode_message(nl.NLMSG_DONE, 0, seq, b"\0" * 4)
    assert list(nl.iter_messages(data)) == [
        (type_, flags, seq, payload),
        (nl.NLMSG_DONE, 0, seq, b"\0" * 4),
    ]


def _error(error: int, request: bytes, tlvs: bytes = b"") -> bytes:
    return struct.pack("=i", error) + request + tlvs


def test_ack_decoding_plain_capped_and_extended() -> None:
    request = nl.encode_message(16, 5, 7, b"\0" * 16)
    assert nl.decode_error(0, _error(0, request)) == (0, "")
    assert nl.decode_error(0, _error(-errno.EEXIST, request)) == (errno.EEXIST, "")
    tlv = nl.attr_str(nl.NLMSGERR_ATTR_MSG, "mtu less than device minimum")
    capped = _error(-errno.EINVAL, request[:16], tlv)
    flags = nl.NLM_F_CAPPED | nl.NLM_F_ACK_TLVS
    assert nl.decode_error(flags, capped) == (errno.EINVAL, "mtu less than device minimum")
    full = _error(-errno.EINVAL, request, tlv)
    assert nl.decode_error(nl.NLM_F_ACK_TLVS, full) == (
        errno.EINVAL,
        "mtu less than device minimum",
    )


def test_decode_link_with_nested_linkinfo() -> None:
    payload = struct.pack("=BxHiII", 0, 1, 7, 0x1 | 0x100, 0) + b"".join([
        nl.attr_str(3, "net1"),
        nl.attr(1, bytes.fromhex("02aabbccddee")),
        nl.attr_u32(4, 1400),
        nl.attr_u32(5, 3),
        nl.nested(18, nl.attr_str(1, "macvlan"), nl.nested(2, nl.attr_u32(1, 4))),
    ])  # fmt: skip
    link = decode_link(payload)
    assert link == Link(
        ifindex=7, name="net1", kind="macvlan", mac="02:aa:bb:cc:dd:ee", mtu=1400, up=True,
        master=None, parent=3, parent_netnsid=None, txqlen=0, promisc=True, allmulti=False,
        info={"mode": "bridge"},
    )  # fmt: skip


def test_decode_route_with_metrics() -> None:
    payload = struct.pack("=BBBBBBBBI", 2, 24, 0, 0, 254, 3, 0, 1, 0) + b"".join([
        nl.attr_u32(15, 254),
        nl.attr(1, bytes([192, 168, 7, 0])),
        nl.attr(5, bytes([10, 0, 0, 1])),
        nl.attr_u32(6, 300),
        nl.nested(8, nl.attr_u32(2, 1400), nl.attr_u32(8, 1360)),
    ])  # fmt: skip
    route = decode_route(payload)
    assert (str(route.dst), str(route.gateway), route.priority) == (
        "192.168.7.0/24",
        "10.0.0.1",
        300,
    )
    assert (route.mtu, route.advmss, route.table) == (1400, 1360, 254)


@pytest.mark.parametrize("bad", ["", "02:00:00:00:00", "02-00-00-00-00-01", "0g:00:00:00:00:01"])
def test_bad_macs(bad: str) -> None:
    with pytest.raises(DataplaneError, match="invalid MAC"):
        mac_bytes(bad)


def test_an_untranslated_kernel_error_is_still_a_cni_error_naming_the_namespace() -> None:
    from multinic.cni.errors import CNIError

    error = nl.KernelError(errno.ENOBUFS, "", "/var/run/netns/p1")
    assert isinstance(error, DataplaneError) and isinstance(error, CNIError)
    assert (error.errno, error.netns) == (errno.ENOBUFS, "/var/run/netns/p1")
    assert error.to_dict("1.1.0")["code"] == 999
    assert "/var/run/netns/p1" in error.to_dict("1.1.0")["details"]
