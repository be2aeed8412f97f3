"""A plugin executable's import path stays lean: a structural guard, not a timing test.

Every pod start runs a plugin, so whatever ``multinic.cni.skel`` imports is paid
on every pod start. These modules each cost as much as the whole plugin entry.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = (
    "asyncio",
    "click",
    "dataclasses",
    "inspect",
    "logging",
    "pathlib",
    "pyroute2",
    "rich",
    "subprocess",
    "tempfile",
    "traceback",
)

PLUGIN_PATH_MODULES = (
    "multinic.cni.skel",
    "multinic.cni.types",
    "multinic.cni.config",
    "multinic.cni.spawn",
    "multinic.plugins.delegate",
    "multinic.plugins.registry",
)


@pytest.mark.parametrize("module", PLUGIN_PATH_MODULES)
def test_plugin_path_imports_nothing_heavy(module: str) -> None:
    probe = (
        "import sys, json; before = set(sys.modules); "
        f"import {module}; "
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = set(json.loads(done.stdout))
    assert module in loaded  # the probe really imported it
    assert sorted(loaded & set(HEAVY)) == []
