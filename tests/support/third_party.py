"""Where the third-party programs our tests run live once built.

``scripts/build-third-party`` builds them from their Go modules at the versions
in ``third_party/programs`` into ``$MULTINIC_THIRD_PARTY`` (default
/var/cache/multinic/third-party), one directory per program and version.
`make test` builds the ``test`` group first; a program that is missing here is
a broken set-up, so this fails with the command that fixes it.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import NamedTuple

from multinic.lab.programs import third_party_cache

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "third_party" / "programs"


class Program(NamedTuple):
    name: str
    version: str
    group: str


def cache_dir() -> Path:
    return third_party_cache()


@cache
def programs() -> dict[str, Program]:
    table: dict[str, Program] = {}
    for line in TABLE.read_text().splitlines():
        fields = line.split()
        if fields and not fields[0].startswith("#"):
            table[fields[0]] = Program(fields[0], fields[1], fields[2])
    return table


def version(name: str) -> str:
    return programs()[name].version


def directory(name: str) -> Path:
    """The directory holding program ``name`` (several binaries for cni-plugins)."""
    program = programs()[name]
    where = cache_dir() / f"{program.name}-{program.version}"
    if not (where / ".fingerprint").is_file():
        raise RuntimeError(
            f"{program.name} {program.version} is not built in {where}: "
            f"run scripts/build-third-party {program.group}"
        )
    return where


def binary(name: str) -> Path:
    """The path of program ``name``'s executable."""
    return directory(name) / name


def reference_plugins() -> Path:
    """The CNI reference plugins' directory (bridge, host-local, tuning, ... in one).

    Tests and benchmarks use this instead of Debian's /usr/lib/cni (1.1.1,
    no CNI 1.1, no GC or STATUS), which is no longer installed for them.
    """
    return directory("cni-plugins")
