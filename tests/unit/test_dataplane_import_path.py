"""The data plane is on every plugin's import path: guard it like the CNI core.

A separate file (not a new row in test_import_path.py) because that file had
another helper's uncommitted edits when this was written; the HEAVY list is shared.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.unit.test_import_path import HEAVY

#: Entering a namespace needs ctypes (setns) and a thread, loaded only then; socket.py is
#: avoided altogether (the C module _socket has all we use).
LAZY = ("ctypes", "threading", "socket")

DATAPLANE_MODULES = (
    "multinic.dataplane",
    "multinic.dataplane.netlink",
    "multinic.dataplane.netns",
    "multinic.dataplane.links",
    "multinic.dataplane.bridge",
    "multinic.dataplane.addresses",
    "multinic.dataplane.routes",
    "multinic.dataplane.rules",
    "multinic.dataplane.sysctl",
    "multinic.dataplane.announce",
)


@pytest.mark.parametrize("module", DATAPLANE_MODULES)
def test_dataplane_imports_nothing_heavy(module: str) -> None:
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
    assert sorted(loaded & {*HEAVY, *LAZY}) == []
