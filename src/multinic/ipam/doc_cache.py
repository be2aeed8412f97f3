"""Documents a process keeps between operations, so a warm ADD or DEL skips its read.

The node daemon serves one node's ADDs and DELs, and nothing but that node
changes the node's block document in the normal course. So the daemon keeps
each document as its own last commit wrote it (the bytes and the revision the
store answered) and the next operation computes from that copy and commits it
guarded by that revision: one request instead of a read and a commit.

A copy is only ever a guess. Every document an operation decides from is
guarded by the revision it was computed from, so a stale copy (another node
borrowed an address, ``multinic ipam release`` or GC ran, a second process
served the node) makes the commit fail; the caller then drops the copies and
reads afresh. Decisions that commit nothing cannot be checked that way, so
they never rest on a copy alone: an ADD that finds the attachment already
holding an address, and a DEL that finds nothing to release, read again
first (see ``blocks.allocate`` and ``blocks.release``).

The copies are bytes, decoded anew by every user, so concurrent requests never
share a mutable document. The cache is bounded; the oldest copies go first.
"""

from __future__ import annotations

from _thread import allocate_lock
from collections.abc import Iterable, Mapping

from multinic.ipam.store import Versioned

#: Copies kept per cache: a node holds one document per pool it allocates from.
DEFAULT_LIMIT = 256


class DocumentCache:
    """Store documents as this process last read or wrote them, with their revisions."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self._docs: dict[str, Versioned] = {}
        # _thread, not threading: this module is on the plugin executable's start-up path.
        self._lock = allocate_lock()

    def recall(self, keys: Iterable[str]) -> dict[str, Versioned] | None:
        """The copies of every one of ``keys``; None unless all of them are kept."""
        with self._lock:
            try:
                return {key: self._docs[key] for key in keys}
            except KeyError:
                return None

    def remember(self, docs: Mapping[str, Versioned]) -> None:
        """Keep ``docs``; a copy already newer than the one given stays (revisions only
        grow). An absent document is not kept, and drops its key's copy."""
        with self._lock:
            for key, doc in docs.items():
                kept = self._docs.pop(key, None)
                if doc.value is None:
                    continue
                self._docs[key] = doc if kept is None or kept.revision <= doc.revision else kept
            while len(self._docs) > self.limit:
                del self._docs[next(iter(self._docs))]

    def forget(self, keys: Iterable[str]) -> None:
        """Drop the copies of ``keys`` (they proved stale, or their use is unknown)."""
        with self._lock:
            for key in keys:
                self._docs.pop(key, None)

    def __len__(self) -> int:
        return len(self._docs)
