"""Suite-wide rules: tests that need root say so, and nothing is skipped in CI."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Tests under tests/netns and tests/e2e create namespaces and links: mark them root.
    for item in items:
        parts = item.path.parts
        if "netns" in parts or "e2e" in parts:
            item.add_marker(pytest.mark.root)
        if "e2e" in parts:
            item.add_marker(pytest.mark.e2e)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("root") and os.geteuid() != 0:
        pytest.fail(
            "this test needs root (it creates network namespaces); run `make test` as root "
            "or deselect with -m 'not root'",
            pytrace=False,
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # make test sets MULTINIC_NO_SKIP=1: a skipped test there is a test that did not run.
    if os.environ.get("MULTINIC_NO_SKIP") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if skipped and session.exitstatus == 0:
        reporter.ensure_newline()
        reporter.write_line(f"MULTINIC_NO_SKIP: {skipped} test(s) skipped; failing the run")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
