"""Run ``refruntime``: the reference runtime library (libcni) behind a CLI.

The program (``third_party/cni/refruntime``, ours, about 80 lines) is built
against libcni at the version pinned in ``third_party/cni/go.mod`` by
``scripts/build-third-party``.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.support import third_party


def refruntime_binary() -> Path:
    return third_party.binary("refruntime")


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
