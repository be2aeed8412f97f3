"""The lab tests' fixture: a unique lab name, and the lab removed however the test ends."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.labs import temporary_lab


@pytest.fixture
def lab_name() -> Iterator[str]:
    with temporary_lab() as name:
        yield name
