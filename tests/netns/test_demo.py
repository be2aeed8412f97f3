"""``make demo``'s main job runs end to end and leaves nothing behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from multinic.lab import netns as lab

MULTINIC = Path(sys.executable).parent / "multinic"


def test_demo_runs_add_check_del_and_cleans_up() -> None:
    namespaces_before = set(lab.NETNS_DIR.iterdir()) if lab.NETNS_DIR.exists() else set()
    links_before = lab.link_names()

    done = subprocess.run(
        [str(MULTINIC), "demo"], capture_output=True, text=True, check=False, timeout=120
    )

    assert done.returncode == 0, done.stdout + done.stderr
    for step in ("ADD ok", "CHECK ok", "DEL ok", "nothing left behind"):
        assert step in done.stdout
    assert "198.18.0." in done.stdout
    namespaces_after = set(lab.NETNS_DIR.iterdir()) if lab.NETNS_DIR.exists() else set()
    assert namespaces_after == namespaces_before
    assert lab.link_names() == links_before
