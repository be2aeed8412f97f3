"""Fixtures for end-to-end tests; the QEMU guest (tests/e2e/guest) for kernel features."""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from tests.e2e.guest.image import GuestImage, ImageError, ensure_image
from tests.e2e.guest.run import PROJECT_ROOT, Guest, GuestResult, run_in_guest
from tests.support.kube import KubeCluster


@pytest.fixture(scope="session")
def guest_image() -> GuestImage:
    """The cached kernel + initramfs, downloaded and built on first use."""
    if shutil.which("qemu-system-x86_64") is None:
        pytest.fail("qemu-system-x86_64 missing: run `make system-deps`", pytrace=False)
    try:
        return ensure_image()
    except ImageError as error:
        pytest.fail(f"cannot build the guest image: {error}", pytrace=False)


@pytest.fixture(scope="session")
def guest(guest_image: GuestImage) -> Guest:
    """Boot-and-run: every call is its own boot (a few seconds), so batch work into one call."""
    del guest_image  # built once per session, before the first boot is timed

    def run(
        argv: Sequence[str],
        *,
        timeout: float,
        env: Mapping[str, str] | None = None,
        shared: Sequence[Path] = (),
    ) -> GuestResult:
        return run_in_guest(argv, timeout=timeout, workdir=PROJECT_ROOT, env=env, shared=shared)

    return run


_kube_started_in: list[float] = []


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    """One Kubernetes control plane for the run; each test uses objects of its own."""
    with KubeCluster(tmp_path_factory.mktemp("kube")) as cluster:
        _kube_started_in.append(cluster.started_in)
        yield cluster


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for seconds in _kube_started_in:
        terminalreporter.write_line(f"kube control plane started in {seconds:.1f} s")
