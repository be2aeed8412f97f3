"""Where the lab finds the third-party programs it runs (etcd, kube-apiserver, ...).

``scripts/build-third-party`` builds them from their Go modules at the versions
``third_party/programs`` pins, into ``$MULTINIC_THIRD_PARTY`` (default
/var/cache/multinic/third-party), one directory per program and version
with a ``.fingerprint`` once complete. Else the program on the PATH.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from multinic.lab.errors import ProgramMissingError


def third_party_cache() -> Path:
    """Where ``scripts/build-third-party`` puts the programs it builds."""
    return Path(os.environ.get("MULTINIC_THIRD_PARTY", "/var/cache/multinic/third-party"))


def find_program(name: str) -> Path:
    """The newest complete build of ``name`` in the cache, else ``name`` on the PATH."""
    built = sorted(
        (
            p
            for p in third_party_cache().glob(f"{name}-*/{name}")
            if (p.parent / ".fingerprint").is_file()
        ),
        reverse=True,
    )
    found = built[0] if built else shutil.which(name)
    if found is None:
        raise ProgramMissingError(
            f"no {name}: none built in {third_party_cache()} "
            f"(scripts/build-third-party {name}) and none on the PATH"
        )
    return Path(found)
