"""Run a command inside a throw-away QEMU guest booting Debian's stock kernel.

The guest sees the host's ``/`` read-only (over virtio-9p, with a tmpfs overlay
so writes succeed and vanish) and ``workdir`` read-write, runs as root in its
own kernel, and powers off when the command ends. QEMU emulates the CPU in
software (TCG): this machine's /dev/kvm cannot run a stock kernel. Expect a few
seconds per boot, and CPU-bound Python 17-20x slower than on the host.

Command line, for trying things by hand::

    .venv/bin/python -m tests.e2e.guest.run [--timeout S] [--workdir DIR] -- ip -d link
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tests.e2e.guest.image import CACHE_DIR, GuestImage, ensure_image

PROJECT_ROOT = Path(__file__).resolve().parents[3]

#: The environment a guest command gets unless the caller adds to it.
BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "TERM": "dumb",
    # Tests use it to tell the guest from the host (see tests/conftest.py).
    "MULTINIC_IN_GUEST": "1",
}

#: The guest's view of the job dir (see init.sh).
GUEST_JOB_DIR = "/run/guest-job"

#: Exit status the guest reports when the command could not even start there.
SETUP_FAILED = 125


class GuestError(RuntimeError):
    """The guest did not report an exit status for the command."""

    def __init__(self, message: str, output: str) -> None:
        super().__init__(f"{message}\n--- guest console ---\n{output}")
        self.output = output


class GuestTimeoutError(GuestError):
    """The command was still running in the guest when the timeout expired."""


@dataclass(frozen=True)
class GuestResult:
    """The command's exit status in the guest and its console output (stdout+stderr)."""

    returncode: int
    output: str


class Guest(Protocol):
    """The ``guest`` fixture: run_in_guest with the project dir as workdir."""

    def __call__(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        env: Mapping[str, str] | None = None,
        shared: Sequence[Path] = (),
    ) -> GuestResult: ...


def run_in_guest(
    argv: Sequence[str],
    *,
    timeout: float,
    workdir: Path,
    env: Mapping[str, str] | None = None,
    shared: Sequence[Path] = (),
    memory_mib: int = 1024,
    cpus: int = 1,
    cache_dir: Path = CACHE_DIR,
) -> GuestResult:
    """Boot the guest, run ``argv`` in ``workdir`` (shared read-write), return its status.

    ``env`` adds to :data:`BASE_ENV`; ``shared`` names more read-write dirs. One
    virtual CPU by default: on a busy two-core host it boots faster than two. QEMU
    is killed and the job dir removed whatever happens; a timeout raises
    GuestTimeoutError and a guest that never reports a status raises GuestError, both
    carrying the console output.
    """
    if not argv:
        raise ValueError("run_in_guest needs a command")
    image = ensure_image(cache_dir)
    jobs = cache_dir / "jobs"
    jobs.mkdir(parents=True, exist_ok=True)
    _remove_orphaned_jobs(jobs)
    job = Path(tempfile.mkdtemp(prefix="job.", dir=jobs))
    try:
        (job / "owner").write_text(f"{os.getpid()}\n")
        share = job / "share"
        share.mkdir()
        rw = {path.resolve(strict=True) for path in (workdir, *shared)} - {Path("/")}
        # Parents before children, or a parent's mount would hide its child's.
        rw_dirs = sorted(rw, key=lambda path: (len(path.parts), path))
        environment = {**BASE_ENV, **(env or {})}
        _write_job(share, argv, workdir.resolve(strict=True), environment, rw_dirs)
        console = job / "console.log"
        qemu = _qemu_command(image, share, rw_dirs, memory_mib, cpus)
        returncode = _boot(qemu, console, timeout)
        output = console.read_text(errors="replace")
        status = share / "rc"
        if status.exists() and status.read_text().strip():
            return GuestResult(int(status.read_text()), output)
        if returncode is None:
            raise GuestTimeoutError(f"guest command timed out after {timeout:g}s: {argv}", output)
        stage = "while the command ran" if (share / "started").exists() else "before the command"
        raise GuestError(
            f"guest ended without an exit status {stage} (qemu status {returncode})", output
        )
    finally:
        shutil.rmtree(job, ignore_errors=True)


def _write_job(
    share: Path, argv: Sequence[str], workdir: Path, env: Mapping[str, str], rw: list[Path]
) -> None:
    lines = [f"export {name}={shlex.quote(value)}" for name, value in env.items()]
    lines.append(f"cd -- {shlex.quote(str(workdir))} || exit {SETUP_FAILED}")
    lines.append(f"exec {shlex.join(argv)} 2>&1")
    (share / "cmd").write_text("\n".join(lines) + "\n")
    (share / "rw").write_text("".join(f"rw{n}\t{path}\n" for n, path in enumerate(rw)))


def _qemu_command(
    image: GuestImage, share: Path, rw: list[Path], memory_mib: int, cpus: int
) -> list[str]:
    def virtfs(path: Path, tag: str, *extra: str) -> list[str]:
        escaped = str(path).replace(",", ",,")
        options = ["local", f"path={escaped}", f"mount_tag={tag}", "security_model=none", *extra]
        return ["-virtfs", ",".join(options)]

    command = [
        "qemu-system-x86_64",
        *_accelerator(),
        "-machine", "q35",
        "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
        "-serial", "stdio",
        "-smp", str(cpus),
        "-m", str(memory_mib),
        "-kernel", str(image.kernel),
        "-initrd", str(image.initrd),
        "-append", "console=ttyS0 panic=-1 quiet random.trust_cpu=on",
        *virtfs(Path("/"), "hostroot", "readonly=on", "multidevs=remap"),
        *virtfs(share, "job"),
    ]  # fmt: skip
    for n, path in enumerate(rw):
        command += virtfs(path, f"rw{n}", "multidevs=remap")
    return command


def _accelerator() -> list[str]:
    """KVM only where it can run a stock kernel (kvm_intel/kvm_amd), else TCG.

    A paravirtual /dev/kvm (kvm_pvm, as on this machine) cannot, so it is ignored;
    MULTINIC_GUEST_ACCEL=tcg|kvm overrides the choice.
    """
    accel = os.environ.get("MULTINIC_GUEST_ACCEL", "auto")
    if accel == "auto":
        hardware = any(Path("/sys/module", m).is_dir() for m in ("kvm_intel", "kvm_amd"))
        accel = "kvm" if hardware and os.access("/dev/kvm", os.W_OK) else "tcg"
    if accel == "kvm":
        return ["-accel", "kvm", "-cpu", "host"]
    return ["-accel", "tcg,thread=multi", "-cpu", "max"]


def _boot(command: list[str], console: Path, timeout: float) -> int | None:
    """Run QEMU to the guest's power-off; its exit status, or None on timeout (QEMU killed)."""
    with console.open("wb") as out:
        qemu = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        try:
            return qemu.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        finally:
            if qemu.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(qemu.pid, signal.SIGKILL)
                qemu.wait()


def _die_with_parent() -> None:
    # A test process killed hard must not leave a guest running: PR_SET_PDEATHSIG.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)


def _remove_orphaned_jobs(jobs: Path) -> None:
    """Job dirs whose owning process is gone (it was killed before its cleanup)."""
    for job in jobs.glob("job.*"):
        try:
            owner = int((job / "owner").read_text())
        except (FileNotFoundError, ValueError):
            continue  # being created right now, or not ours to judge
        if not _alive(owner):
            shutil.rmtree(job, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds (default 300)")
    parser.add_argument("--workdir", type=Path, default=Path.cwd(), help="shared read-write")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")
    try:
        result = run_in_guest(command, timeout=args.timeout, workdir=args.workdir)
    except GuestError as error:
        print(error, file=sys.stderr)
        return SETUP_FAILED
    sys.stdout.write(result.output)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
