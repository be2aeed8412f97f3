"""The tests that need the guest's kernel (tests/guest_kernel) run inside the guest, in one boot.

On the host those tests are deselected (tests/conftest.py); here one guest runs
them all with the project's own pytest, and this test fails with the guest's
pytest output when anything in there failed, errored, was skipped or did not run.
"Did not run" is exact: the guest must report the very tests the host collects
from tests/guest_kernel, and every module there must hold some.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.e2e.guest.run import BASE_ENV, PROJECT_ROOT, Guest

GUEST_SUITE = "tests/guest_kernel"

#: CPU-bound Python runs 17-20x slower in the guest (software emulation); pytest's
#: start-up alone takes ~15 s there. Keep the in-guest suite small.
GUEST_SUITE_TIMEOUT = 15 * 60


def collect_guest_suite() -> list[str]:
    """The node ids of tests/guest_kernel, collected on the host as the guest collects them."""
    env = {**os.environ, "MULTINIC_IN_GUEST": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "-m", "guest_kernel", GUEST_SUITE],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return [line for line in done.stdout.splitlines() if "::" in line]


def modules_without_tests(node_ids: list[str]) -> list[str]:
    """Python files in tests/guest_kernel that contribute no test (e.g. renamed off test_*)."""
    holding = {node_id.split("::")[0] for node_id in node_ids}
    files = sorted((PROJECT_ROOT / GUEST_SUITE).glob("*.py"))
    return [
        f"{GUEST_SUITE}/{file.name}"
        for file in files
        if file.name not in ("__init__.py", "conftest.py")
        and f"{GUEST_SUITE}/{file.name}" not in holding
    ]


def junit_name(node_id: str) -> str:
    """``classname.name`` as pytest's JUnit report spells a node id (its mangle_test_address)."""
    path, bracket, params = node_id.partition("[")
    names = path.split("::")
    names[0] = names[0].removesuffix(".py").replace("/", ".")
    return ".".join(names) + bracket + params


def test_every_guest_kernel_module_holds_collected_tests() -> None:
    # Helpers belong in tests/support: a file here without tests is one that stopped being
    # collected (renamed off test_*.py, or a collection rule that drops it).
    node_ids = collect_guest_suite()
    assert node_ids, "no test collected from tests/guest_kernel"
    assert modules_without_tests(node_ids) == []


def test_guest_kernel_suite_passes_inside_the_guest(guest: Guest, tmp_path: Path) -> None:
    expected = collect_guest_suite()
    assert modules_without_tests(expected) == []
    report = tmp_path / "guest-junit.xml"
    command = [
        sys.executable, "-m", "pytest", GUEST_SUITE,
        "-m", "guest_kernel",
        "-p", "no:cacheprovider",  # the project dir is shared: leave no cache behind
        f"--junitxml={report}",
        "--durations=5",
    ]  # fmt: skip
    env = {
        # The venv's bin first, as on the host: plugin executables live there.
        "PATH": f"{Path(sys.executable).parent}:{BASE_ENV['PATH']}",
        "MULTINIC_NO_SKIP": "1",
    }

    result = guest(command, timeout=GUEST_SUITE_TIMEOUT, env=env, shared=[tmp_path])

    if result.returncode != 0:
        pytest.fail(
            f"pytest in the guest exited {result.returncode}:\n{result.output}", pytrace=False
        )
    suite = ET.parse(report).getroot().find("testsuite")  # noqa: S314 - our own pytest wrote it
    assert suite is not None, result.output
    tests, failures, errors, skipped = (
        int(suite.get(key, "0")) for key in ("tests", "failures", "errors", "skipped")
    )
    assert (failures, errors, skipped) == (0, 0, 0), result.output
    ran = [f"{case.get('classname')}.{case.get('name')}" for case in suite.iter("testcase")]
    assert tests == len(ran) == len(expected), result.output
    assert sorted(ran) == sorted(junit_name(node_id) for node_id in expected), result.output
    print(result.output)  # the guest's pytest report, for -rA


def test_host_deselects_guest_kernel_tests_instead_of_skipping_them() -> None:
    env = {key: value for key, value in os.environ.items() if key != "MULTINIC_IN_GUEST"}

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            GUEST_SUITE,
        ],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )

    assert done.returncode == pytest.ExitCode.NO_TESTS_COLLECTED, done.stdout + done.stderr
    assert "deselected" in done.stdout, done.stdout
    assert "skipped" not in done.stdout, done.stdout
