"""Tests for multinic.cni.version: parsing, comparing and negotiating CNI spec versions."""

from __future__ import annotations

import pytest

from multinic.cni.errors import ErrorCode, IncompatibleVersionError
from multinic.cni.version import (
    CHECK_SINCE,
    GC_SINCE,
    LATEST_VERSION,
    SUPPORTED_VERSIONS,
    at_least,
    highest_common,
    parse_version,
    require_supported,
)

# --- constants -------------------------------------------------------------------


def test_supported_versions_are_0_3_0_to_1_1_0_oldest_first():
    assert SUPPORTED_VERSIONS == ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
    assert LATEST_VERSION == "1.1.0"


def test_verb_thresholds_match_the_spec():
    assert CHECK_SINCE == "0.4.0"
    assert GC_SINCE == "1.1.0"


# --- parse_version ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.3.0", (0, 3, 0)),
        ("0.3.1", (0, 3, 1)),
        ("1.1.0", (1, 1, 0)),
        ("10.20.30", (10, 20, 30)),
        ("0.0.0", (0, 0, 0)),
        ("9999.0.1", (9999, 0, 1)),
    ],
)
def test_parse_version_returns_integer_triple(text, expected):
    assert parse_version(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1",
        "1.0",
        "1.0.0.0",
        "v1.0.0",
        "01.0.0",
        "1.00.0",
        "1.0.0-rc1",
        " 1.0.0",
        "1.0.0 ",
        "1..0",
        "a.b.c",
        "-1.0.0",
        "10000.0.0",
    ],
)
def test_parse_version_rejects_malformed_strings_with_code_1(text):
    with pytest.raises(IncompatibleVersionError) as err:
        parse_version(text)
    assert err.value.code == ErrorCode.INCOMPATIBLE_VERSION == 1
    assert err.value.msg == "invalid cniVersion"
    assert err.value.details == f"{text!r} is not major.minor.patch"


@pytest.mark.parametrize("value", [None, 1, 1.0, ["1.0.0"], {"v": "1.0.0"}, b"1.0.0"])
def test_parse_version_rejects_non_strings_with_code_1(value):
    with pytest.raises(IncompatibleVersionError) as err:
        parse_version(value)
    assert err.value.code == 1
    assert err.value.details == f"{value!r} is not a string"


def test_parse_version_rejects_a_trailing_newline():
    with pytest.raises(IncompatibleVersionError):
        parse_version("1.0.0\n")


# --- at_least --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "minimum", "expected"),
    [
        ("0.4.0", "0.4.0", True),
        ("1.0.0", "0.4.0", True),
        ("0.3.1", "0.4.0", False),
        ("0.3.0", "0.3.1", False),
        ("1.1.0", "1.0.0", True),
        ("1.0.0", "1.1.0", False),
        # Numeric, not lexical: "0.10.0" < "0.4.0" as strings.
        ("0.10.0", "0.4.0", True),
        ("0.4.10", "0.4.9", True),
        ("2.0.0", "1.99.99", True),
    ],
)
def test_at_least_compares_numerically(version, minimum, expected):
    assert at_least(version, minimum) is expected


@pytest.mark.parametrize(("version", "minimum"), [("1.0", "0.4.0"), ("0.4.0", "x")])
def test_at_least_rejects_malformed_versions(version, minimum):
    with pytest.raises(IncompatibleVersionError) as err:
        at_least(version, minimum)
    assert err.value.code == 1


# --- require_supported -----------------------------------------------------------


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_require_supported_returns_each_supported_version(version):
    assert require_supported(version) == version


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0", "0.5.0", "1.2.0", "9.9.9"])
def test_require_supported_rejects_well_formed_unsupported_versions(version):
    with pytest.raises(IncompatibleVersionError) as err:
        require_supported(version)
    assert err.value.code == 1
    assert err.value.msg == "incompatible CNI versions"
    assert err.value.details == (
        f"config is {version!r}, supported versions are "
        "['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']"
    )


def test_require_supported_parses_before_checking_membership():
    with pytest.raises(IncompatibleVersionError) as err:
        require_supported("1.0", ["1.0"])
    assert err.value.msg == "invalid cniVersion"


def test_require_supported_uses_the_given_supported_list():
    assert require_supported("0.4.0", ["0.4.0"]) == "0.4.0"
    with pytest.raises(IncompatibleVersionError) as err:
        require_supported("1.0.0", iter(["0.4.0", "1.1.0"]))
    assert err.value.details == "config is '1.0.0', supported versions are ['0.4.0', '1.1.0']"


# --- highest_common --------------------------------------------------------------


def test_highest_common_picks_the_newest_supported_candidate():
    assert highest_common(["0.4.0", "1.0.0", "0.3.1"]) == "1.0.0"


def test_highest_common_ignores_unsupported_candidates():
    assert highest_common(["0.4.0", "2.0.0", "0.2.0"]) == "0.4.0"


def test_highest_common_ignores_candidate_order():
    assert highest_common(["1.1.0", "0.3.0"]) == highest_common(["0.3.0", "1.1.0"]) == "1.1.0"


def test_highest_common_orders_numerically_not_lexically():
    assert highest_common(["0.9.0", "0.10.0"], ["0.9.0", "0.10.0"]) == "0.10.0"


def test_highest_common_accepts_generators():
    assert highest_common(v for v in ("0.3.0", "0.3.1")) == "0.3.1"


def test_highest_common_with_no_usable_candidate_is_code_1():
    with pytest.raises(IncompatibleVersionError) as err:
        highest_common(["0.2.0", "2.0.0"])
    assert err.value.code == 1
    assert err.value.msg == "no supported CNI version"
    assert err.value.details == (
        "config offers ['0.2.0', '2.0.0'], supported versions are "
        "['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']"
    )


def test_highest_common_with_no_candidates_is_code_1():
    with pytest.raises(IncompatibleVersionError) as err:
        highest_common([])
    assert err.value.code == 1


def test_highest_common_lists_a_custom_supported_set_in_version_order():
    with pytest.raises(IncompatibleVersionError) as err:
        highest_common(["1.1.0"], ["1.0.0", "0.10.0", "0.4.0"])
    assert err.value.details.endswith("supported versions are ['0.4.0', '0.10.0', '1.0.0']")
