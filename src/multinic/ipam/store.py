"""The one compare-and-swap interface every cluster-wide IPAM store implements.

A store holds small documents under string keys. Each document carries the
store-wide revision of its last change (0 when the key is absent), so callers
work as snapshot -> compute -> commit-with-expected-revisions, and a commit
fails as a whole when any document moved meanwhile. Revisions only grow, so a
key deleted and written again never matches a stale snapshot. A commit answers
the revisions it wrote, so a caller that keeps documents between operations
(the node daemon, ``doc_cache``) can guard its next commit without reading
first.

Revisions are per document rather than one per pool on purpose: one revision
for a whole pool would make every node's commit conflict with every other's,
which is exactly the contention of Whereabouts' single pool object. Callers
choose documents so that nodes rarely touch the same ones (see ``blocks``).

:func:`retry_cas` runs one snapshot/compute/commit attempt after another with
jittered exponential backoff until it succeeds or the deadline passes; an
unreachable store and a deadline spent on conflicts both become CNI code 11.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Mapping

from multinic.cni.errors import TryAgainLaterError
from multinic.records import NamedTuple, Protocol, TypeVar

_T = TypeVar("_T")

#: Backoff between attempts: full jitter over an exponentially growing cap.
BACKOFF_BASE = 0.004
BACKOFF_CAP = 0.25


#: What a commit wrote: each changed key's new revision (0 for a key it deleted). A key
#: may be missing when the store could not learn its revision (then it must be read).
Written = dict[str, int]


class Versioned(NamedTuple):
    """One document as read: its revision (0 = absent) and its bytes (None = absent)."""

    revision: int
    value: bytes | None


ABSENT = Versioned(0, None)


class StoreError(Exception):
    """A store failed in a way retrying will not fix (bad config, corrupt data, a bug)."""


class StoreUnavailableError(StoreError):
    """The store cannot be reached or is busy right now; a later attempt may succeed."""


class Conflict(Exception):  # noqa: N818 - a signal between an attempt and retry_cas, not an error
    """An attempt's commit lost a race: snapshot again and recompute."""


class Store(Protocol):
    """Documents under keys, read in snapshots and changed by compare-and-swap."""

    def snapshot(self, keys: Iterable[str], *, deadline: float) -> dict[str, Versioned]:
        """The documents at ``keys`` read at one revision; absent keys map to ABSENT."""
        ...

    def scan(self, prefix: str, *, deadline: float) -> dict[str, Versioned]:
        """Every document whose key starts with ``prefix``, read at one revision."""
        ...

    def scan_range(self, start: str, end: str, *, deadline: float) -> dict[str, Versioned]:
        """Every document with ``start <= key < end``, read at one revision."""
        ...

    def commit(
        self,
        expected: Mapping[str, int],
        changes: Mapping[str, bytes | None],
        *,
        deadline: float,
    ) -> Written | None:
        """Apply ``changes`` (None deletes) atomically if every key in ``expected``
        still has the given revision (0 = absent), and say what it wrote; None when
        one moved (nothing is written then). Test the answer with ``is None``: a
        commit that changes nothing writes ``{}``."""
        ...

    def close(self) -> None:
        """Release connections and files."""
        ...


def check_commit(expected: Mapping[str, int], changes: Mapping[str, bytes | None]) -> None:
    """Every changed key must be guarded by an expected revision: no blind writes."""
    unguarded = sorted(set(changes) - set(expected))
    if unguarded:
        raise StoreError(f"commit would change unguarded keys: {unguarded}")


def prefix_end(prefix: str) -> str:
    """The smallest key greater than every key starting with ``prefix``."""
    if not prefix:
        raise StoreError("an empty prefix has no end")
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def deadline_after(seconds: float) -> float:
    """A deadline on the monotonic clock, ``seconds`` from now."""
    return time.monotonic() + seconds


def retry_cas(
    attempt: Callable[[], _T],
    deadline: float,
    *,
    what: str,
    rand: Callable[[], float] = random.random,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> _T:
    """Run ``attempt`` until it returns, retrying on Conflict and StoreUnavailableError.

    Between attempts it sleeps a random time up to a cap that doubles each
    round (full jitter: racing nodes spread out instead of colliding again in
    step). When the next attempt could not start before ``deadline``, it raises
    TryAgainLaterError (CNI code 11) naming ``what`` and the last cause.
    """
    cap = BACKOFF_BASE
    while True:
        try:
            return attempt()
        except Conflict:
            cause = "lost every compare-and-swap race"
            last: Exception | None = None
        except StoreUnavailableError as exc:
            cause, last = f"store unavailable: {exc}", exc
        pause = rand() * cap
        if clock() + pause >= deadline:
            raise TryAgainLaterError(f"{what}: gave up at the deadline", cause) from last
        sleep(pause)
        cap = min(cap * 2, BACKOFF_CAP)
