"""``multinic.cni.spawn``: the lean exec plugins use to run their delegates, on real processes."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from multinic.cni.spawn import find_executable, run_executable


def script(directory: Path, name: str, body: str) -> Path:
    path = directory / name
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def open_fds() -> set[str]:
    return {entry.name for entry in Path("/proc/self/fd").iterdir()}


def test_stdin_reaches_the_child_and_both_outputs_come_back(tmp_path: Path) -> None:
    echo = script(
        tmp_path,
        "echo",
        "import sys\n"
        "data = sys.stdin.buffer.read()\n"
        "sys.stdout.buffer.write(data[::-1])\n"
        "sys.stderr.write('note')\n",
    )
    done = run_executable(str(echo), {}, b"abc")
    assert done == (0, b"cba", b"note")


def test_large_input_and_output_do_not_deadlock(tmp_path: Path) -> None:
    # Both directions exceed a pipe's 64 KiB buffer; the child writes stderr
    # before it has read all of stdin.
    chatty = script(
        tmp_path,
        "chatty",
        "import sys\n"
        "sys.stderr.write('e' * 200000); sys.stderr.flush()\n"
        "data = sys.stdin.buffer.read()\n"
        "sys.stdout.buffer.write(data * 2)\n",
    )
    payload = os.urandom(300_000)
    done = run_executable(str(chatty), {}, payload)
    assert done.status == 0
    assert done.stdout == payload * 2
    assert done.stderr == b"e" * 200000


def test_child_that_ignores_stdin_and_exits_does_not_hang(tmp_path: Path) -> None:
    quitter = script(tmp_path, "quitter", "import sys\nsys.exit(3)\n")
    done = run_executable(str(quitter), {}, b"x" * 1_000_000)
    assert done.status == 3


def test_a_signal_is_reported_as_a_negative_status(tmp_path: Path) -> None:
    victim = script(tmp_path, "victim", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
    assert run_executable(str(victim), {}, b"").status == -9


def test_the_child_sees_exactly_the_given_environment(tmp_path: Path) -> None:
    show = script(tmp_path, "show", "import json, os\nprint(json.dumps(dict(os.environ)))\n")
    done = run_executable(str(show), {"CNI_COMMAND": "ADD"}, b"")
    assert b'"CNI_COMMAND": "ADD"' in done.stdout
    assert b"PATH" not in done.stdout


def test_no_file_descriptors_leak(tmp_path: Path) -> None:
    true = script(tmp_path, "true", "pass\n")
    before = open_fds()
    for _ in range(20):
        run_executable(str(true), {}, b"data")
    assert open_fds() == before


def test_missing_executable_raises_and_leaks_nothing(tmp_path: Path) -> None:
    before = open_fds()
    with pytest.raises(FileNotFoundError):
        run_executable(str(tmp_path / "absent"), {}, b"")
    assert open_fds() == before


def test_find_executable_takes_the_first_executable_match(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    (first / "tool").write_text("not executable")
    wanted = script(second, "tool", "pass\n")
    assert find_executable("tool", (str(first), str(second))) == str(wanted)
    assert find_executable("other", (str(first), str(second))) is None
