"""The guest harness itself: what the guest sees, what comes back, and that nothing is left over."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest

from tests.e2e.guest.image import CACHE_DIR
from tests.e2e.guest.run import (
    PROJECT_ROOT,
    Guest,
    GuestError,
    GuestTimeoutError,
    run_in_guest,
)


def _our_jobs() -> set[Path]:
    """Job dirs this process owns (other test runs may boot guests at the same time)."""
    owned: set[Path] = set()
    for job in (CACHE_DIR / "jobs").glob("job.*"):
        try:
            if int((job / "owner").read_text()) == os.getpid():
                owned.add(job)
        except (FileNotFoundError, ValueError):
            continue
    return owned


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if text.encode() in cmdline:
                found.append(int(proc.name))
    return found


def test_guest_runs_in_its_own_kernel_sees_the_host_and_shares_only_the_workdir(
    guest: Guest, tmp_path: Path
) -> None:
    probe = PROJECT_ROOT / "pyproject.toml"
    host_only = Path("/etc") / f"multinic-guest-probe-{os.getpid()}"
    script = f"""
        echo "kernel $(uname -r)"
        echo "cwd $(pwd)"
        echo "var $GUEST_PROBE_VAR in-guest=$MULTINIC_IN_GUEST"
        head -c 9 {shlex.quote(str(probe))}; echo
        echo from-guest > {shlex.quote(str(tmp_path / "shared.txt"))}
        echo discarded > {shlex.quote(str(host_only))} && echo "overlay write ok"
        echo to-stderr >&2
        exit 7
    """

    result = guest(
        ["/bin/sh", "-c", script], timeout=120, env={"GUEST_PROBE_VAR": "a b"}, shared=[tmp_path]
    )

    assert result.returncode == 7, result.output
    lines = result.output.splitlines()
    assert f"kernel {os.uname().release}" not in lines  # not the host's kernel
    assert any(line.startswith("kernel ") for line in lines), result.output
    assert f"cwd {PROJECT_ROOT}" in lines
    assert "var a b in-guest=1" in lines
    assert "[build-sy" in lines  # the host's files, read through 9p
    assert "overlay write ok" in lines
    assert "to-stderr" in lines
    assert (tmp_path / "shared.txt").read_text() == "from-guest\n"
    assert not host_only.exists()  # the host's / is read-only; writes went to a tmpfs


def test_timeout_kills_the_guest_and_removes_its_job_dir(guest: Guest, tmp_path: Path) -> None:
    with pytest.raises(GuestTimeoutError) as raised:
        guest(["/bin/sh", "-c", "echo started; exec sleep 600"], timeout=10, shared=[tmp_path])

    assert "timed out" in str(raised.value)
    # QEMU's command line names every shared dir: none may still run for ours.
    assert _processes_mentioning(f"path={tmp_path}") == []
    assert _our_jobs() == set()


def test_guest_that_dies_without_a_status_is_an_error_and_is_cleaned_up(tmp_path: Path) -> None:
    # sysrq "o" powers the guest off at once: the command never reports a status.
    script = "echo before-poweroff; echo o > /proc/sysrq-trigger; sleep 60"

    with pytest.raises(GuestError) as raised:
        run_in_guest(["/bin/sh", "-c", script], timeout=120, workdir=tmp_path)

    assert not isinstance(raised.value, GuestTimeoutError)
    assert "without an exit status while the command ran" in str(raised.value)
    assert "before-poweroff" in raised.value.output
    assert _processes_mentioning(f"path={tmp_path}") == []
    assert _our_jobs() == set()


def test_an_empty_command_is_refused_before_booting(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs a command"):
        run_in_guest([], timeout=10, workdir=tmp_path)
