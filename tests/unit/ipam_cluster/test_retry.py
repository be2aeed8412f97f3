"""retry_cas: jittered exponential backoff under a deadline (a fake clock, no sleeping)."""

from __future__ import annotations

import pytest

from multinic.cni.errors import ErrorCode, TryAgainLaterError
from multinic.ipam.store import (
    BACKOFF_BASE,
    BACKOFF_CAP,
    Conflict,
    StoreUnavailableError,
    retry_cas,
)


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_returns_the_first_success_without_sleeping() -> None:
    fake = FakeTime()
    assert retry_cas(lambda: 7, 1.0, what="x", sleep=fake.sleep, clock=fake.clock) == 7
    assert fake.sleeps == []


def test_conflicts_back_off_with_doubling_caps_then_succeed() -> None:
    fake = FakeTime()
    outcomes = [Conflict(), Conflict(), StoreUnavailableError("down"), Conflict(), "done"]

    def attempt() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    # rand() == 1.0 sleeps the whole cap: the caps themselves are visible.
    got = retry_cas(attempt, 100.0, what="x", rand=lambda: 1.0, sleep=fake.sleep, clock=fake.clock)
    assert got == "done"
    assert fake.sleeps == [BACKOFF_BASE * 2**n for n in range(4)]


def test_jitter_stays_under_the_cap() -> None:
    fake = FakeTime()
    count = 0

    def attempt() -> None:
        nonlocal count
        count += 1
        if count < 30:
            raise Conflict

    retry_cas(attempt, 1e9, what="x", rand=lambda: 0.5, sleep=fake.sleep, clock=fake.clock)
    assert max(fake.sleeps) == BACKOFF_CAP * 0.5
    assert all(s > 0 for s in fake.sleeps)


def test_deadline_turns_conflicts_into_code_11() -> None:
    fake = FakeTime()

    def attempt() -> None:
        raise Conflict

    with pytest.raises(TryAgainLaterError) as caught:
        retry_cas(attempt, 1.0, what="allocating", sleep=fake.sleep, clock=fake.clock)
    assert caught.value.code == ErrorCode.TRY_AGAIN_LATER
    assert "allocating" in caught.value.msg
    assert "compare-and-swap" in caught.value.details
    assert fake.now < 1.0  # it never sleeps past the deadline


def test_deadline_turns_unavailability_into_code_11_with_the_cause() -> None:
    fake = FakeTime()

    def attempt() -> None:
        raise StoreUnavailableError("no etcd member answered")

    with pytest.raises(TryAgainLaterError) as caught:
        retry_cas(attempt, 0.5, what="x", sleep=fake.sleep, clock=fake.clock)
    assert "no etcd member answered" in caught.value.details
    assert isinstance(caught.value.__cause__, StoreUnavailableError)


def test_other_errors_are_not_retried() -> None:
    fake = FakeTime()
    calls = 0

    def attempt() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        retry_cas(attempt, 10.0, what="x", sleep=fake.sleep, clock=fake.clock)
    assert calls == 1
