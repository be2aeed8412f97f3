"""The executables install-plugins writes: self-contained, and lean from their first line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from multinic.plugins.install import executable_text, install_plugins


def test_the_collector_is_off_before_the_plugin_is_imported() -> None:
    lines = executable_text("multinic-bridge").splitlines()
    assert lines[0].endswith(" -IS")
    assert lines.index("gc.disable()") < lines.index("from multinic.plugins.bridge import main")


def test_an_installed_executable_answers_version_with_a_bare_environment(tmp_path: Path) -> None:
    (bridge,) = (p for p in install_plugins(str(tmp_path)) if p.endswith("/multinic-bridge"))
    # Run as a runtime runs it: by its #! line, with nothing but CNI_* in the environment.
    done = subprocess.run(
        [bridge], env={"CNI_COMMAND": "VERSION"}, capture_output=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert "1.0.0" in answer["supportedVersions"]
