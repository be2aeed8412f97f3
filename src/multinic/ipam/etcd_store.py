"""The cluster store: the Store protocol on etcd v3.

A document is one etcd key under a prefix; its revision is the key's
``mod_revision`` (etcd's store-wide counter, so it only grows, and an absent
key compares as 0). A commit is one etcd transaction: compare every expected
``mod_revision``, then put or delete every change — all or nothing, decided by
the cluster's leader, so no two nodes can both win. The answer's header
revision is the ``mod_revision`` of every key the transaction put.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from multinic.ipam.etcd_client import (
    DEFAULT_TIMEOUT,
    NO_SECURITY,
    EtcdClient,
    Security,
    b64,
    decode_kvs,
)
from multinic.ipam.store import (
    ABSENT,
    StoreError,
    Versioned,
    Written,
    check_commit,
    prefix_end,
)
from multinic.records import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

DEFAULT_PREFIX = "/multinic/ipam/"


class EtcdStore:
    """Documents as etcd keys under ``prefix``."""

    def __init__(
        self,
        endpoints: list[str],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        prefix: str = DEFAULT_PREFIX,
        security: Security = NO_SECURITY,
    ) -> None:
        if not prefix:
            raise StoreError("etcd: the key prefix must not be empty")
        self.prefix = prefix
        self.client = EtcdClient(endpoints, timeout=timeout, security=security)

    def snapshot(self, keys: Iterable[str], *, deadline: float) -> dict[str, Versioned]:
        wanted = list(dict.fromkeys(keys))
        out = dict.fromkeys(wanted, ABSENT)
        if not wanted:
            return out
        # One transaction of plain reads: every key read at the same revision.
        reads = [{"request_range": {"key": b64(self._key(k))}} for k in wanted]
        result = self.client.txn([], reads, deadline=deadline)
        for response in result.responses:
            out.update(self._documents(response.get("response_range", {})))
        return out

    def scan(self, prefix: str, *, deadline: float) -> dict[str, Versioned]:
        return self.scan_range(prefix, prefix_end(prefix), deadline=deadline)

    def scan_range(self, start: str, end: str, *, deadline: float) -> dict[str, Versioned]:
        answer = self.client.call(
            "/v3/kv/range",
            {"key": b64(self._key(start)), "range_end": b64(self._key(end))},
            deadline=deadline,
        )
        return self._documents(answer)

    def commit(
        self,
        expected: Mapping[str, int],
        changes: Mapping[str, bytes | None],
        *,
        deadline: float,
    ) -> Written | None:
        check_commit(expected, changes)
        compare = [
            {
                "key": b64(self._key(key)),
                "result": "EQUAL",
                "target": "MOD",
                "mod_revision": str(revision),
            }
            for key, revision in expected.items()
        ]
        ops: list[dict[str, Any]] = []
        for key, value in changes.items():
            if value is None:
                ops.append({"request_delete_range": {"key": b64(self._key(key))}})
            else:
                ops.append({"request_put": {"key": b64(self._key(key)), "value": b64(value)}})
        result = self.client.txn(compare, ops, deadline=deadline)
        if not result.succeeded:
            return None
        # Every key a transaction puts gets the transaction's revision as its mod_revision.
        return {k: 0 if v is None else result.revision for k, v in changes.items()}

    def close(self) -> None:
        self.client.close()

    def _key(self, key: str) -> bytes:
        return (self.prefix + key).encode()

    def _documents(self, answer: dict[str, Any]) -> dict[str, Versioned]:
        skip = len(self.prefix.encode())
        return {
            kv.key[skip:].decode(): Versioned(kv.mod_revision, kv.value)
            for kv in decode_kvs(answer)
        }
