"""Running multinic's own plugins inside the calling process.

The node daemon serves every pod's CNI requests from one long-lived process:
spawning a Python interpreter per plugin call would cost it ~20 ms each for
nothing, since the plugin objects are importable right here. Plugins of other
types (the reference ones, anything on CNI_PATH) are still executed.

Plugins never assume they own the process (no global state, netns entered by
their own worker threads, the environment passed in), so several requests can
run them concurrently from different threads. What an in-process call cannot
have is the executor's timeout: a thread cannot be killed. Our plugins bound
their own waits (netlink, store deadlines) instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from multinic.cni.invoke import PluginExecutor
from multinic.cni.outcome import failure
from multinic.cni.skel import run
from multinic.plugins.registry import is_ours, load_plugin


class InProcessExecutor(PluginExecutor):
    """A :class:`PluginExecutor` that calls multinic's plugin types in-process."""

    def call(
        self,
        plugin_type: str,
        search_path: Sequence[Path],
        cni_env: Mapping[str, str],
        stdin: bytes,
    ) -> bytes:
        if not is_ours(plugin_type):
            return super().call(plugin_type, search_path, cni_env, stdin)
        status, stdout = run(load_plugin(plugin_type), cni_env, stdin)
        if status != 0:
            raise failure(plugin_type, status, stdout, b"")
        return stdout
