"""Labs made by tests: unique names, and what is left of one (namespaces, state) after it."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator

from multinic.lab import run
from multinic.lab.netns import NETNS_DIR
from multinic.lab.topology import STATE_ROOT


def leftovers(name: str) -> list[str]:
    """The namespaces with the lab's prefix, and its state dir, that still exist."""
    namespaces = [p.name for p in NETNS_DIR.iterdir() if p.name.startswith(f"{name}-")]
    return namespaces + ([str(STATE_ROOT / name)] if (STATE_ROOT / name).exists() else [])


@contextlib.contextmanager
def temporary_lab() -> Iterator[str]:
    """A fresh lab name; the lab is removed afterwards however the test ended, and must be gone."""
    name = f"t{secrets.token_hex(3)}"
    try:
        yield name
    finally:
        run.down(name)
        assert leftovers(name) == []
