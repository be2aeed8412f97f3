"""Finding plugin executables on CNI_PATH and running them (libcni's invoke)."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from multinic.cni.errors import ErrorCode, InvalidConfigError, PluginError
from multinic.cni.outcome import failure, quote

_TEXT_BUSY_RETRIES = 6
_TEXT_BUSY_PAUSE = 0.2
#: Seconds to collect a killed plugin's last stderr.
_REAP_GRACE = 2.0


def find_plugin(plugin_type: str, search_path: Sequence[Path]) -> Path:
    """The first executable named ``plugin_type`` in the directories of ``search_path``."""
    for directory in search_path:
        candidate = directory / plugin_type
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise InvalidConfigError(
        f"failed to find plugin {plugin_type!r}",
        f"searched CNI_PATH {[str(d) for d in search_path]}",
    )


class PluginExecutor:
    """Runs a plugin executable with CNI_* variables and a config on stdin.

    ``timeout`` bounds one call: a plugin that hangs must not hang the pod's
    start or, worse, its delete; it is killed and the call fails with code 11.
    """

    def __init__(self, timeout: float | None = 120.0) -> None:
        self.timeout = timeout

    def call(
        self,
        plugin_type: str,
        search_path: Sequence[Path],
        cni_env: Mapping[str, str],
        stdin: bytes,
    ) -> bytes:
        """Run the plugin of type ``plugin_type``; its stdout, or the error it reported.

        Executes it from ``search_path``; an executor that can run some plugin
        types in this process (the node daemon's) overrides this.
        """
        return self.execute(find_plugin(plugin_type, search_path), cni_env, stdin)

    def execute(self, plugin: Path, cni_env: Mapping[str, str], stdin: bytes) -> bytes:
        """Run ``plugin`` and return its stdout, or raise the error it reported."""
        try:
            done = self._run(plugin, {**os.environ, **cni_env}, stdin)
        except subprocess.TimeoutExpired as exc:
            raise PluginError(
                plugin.name,
                f"timed out after {self.timeout} s",
                quote(exc.stderr or b""),
                code=ErrorCode.TRY_AGAIN_LATER,
            ) from exc
        except OSError as exc:
            raise PluginError(
                plugin.name, "cannot execute plugin", str(exc), code=ErrorCode.INTERNAL
            ) from exc
        if done.returncode != 0:
            raise failure(plugin.name, done.returncode, done.stdout, done.stderr)
        if done.stderr:
            # A plugin's diagnostics on success still belong in the runtime's log.
            sys.stderr.buffer.write(done.stderr)
            sys.stderr.buffer.flush()
        return done.stdout

    def _run(
        self, plugin: Path, env: Mapping[str, str], stdin: bytes
    ) -> subprocess.CompletedProcess[bytes]:
        # A plugin just written by an installer can be "text file busy" for a moment.
        for attempt in range(_TEXT_BUSY_RETRIES):
            try:
                return self._run_once(plugin, env, stdin)
            except OSError as exc:
                if exc.errno != errno.ETXTBSY or attempt == _TEXT_BUSY_RETRIES - 1:
                    raise
                time.sleep(_TEXT_BUSY_PAUSE)
        raise AssertionError("unreachable")

    def _run_once(
        self, plugin: Path, env: Mapping[str, str], stdin: bytes
    ) -> subprocess.CompletedProcess[bytes]:
        # Its own process group, so a timeout kills what the plugin started too
        # (an IPAM plugin it delegated to), not only the plugin itself.
        with subprocess.Popen(
            [str(plugin)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
        ) as proc:
            try:
                stdout, stderr = proc.communicate(stdin, timeout=self.timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                stderr = b""
                # Something that left the group may still hold the pipes: do not wait on it.
                with contextlib.suppress(subprocess.TimeoutExpired):
                    _, stderr = proc.communicate(timeout=_REAP_GRACE)
                raise subprocess.TimeoutExpired(
                    proc.args, self.timeout or 0, stderr=stderr
                ) from None
            return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
