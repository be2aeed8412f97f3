"""A small etcd v3 client over etcd's JSON gateway, stdlib only (``http.client``).

etcd (3.4 and later) serves its KV API as JSON on the client port under
``/v3/``: ``/v3/kv/range`` and ``/v3/kv/txn`` with base64 keys and values and
int64 fields as decimal strings. That is all a compare-and-swap store needs, so
this client has no dependencies and costs a plugin only ``http.client`` to import
(see docs/ipam-cluster.md for why not the ``etcd3`` package).

Endpoints are tried in turn: a member that refuses, times out or answers
"unavailable" is skipped for the next one, and the client stays on the member
that worked. Each request is bounded by the per-request timeout and by the
caller's deadline, whichever comes first.
"""

from __future__ import annotations

import base64
import http.client
import json
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

from multinic.ipam.store import StoreError, StoreUnavailableError
from multinic.records import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from typing import Any

DEFAULT_TIMEOUT = 2.0

#: gRPC status codes etcd answers when the cluster (not the request) is at fault:
#: CANCELLED (a member shutting down), UNKNOWN (e.g. "leader changed"),
#: DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED ("too many requests"), ABORTED, UNAVAILABLE.
_TRANSIENT_GRPC_CODES = frozenset({1, 2, 4, 8, 10, 14})


class KeyValue(NamedTuple):
    """One key as etcd returns it."""

    key: bytes
    value: bytes
    mod_revision: int


class TxnResult(NamedTuple):
    """A transaction's outcome: whether the compares held, and each op's response."""

    succeeded: bool
    responses: list[dict[str, Any]]


class Endpoint(NamedTuple):
    """Where one etcd member serves clients."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def parse_endpoint(text: str) -> Endpoint:
    """``http://host:port`` or ``host:port``; TLS endpoints are not supported yet."""
    url = urlsplit(text if "//" in text else f"http://{text}")
    if url.scheme != "http":
        raise StoreError(f"etcd endpoint {text!r}: only http:// is supported")
    try:
        port = url.port or 2379
    except ValueError as exc:
        raise StoreError(f"etcd endpoint {text!r}: bad port") from exc
    if not url.hostname:
        raise StoreError(f"etcd endpoint {text!r}: no host")
    return Endpoint(url.hostname, port)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


class EtcdClient:
    """Range and Txn against a list of etcd members, with failover."""

    def __init__(self, endpoints: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT) -> None:
        if not endpoints:
            raise StoreError("etcd: no endpoints configured")
        if timeout <= 0:
            raise StoreError(f"etcd: timeout must be positive, not {timeout}")
        self.endpoints = tuple(parse_endpoint(e) for e in endpoints)
        self.timeout = timeout
        self._current = 0
        self._conns: dict[Endpoint, http.client.HTTPConnection] = {}

    def range(
        self, key: bytes, range_end: bytes | None = None, *, deadline: float
    ) -> list[KeyValue]:
        """The keys in ``[key, range_end)``, or just ``key`` without ``range_end``."""
        body: dict[str, Any] = {"key": b64(key)}
        if range_end is not None:
            body["range_end"] = b64(range_end)
        return decode_kvs(self.call("/v3/kv/range", body, deadline=deadline))

    def txn(
        self,
        compare: list[dict[str, Any]],
        success: list[dict[str, Any]],
        failure: list[dict[str, Any]] | None = None,
        *,
        deadline: float,
    ) -> TxnResult:
        """One transaction: if every compare holds run ``success``, else ``failure``."""
        body = {"compare": compare, "success": success, "failure": failure or []}
        answer = self.call("/v3/kv/txn", body, deadline=deadline)
        return TxnResult(bool(answer.get("succeeded", False)), list(answer.get("responses", [])))

    def call(self, path: str, body: dict[str, Any], *, deadline: float) -> dict[str, Any]:
        """POST ``body`` to the first member that answers; StoreUnavailableError if none does."""
        payload = json.dumps(body).encode()
        failures = []
        for step in range(len(self.endpoints)):
            index = (self._current + step) % len(self.endpoints)
            endpoint = self.endpoints[index]
            timeout = min(self.timeout, deadline - time.monotonic())
            if timeout <= 0:
                failures.append("deadline reached")
                break
            try:
                answer = self._post(endpoint, path, payload, timeout)
            except StoreUnavailableError as exc:
                failures.append(f"{endpoint}: {exc}")
                continue
            self._current = index
            return answer
        raise StoreUnavailableError("no etcd member answered (" + "; ".join(failures) + ")")

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()

    def _post(
        self, endpoint: Endpoint, path: str, payload: bytes, timeout: float
    ) -> dict[str, Any]:
        conn = self._conns.get(endpoint)
        if conn is None:
            conn = self._conns[endpoint] = http.client.HTTPConnection(
                endpoint.host, endpoint.port, timeout=timeout
            )
        try:
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
            conn.request("POST", path, payload, {"Content-Type": "application/json"})
            response = conn.getresponse()
            status, data = response.status, response.read()
        except (OSError, http.client.HTTPException) as exc:
            # A broken or timed-out connection cannot be reused: open a fresh one next time.
            conn.close()
            del self._conns[endpoint]
            raise StoreUnavailableError(f"{type(exc).__name__}: {exc}") from exc
        return _decode_answer(status, data)


def _decode_answer(status: int, data: bytes) -> dict[str, Any]:
    try:
        answer = json.loads(data)
    except ValueError as exc:
        if status >= 500:
            raise StoreUnavailableError(f"HTTP {status}") from exc
        raise StoreError(f"etcd answered HTTP {status} with no JSON: {data[:200]!r}") from exc
    if not isinstance(answer, dict):
        raise StoreError(f"etcd answered HTTP {status} with {type(answer).__name__}")
    if status == 200 and "error" not in answer:
        return answer
    code = answer.get("code")
    message = answer.get("message") or answer.get("error") or f"HTTP {status}"
    if code in _TRANSIENT_GRPC_CODES or (code is None and status >= 500):
        raise StoreUnavailableError(f"etcd: {message}")
    raise StoreError(f"etcd refused the request (code {code}): {message}")


def decode_kvs(answer: dict[str, Any]) -> list[KeyValue]:
    """The ``kvs`` of a range response (etcd leaves the field out when empty)."""
    return [
        KeyValue(unb64(kv["key"]), unb64(kv.get("value", "")), int(kv.get("mod_revision", 0)))
        for kv in answer.get("kvs", [])
    ]
