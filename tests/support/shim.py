"""Running the installed ``multinic-shim`` as a container runtime does, for tests."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any


def run_shim(
    bin_dir: Path,
    socket_path: Path,
    command: str,
    netns: Path,
    container_id: str,
    cni_args: str = "",
    **conf: Any,
) -> subprocess.CompletedProcess[bytes]:
    """Execute the shim with a bare CNI environment and its config on stdin."""
    env = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": container_id,
        "CNI_NETNS": str(netns),
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(bin_dir),
        "CNI_ARGS": cni_args,
    }
    stdin = {
        "cniVersion": "1.1.0",
        "name": "multinic",
        "type": "multinic-shim",
        "socketPath": str(socket_path),
        **conf,
    }
    return subprocess.run(
        [str(bin_dir / "multinic-shim")],
        input=json.dumps(stdin).encode(),
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
