"""The lab tests' fixture: a unique lab name, and the lab removed however the test ends."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from multinic.lab import run
from tests.e2e.lab.helpers import left


@pytest.fixture
def lab_name() -> Iterator[str]:
    name = f"t{secrets.token_hex(3)}"
    try:
        yield name
    finally:
        run.down(name)
        assert left(name) == []
