"""Range config: host-local and Whereabouts forms, defaults, and errors that name the field."""

from __future__ import annotations

import ipaddress

import pytest

from multinic.cni.errors import ErrorCode
from multinic.ipam.ranges import (
    RangeConfigError,
    make_range,
    parse_exclude,
    parse_hostlocal_ranges,
    parse_whereabouts_range,
)

A = ipaddress.ip_address
N = ipaddress.ip_network


def test_ipv4_defaults_are_host_locals() -> None:
    (rs,) = parse_hostlocal_ranges({"ranges": [[{"subnet": "10.1.0.0/24"}]]})
    (r,) = rs.ranges
    assert (r.range_start, r.range_end, r.gateway) == (
        A("10.1.0.1"),
        A("10.1.0.254"),
        A("10.1.0.1"),
    )
    assert rs.version == 4


def test_ipv6_defaults_end_at_the_last_address() -> None:
    r = make_range(N("2001:db8::/120"))
    assert (r.range_start, r.range_end, r.gateway) == (
        A("2001:db8::1"),
        A("2001:db8::ff"),
        A("2001:db8::1"),
    )


def test_ipv4_reserves_network_broadcast_gateway_and_excludes() -> None:
    r = make_range(N("10.0.0.0/28"), gateway=A("10.0.0.14"), exclude=[N("10.0.0.4/30")])
    assert sorted(r.reserved()) == [
        (0x0A000000, 0x0A000000),
        (0x0A000004, 0x0A000007),
        (0x0A00000E, 0x0A00000E),
        (0x0A00000F, 0x0A00000F),
    ]


def test_ipv6_reserves_only_gateway_and_excludes() -> None:
    r = make_range(N("2001:db8::/64"), exclude=[N("2001:db8::8/126")])
    base = int(A("2001:db8::"))
    assert sorted(r.reserved()) == [(base + 1, base + 1), (base + 8, base + 11)]


def test_old_single_range_form_comes_first_and_subnet_host_bits_are_masked() -> None:
    sets = parse_hostlocal_ranges(
        {"subnet": "10.2.0.7/24", "rangeStart": "10.2.0.100", "ranges": [[{"subnet": "fd00::/64"}]]}
    )
    assert [s.version for s in sets] == [4, 6]
    assert sets[0].ranges[0].subnet == N("10.2.0.0/24")
    assert sets[0].ranges[0].range_start == A("10.2.0.100")


def test_several_ranges_in_one_set_and_dual_stack() -> None:
    sets = parse_hostlocal_ranges(
        {
            "ranges": [
                [{"subnet": "10.0.0.0/24"}, {"subnet": "10.0.1.0/24", "gateway": "10.0.1.254"}],
                [{"subnet": "fd00::/64", "rangeStart": "fd00::10", "rangeEnd": "fd00::20"}],
            ]
        }
    )
    assert len(sets[0].ranges) == 2
    assert A("10.0.1.7") in sets[0] and A("10.0.2.7") not in sets[0]
    assert sets[0].range_for(A("10.0.1.7")) == sets[0].ranges[1]
    assert A("fd00::15") in sets[1] and A("fd00::21") not in sets[1]


def test_exclude_takes_cidrs_and_single_addresses() -> None:
    assert parse_exclude(["10.0.0.0/30", "10.0.0.9", "fd00::1"], "x") == (
        N("10.0.0.0/30"),
        N("10.0.0.9/32"),
        N("fd00::1/128"),
    )


@pytest.mark.parametrize(
    ("ipam", "names"),
    [
        ({}, "ipam: no IP ranges specified"),
        ({"ranges": {}}, "ipam.ranges must be a list"),
        ({"ranges": [{}]}, "ipam.ranges[0] must be a list of ranges"),
        ({"ranges": [[]]}, "ipam.ranges[0]: empty range set"),
        ({"ranges": [[{}]]}, "ipam.ranges[0][0].subnet is missing"),
        ({"ranges": [["10.0.0.0/24"]]}, "ipam.ranges[0][0] must be an object"),
        (
            {"ranges": [[{"subnet": "10.0.0.0"}]]},
            "ipam.ranges[0][0].subnet: '10.0.0.0' is not a CIDR",
        ),
        ({"ranges": [[{"subnet": "10.0.0.0/x"}]]}, "ipam.ranges[0][0].subnet"),
        ({"ranges": [[{"subnet": "10.0.0.300/24"}]]}, "ipam.ranges[0][0].subnet"),
        ({"ranges": [[{"subnet": "10.0.0.0/31"}]]}, "too small to allocate from"),
        ({"ranges": [[{"subnet": "fd00::/127"}]]}, "too small to allocate from"),
        (
            {"ranges": [[{"subnet": "10.0.0.0/24", "rangeStart": "10.0.1.1"}]]},
            "ipam.ranges[0][0].rangeStart: 10.0.1.1 is not in subnet 10.0.0.0/24",
        ),
        (
            {"ranges": [[{"subnet": "10.0.0.0/24", "rangeEnd": "fd00::1"}]]},
            "ipam.ranges[0][0].rangeEnd: fd00::1 is not in subnet",
        ),
        (
            {"ranges": [[{"subnet": "10.0.0.0/24", "gateway": "10.9.0.1"}]]},
            "ipam.ranges[0][0].gateway: 10.9.0.1 is not in subnet",
        ),
        (
            {"ranges": [[{"subnet": "10.0.0.0/24", "gateway": 7}]]},
            "ipam.ranges[0][0].gateway must be an IP address string",
        ),
        (
            {
                "ranges": [
                    [{"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.9", "rangeEnd": "10.0.0.8"}]
                ]
            },
            "rangeStart 10.0.0.9 is after rangeEnd 10.0.0.8",
        ),
        (
            {"ranges": [[{"subnet": "10.0.0.0/24", "rangeStart": "banana"}]]},
            "ipam.ranges[0][0].rangeStart: 'banana' is not an IP address",
        ),
        (
            {"ranges": [[{"subnet": "10.0.0.0/24", "exclude": "10.0.0.1"}]]},
            "ipam.ranges[0][0].exclude must be a list",
        ),
        (
            {"ranges": [[{"subnet": "10.0.0.0/24", "exclude": ["fd00::/64"]}]]},
            "ipam.ranges[0][0].exclude[0]: fd00::/64 is not IPv4",
        ),
        (
            {"ranges": [[{"subnet": "10.0.0.0/24"}, {"subnet": "fd00::/64"}]]},
            "ipam.ranges[0][1]: mixed address families",
        ),
        (
            {"ranges": [[{"subnet": "10.0.0.0/24"}, {"subnet": "10.0.0.128/25"}]]},
            "ipam.ranges[0][0] (10.0.0.1-10.0.0.254/24) overlaps ipam.ranges[0][1]",
        ),
        (
            {"ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.0.0.0/16"}]]},
            "range set 0 (10.0.0.1-10.0.0.254/24) overlaps range set 1",
        ),
    ],
)
def test_bad_ranges_name_the_field(ipam: dict[str, object], names: str) -> None:
    with pytest.raises(RangeConfigError) as caught:
        parse_hostlocal_ranges(ipam)
    assert caught.value.code == ErrorCode.INVALID_NETWORK_CONFIG
    assert names in caught.value.details


def test_disjoint_ranges_of_one_subnet_may_share_a_set() -> None:
    (rs,) = parse_hostlocal_ranges(
        {
            "ranges": [
                [
                    {"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.10", "rangeEnd": "10.0.0.19"},
                    {"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.20", "rangeEnd": "10.0.0.29"},
                ]
            ]
        }
    )
    assert len(rs.ranges) == 2


def test_whereabouts_cidr_form_has_no_default_gateway() -> None:
    r = parse_whereabouts_range("192.168.2.225/28")
    assert (r.subnet, r.range_start, r.range_end, r.gateway) == (
        N("192.168.2.224/28"),
        A("192.168.2.225"),
        A("192.168.2.238"),
        None,
    )


def test_whereabouts_dash_form_sets_start_and_end() -> None:
    r = parse_whereabouts_range(
        "10.0.0.10-10.0.0.50/24", exclude=["10.0.0.20/30"], gateway="10.0.0.1"
    )
    assert (r.subnet, r.range_start, r.range_end, r.gateway) == (
        N("10.0.0.0/24"),
        A("10.0.0.10"),
        A("10.0.0.50"),
        A("10.0.0.1"),
    )
    assert r.exclude == (N("10.0.0.20/30"),)


def test_whereabouts_range_start_and_end_fields() -> None:
    r = parse_whereabouts_range("fd00:1::/64", range_start="fd00:1::100", range_end="fd00:1::1ff")
    assert (r.range_start, r.range_end) == (A("fd00:1::100"), A("fd00:1::1ff"))


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"range_text": None}, "ipam.range is missing"),
        ({"range_text": "10.0.0.0"}, "ipam.range: '10.0.0.0' is not a CIDR"),
        ({"range_text": "10.0.0.1-10.0.0.9"}, "needs a prefix length after the end"),
        ({"range_text": "10.0.0.x-10.0.0.9/24"}, "ipam.range (start): '10.0.0.x'"),
        ({"range_text": "10.0.1.1-10.0.0.9/24"}, "ipam.rangeStart: 10.0.1.1 is not in subnet"),
        ({"range_text": "10.0.0.0/24", "range_start": 5}, "ipam.range_start must be an IP"),
        ({"range_text": "10.0.0.0/24", "range_end": "10.0.1.0"}, "rangeEnd: 10.0.1.0 is not in"),
        ({"range_text": "10.0.0.0/24", "exclude": ["x/24"]}, "ipam.exclude[0]"),
        ({"range_text": "10.0.0.0/24", "gateway": "nope"}, "ipam.gateway: 'nope'"),
    ],
)
def test_bad_whereabouts_ranges_name_the_field(kwargs: dict[str, object], names: str) -> None:
    with pytest.raises(RangeConfigError) as caught:
        parse_whereabouts_range(**kwargs)  # type: ignore[arg-type]
    assert names in caught.value.details


def test_restrict_cuts_a_block_out_of_a_range() -> None:
    r = make_range(N("10.0.0.0/24"), exclude=[N("10.0.0.70/32")])
    block = r.restrict(A("10.0.0.64"), A("10.0.0.127"))
    assert (block.range_start, block.range_end, block.gateway, block.exclude) == (
        A("10.0.0.64"),
        A("10.0.0.127"),
        A("10.0.0.1"),
        r.exclude,
    )
    with pytest.raises(ValueError, match="does not meet"):
        make_range(N("10.0.0.0/24"), range_end=A("10.0.0.50")).restrict(
            A("10.0.0.64"), A("10.0.0.127")
        )
