"""Build and run ``refruntime``: the reference runtime library (libcni) behind a CLI.

Debian ships libcni as Go source (golang-github-appc-cni-dev) but no cnitool,
so the tests compile the small program beside this file against it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

GO_SOURCE = Path(__file__).with_name("refruntime.go")
DEBIAN_GOPATH = Path("/usr/share/gocode")


def build_refruntime(work_dir: Path) -> Path:
    """Compile refruntime into ``work_dir`` (GOPATH mode: Debian's packaged sources only)."""
    libcni = DEBIAN_GOPATH / "src/github.com/containernetworking/cni/libcni"
    if not libcni.is_dir():
        raise RuntimeError(f"libcni source missing at {libcni}: run make system-deps")
    source_dir = work_dir / "src"
    source_dir.mkdir(parents=True)
    (source_dir / "main.go").write_bytes(GO_SOURCE.read_bytes())
    binary = work_dir / "refruntime"
    env = {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": str(DEBIAN_GOPATH),
        "GOCACHE": str(work_dir / "gocache"),
        "GOFLAGS": "",
        "CGO_ENABLED": "0",
    }
    subprocess.run(
        ["go", "build", "-o", str(binary), "."],
        cwd=source_dir,
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
    )
    return binary


def refruntime(
    binary: Path, verb: str, network: str, netns: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run ``refruntime VERB NETWORK NETNS`` with the CNI_* / NETCONFPATH env given."""
    return subprocess.run(
        [str(binary), verb, network, netns],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
