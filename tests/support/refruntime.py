"""Run ``refruntime``: the reference runtime library (libcni) behind a CLI.

The program (``third_party/cni/refruntime``, ours, about 120 lines: add, check,
del, gc and status) is built against libcni at the version pinned in
``third_party/cni/go.mod`` by ``scripts/build-third-party``.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from tests.support import third_party


def refruntime_binary() -> Path:
    return third_party.binary("refruntime")


def refruntime(
    binary: Path, verb: str, network: str, args: str | Sequence[str], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run ``refruntime VERB NETWORK ARGS`` with the CNI_* / NETCONFPATH env given.

    ``args`` is the netns path for add/check/del (a string), the valid
    attachments (``CONTAINERID/IFNAME`` each) for gc, nothing for status.
    """
    return subprocess.run(
        [str(binary), verb, network, *([args] if isinstance(args, str) else args)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
