"""Suite-wide rules: tests that need root say so, and nothing is skipped or xfailed in CI."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Tests under tests/netns and tests/e2e create namespaces and links: mark them root.
    for item in items:
        parts = item.path.parts
        if "netns" in parts or "e2e" in parts or "guest_kernel" in parts:
            item.add_marker(pytest.mark.root)
        if "e2e" in parts:
            item.add_marker(pytest.mark.e2e)
        if "guest_kernel" in parts:
            item.add_marker(pytest.mark.guest_kernel)
        if "kube_cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.kube)
    _guest_kernel_tests_only_in_the_guest(config, items)


def _guest_kernel_tests_only_in_the_guest(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On the host, deselect tests that need the guest's kernel (ipvlan, vlan).

    Deselected, not skipped: `make test` fails on skips. tests/e2e/test_in_guest.py
    boots the guest once and runs tests/guest_kernel there with MULTINIC_IN_GUEST=1.
    """
    guest_only = [item for item in items if item.get_closest_marker("guest_kernel")]
    misplaced = [item.nodeid for item in guest_only if "guest_kernel" not in item.path.parts]
    if misplaced:
        # Only tests/guest_kernel runs in the guest: a marked test elsewhere would never run.
        raise pytest.UsageError(
            "guest_kernel tests must live in tests/guest_kernel/: " + ", ".join(misplaced)
        )
    if guest_only and os.environ.get("MULTINIC_IN_GUEST") != "1":
        config.hook.pytest_deselected(items=guest_only)
        items[:] = [item for item in items if not item.get_closest_marker("guest_kernel")]


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("root") and os.geteuid() != 0:
        pytest.fail(
            "this test needs root (it creates network namespaces); run `make test` as root "
            "or deselect with -m 'not root'",
            pytrace=False,
        )


#: Outcomes of a test that did not guard anything: it did not run, or it was expected to
#: fail (xfailed) or was let pass against that expectation (xpassed, with strict=False).
#: pyproject sets xfail_strict, so a passing xfail is already a failure; an xfail that
#: fails, or pytest.xfail() called in a test, would still count as a pass.
NOT_GUARDING = ("skipped", "xfailed", "xpassed")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # make test sets MULTINIC_NO_SKIP=1: a skipped test there is a test that did not run,
    # and an xfail is a known failure the suite does not check: both fail the run.
    if os.environ.get("MULTINIC_NO_SKIP") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or session.exitstatus != 0:
        return
    counts = {key: len(reporter.stats.get(key, [])) for key in NOT_GUARDING}
    if any(counts.values()):
        found = ", ".join(f"{count} {key}" for key, count in counts.items() if count)
        reporter.ensure_newline()
        reporter.write_line(f"MULTINIC_NO_SKIP: {found}; failing the run")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
