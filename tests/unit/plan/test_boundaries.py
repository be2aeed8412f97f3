"""The fabric file is a boundary: every bad input is a message and exit 1, never a traceback.

Not UTF-8, duplicate keys, nesting, absurd numbers, a hundred thousand in-use
prefixes: each class is tried with inputs hypothesis makes up.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from multinic.cli.main import cli

from .fabrics import cluster, fabric, network
from .test_cli import EXAMPLE

FUNCTION_SCOPED = [HealthCheck.function_scoped_fixture]


def plan_file(path: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["plan", "--check", str(path), *args])


def assert_clean_failure(done: Result, *expected: str) -> None:
    """Exit 1, a message on stderr naming what is wrong, and no traceback anywhere."""
    assert done.exit_code == 1, done.output
    assert isinstance(done.exception, SystemExit), done.exception
    assert "Traceback" not in done.output
    for text in expected:
        assert text in done.stderr, done.stderr


@settings(max_examples=40, deadline=None, suppress_health_check=FUNCTION_SCOPED)
@given(junk=st.binary(min_size=1, max_size=8), at=st.integers(0, 400))
def test_a_fabric_that_is_not_utf8_names_the_line_and_byte(
    tmp_path: Path, junk: bytes, at: int
) -> None:
    text = EXAMPLE.read_bytes()
    data = text[:at] + junk + text[at:]
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = data[exc.start]
    else:
        return  # hypothesis made valid UTF-8: not this class
    path = tmp_path / "fabric.yaml"
    path.write_bytes(data)

    assert_clean_failure(plan_file(path), "not UTF-8 text", f"byte 0x{bad:02x}")


DUPLICATES = [
    ("blocks", "pod", "10.64.0.0/11"),
    ("", "fabric", "other"),
    ("defaults", "vnics", 10),
]


@pytest.mark.parametrize(("section", "key", "value"), DUPLICATES)
def test_a_duplicate_key_is_an_error_with_both_lines(
    tmp_path: Path, section: str, key: str, value: Any
) -> None:
    lines = yaml.safe_dump(fabric(defaults={"vnics": 10}), sort_keys=False).splitlines()
    indent = "  " if section else ""
    at = lines.index(f"{section}:") + 1 if section else 0
    lines.insert(at, f"{indent}{key}: {value}")
    path = tmp_path / "fabric.yaml"
    path.write_text("\n".join(lines) + "\n")

    assert_clean_failure(plan_file(path), f"found the key {key!r} twice (first on line")


def test_a_duplicate_key_in_a_flow_mapping_and_a_list_item(tmp_path: Path) -> None:
    doc = yaml.safe_dump(fabric(cluster("a", networks=[network()])), sort_keys=False)
    doc = doc.replace(
        "- expected_addresses: 50", "- expected_addresses: 50\n      expected_addresses: 5"
    )
    doc = doc.replace("blocks:", "blocks: {node: 10.10.0.0/20, node: 10.11.0.0/20}\nunused:")
    path = tmp_path / "fabric.yaml"
    path.write_text(doc)

    assert_clean_failure(plan_file(path), "twice")


def test_merge_keys_may_still_override(tmp_path: Path) -> None:
    # `<<: *anchor` then a key of the anchor is YAML's own idiom, not a duplicate.
    text = yaml.safe_dump(fabric(cluster("a"), cluster("b")), sort_keys=False)
    first = "  interfaces:\n    management: eth0\n"
    assert text.count(first) == 2
    text = text.replace(first, "  interfaces: &ifs\n    management: eth0\n", 1)
    text = text.replace(first, "  interfaces:\n    <<: *ifs\n    management: eth0\n", 1)
    path = tmp_path / "fabric.yaml"
    path.write_text(text)

    done = plan_file(path)

    assert done.exit_code == 0, done.output


@settings(max_examples=10, deadline=None, suppress_health_check=FUNCTION_SCOPED)
@given(depth=st.integers(100, 200_000), flow=st.booleans())
def test_deep_nesting_is_a_message(tmp_path: Path, depth: int, flow: bool) -> None:
    if flow:
        text = "fabric: " + "[" * depth + "]" * depth
    else:
        text = "".join(f"{'  ' * i}k{i}:\n" for i in range(min(depth, 3000)))
    path = tmp_path / "fabric.yaml"
    path.write_text(text)

    done = plan_file(path)

    assert_clean_failure(done)


HUGE = st.one_of(
    st.integers(min_value=65537, max_value=10**40),
    st.integers(max_value=0, min_value=-(10**40)),
    st.floats(allow_nan=True),
    st.booleans(),
    st.text(max_size=5),
    st.none(),
)
NUMERIC = [
    ("nodes",),
    ("nodes", "expected"),
    ("nodes", "max"),
    ("pods_per_node",),
    ("interfaces", "vnics"),
    ("networks", 0, "expected_addresses"),
    ("networks", 0, "prefix"),
    ("node_prefix",),
    ("service_prefix",),
]


@settings(max_examples=120, deadline=None, suppress_health_check=FUNCTION_SCOPED)
@given(where=st.sampled_from(NUMERIC), value=HUGE)
def test_absurd_numbers_are_errors_that_name_the_field(
    tmp_path: Path, where: tuple[Any, ...], value: Any
) -> None:
    doc = fabric(cluster("a", nodes={"expected": 10, "max": 20}))
    target: Any = doc["clusters"][0]
    for step in where[:-1]:
        target = target[step]
    target[where[-1]] = value
    path = tmp_path / "fabric.yaml"
    path.write_text(yaml.safe_dump(doc))

    done = plan_file(path, "--json")

    assert done.exit_code in (0, 1), done.output
    assert isinstance(done.exception, SystemExit) or done.exception is None, done.exception
    assert "/-" not in done.output
    if done.exit_code == 1 and not done.stdout:
        assert done.stderr.startswith("multinic plan: clusters[0].")
        assert len(done.stderr) < 400  # a 40-digit number is shown by its size


def test_a_38_digit_node_count_is_a_clear_error(tmp_path: Path) -> None:
    doc = fabric(cluster("a", nodes=10**37))
    path = tmp_path / "fabric.yaml"
    path.write_text(yaml.safe_dump(doc))

    assert_clean_failure(plan_file(path), "clusters[0].nodes.expected:", "at most 65536")


def test_per_node_shares_beyond_the_address_family_are_an_error(tmp_path: Path) -> None:
    net = network(ipam="per-node", expected_addresses=1 << 32)
    doc = fabric(cluster("a", nodes={"expected": 1, "max": 65536}, networks=[net]))
    path = tmp_path / "fabric.yaml"
    path.write_text(yaml.safe_dump(doc))

    assert_clean_failure(plan_file(path), "a/n3", "exceed the whole IPv4 space")


@pytest.mark.parametrize("count", [30, 20_000])
def test_a_long_in_use_list_stays_fast_and_is_one_finding_per_block(
    tmp_path: Path, count: int
) -> None:
    inside = [f"10.{32 + i // 65536}.{i // 256 % 256}.{i % 256}/32" for i in range(count)]
    elsewhere = [f"10.{200 + i // 65536}.{i // 256 % 256}.{i % 256}/32" for i in range(count)]
    path = tmp_path / "fabric.yaml"
    path.write_text(json.dumps(fabric(in_use=inside + elsewhere)))  # JSON is YAML too

    started = time.monotonic()
    done = plan_file(path, "--json")
    took = time.monotonic() - started

    findings = json.loads(done.stdout)["findings"]
    assert [f["rule"] for f in findings] == ["in-use"]
    assert (
        f"overlaps {count} in-use prefixes (10.32.0.0/32, 10.32.0.1/32, 10.32.0.2/32 and"
        in (findings[0]["message"])
    )
    assert took < 60  # about 1 s for 20 000 on an idle machine; minutes before grouping


def test_repeated_findings_of_one_rule_are_grouped() -> None:
    from multinic.plan.result import Finding, Severity
    from multinic.plan.validate import GROUP_AFTER, group_repeated

    many = [Finding(Severity.WARNING, "previous-moved", f"moved {i}") for i in range(500)]
    other = Finding(Severity.ERROR, "overlap", "x")

    grouped = group_repeated([*many, other])

    assert len(grouped) == GROUP_AFTER + 2
    assert grouped[GROUP_AFTER] == other
    assert (
        grouped[-1].message
        == f"and {500 - GROUP_AFTER} more previous-moved findings like the {GROUP_AFTER} above"
    )


@pytest.mark.parametrize(
    "content", [b"\xff\xfe{}", b"[" * 100_000 + b"]" * 100_000, b'{"format": "multinic.plan/v1"}']
)
def test_a_broken_previous_plan_is_a_message(tmp_path: Path, content: bytes) -> None:
    previous = tmp_path / "plan.json"
    previous.write_bytes(content)

    done = CliRunner().invoke(cli, ["plan", str(EXAMPLE), "--previous", str(previous)])

    assert_clean_failure(done, str(previous))
