"""tests/conftest.py's rule for `make test` (MULTINIC_NO_SKIP=1): every test really runs.

Each case runs pytest on a one-test scratch suite whose conftest takes the hook
from tests/conftest.py, and reads the exit status.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]

#: One test body per outcome; all but "passed" must fail a MULTINIC_NO_SKIP run.
TESTS = {
    "passed": "def test_it():\n    assert True\n",
    "skipped": "def test_it():\n    pytest.skip('no package')\n",
    "xfailed": "@pytest.mark.xfail(reason='known bug')\ndef test_it():\n    assert False\n",
    "xpassed": "@pytest.mark.xfail(strict=False)\ndef test_it():\n    assert True\n",
    "xfail() called": "def test_it():\n    pytest.xfail('known bug')\n",
}


def run_scratch_suite(tmp_path: Path, body: str, *, no_skip: bool) -> subprocess.CompletedProcess:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # not the project's settings
    (tmp_path / "conftest.py").write_text("from tests.conftest import pytest_sessionfinish\n")
    (tmp_path / "test_scratch.py").write_text("import pytest\n\n\n" + body)
    env = {key: value for key, value in os.environ.items() if key != "MULTINIC_NO_SKIP"}
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    if no_skip:
        env["MULTINIC_NO_SKIP"] = "1"
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:hypothesispytest",
            str(tmp_path),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("outcome", [o for o in TESTS if o != "passed"])
def test_a_test_that_did_not_guard_fails_a_no_skip_run(tmp_path: Path, outcome: str) -> None:
    done = run_scratch_suite(tmp_path, TESTS[outcome], no_skip=True)
    assert done.returncode == pytest.ExitCode.TESTS_FAILED, done.stdout + done.stderr
    assert "MULTINIC_NO_SKIP: 1 " in done.stdout, done.stdout


def test_a_passing_suite_passes_and_the_rule_needs_the_variable(tmp_path: Path) -> None:
    done = run_scratch_suite(tmp_path, TESTS["passed"], no_skip=True)
    assert done.returncode == pytest.ExitCode.OK, done.stdout + done.stderr
    # Outside `make test` (no MULTINIC_NO_SKIP) an xfail is pytest's ordinary pass.
    done = run_scratch_suite(tmp_path, TESTS["xfailed"], no_skip=False)
    assert done.returncode == pytest.ExitCode.OK, done.stdout + done.stderr
