"""A small etcd v3 client over etcd's JSON gateway, stdlib only (:mod:`multinic.minihttp`).

etcd (3.4 and later) serves its KV API as JSON on the client port under
``/v3/``: ``/v3/kv/range`` and ``/v3/kv/txn`` with base64 keys and values and
int64 fields as decimal strings. That is all a compare-and-swap store needs, so
this client has no dependencies and costs a plugin only :mod:`multinic.minihttp`
to import (``ssl`` too with TLS)
(see docs/ipam-cluster.md for why not the ``etcd3`` package).

Endpoints are tried in turn: a member that refuses, times out or answers
"unavailable" is skipped for the next one, and the client stays on the member
that worked. Each request is bounded by the per-request timeout and by the
caller's deadline, whichever comes first.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

from multinic.ipam.store import StoreError, StoreUnavailableError
from multinic.minihttp import Connection
from multinic.records import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import ssl
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
    #: the store's revision after the transaction (what its puts were written at)
    revision: int = 0


class Endpoint(NamedTuple):
    """Where one etcd member serves clients."""

    host: str
    port: int
    tls: bool = False

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


class Security(NamedTuple):
    """TLS files (PEM paths) and user/password authentication; all optional."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    username: str | None = None
    password: str | None = None


NO_SECURITY = Security()

#: gRPC UNAUTHENTICATED: etcd's answer to an expired or unknown auth token.
_UNAUTHENTICATED = 16


def parse_endpoint(text: str, *, tls: bool = False) -> Endpoint:
    """``http://host:port``, ``https://host:port`` or ``host:port`` (https when ``tls``)."""
    url = urlsplit(text if "//" in text else f"{'https' if tls else 'http'}://{text}")
    if url.scheme not in ("http", "https"):
        raise StoreError(f"etcd endpoint {text!r}: only http:// and https:// are supported")
    try:
        port = url.port or 2379
    except ValueError as exc:
        raise StoreError(f"etcd endpoint {text!r}: bad port") from exc
    if not url.hostname:
        raise StoreError(f"etcd endpoint {text!r}: no host")
    return Endpoint(url.hostname, port, url.scheme == "https")


def tls_context(security: Security) -> ssl.SSLContext:
    """Verifies members against ``ca_file`` (the system's CAs without one); presents the
    client certificate when one is given."""
    import ssl  # only with TLS: loading OpenSSL costs a plain-http plugin start milliseconds

    try:
        context = ssl.create_default_context(cafile=security.ca_file)
        if security.cert_file:
            context.load_cert_chain(security.cert_file, security.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise StoreError(f"etcd: cannot load the TLS files: {type(exc).__name__}: {exc}") from exc
    return context


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


class EtcdClient:
    """Range and Txn against a list of etcd members, with failover."""

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        security: Security = NO_SECURITY,
    ) -> None:
        if not endpoints:
            raise StoreError("etcd: no endpoints configured")
        if timeout <= 0:
            raise StoreError(f"etcd: timeout must be positive, not {timeout}")
        tls = bool(security.ca_file or security.cert_file)
        self.endpoints = tuple(parse_endpoint(e, tls=tls) for e in endpoints)
        if bool(security.cert_file) != bool(security.key_file):
            raise StoreError("etcd: a client certificate needs its key, and a key its certificate")
        if security.password is not None and not security.username:
            raise StoreError("etcd: a password needs a username")
        self.timeout = timeout
        self.security = security
        self._context = tls_context(security) if any(e.tls for e in self.endpoints) else None
        self._token: str | None = None
        self._current = 0
        self._conns: dict[Endpoint, Connection] = {}
        self.requests = 0  # round trips made (benchmarks count them)

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
        return TxnResult(
            bool(answer.get("succeeded", False)),
            list(answer.get("responses", [])),
            int(answer.get("header", {}).get("revision", 0)),
        )

    def call(self, path: str, body: dict[str, Any], *, deadline: float) -> dict[str, Any]:
        """POST ``body`` to the first member that answers; StoreUnavailableError if none does.

        With a username, the first call authenticates (one more round trip) and the
        token is sent with every request; an expired token is renewed once.
        """
        if self.security.username and self._token is None:
            self._token = self._authenticate(deadline)
        try:
            return self._call(path, body, deadline)
        except _Unauthenticated as exc:
            if not self.security.username:
                raise StoreError(
                    "etcd: authentication is enabled: set a username and password"
                ) from exc
            self._token = self._authenticate(deadline)
            try:
                return self._call(path, body, deadline)
            except _Unauthenticated as exc:
                raise StoreError(f"etcd refused the credentials: {exc}") from exc

    def _authenticate(self, deadline: float) -> str:
        self._token = None
        body = {"name": self.security.username, "password": self.security.password or ""}
        try:
            answer = self._call("/v3/auth/authenticate", body, deadline)
        except StoreUnavailableError:
            raise
        except StoreError as exc:
            raise StoreError(
                f"etcd refused the credentials of user {self.security.username!r}: {exc}"
            ) from exc
        token = answer.get("token")
        if not isinstance(token, str) or not token:
            raise StoreError("etcd: authentication answered no token")
        return token

    def _call(self, path: str, body: dict[str, Any], deadline: float) -> dict[str, Any]:
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
            context = self._context if endpoint.tls else None
            conn = Connection(endpoint.host, endpoint.port, timeout=timeout, context=context)
            self._conns[endpoint] = conn
        headers = {"Content-Type": "application/json"}
        if self._token is not None:
            headers["Authorization"] = self._token
        self.requests += 1
        try:
            status, data = conn.request("POST", path, payload, headers, timeout=timeout)
        except OSError as exc:
            # The connection closed itself: a broken or timed-out one is never reused.
            if endpoint.tls and _tls_refused(exc):
                raise StoreError(f"etcd {endpoint}: TLS refused: {exc}") from exc
            raise StoreUnavailableError(f"{type(exc).__name__}: {exc}") from exc
        return _decode_answer(status, data)


def _tls_refused(exc: OSError) -> bool:
    """A certificate or handshake failure: retrying another member will not fix it."""
    import ssl  # loaded already: the connection was TLS

    text = str(exc).upper()
    return isinstance(exc, ssl.SSLError) and ("CERTIFICATE" in text or "HANDSHAKE" in text)


class _Unauthenticated(StoreError):  # noqa: N818 - a signal inside the client
    """etcd wants (new) credentials: the token expired, or none was sent."""


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
    if code == _UNAUTHENTICATED:
        raise _Unauthenticated(message)
    if code in _TRANSIENT_GRPC_CODES or (code is None and status >= 500):
        raise StoreUnavailableError(f"etcd: {message}")
    raise StoreError(f"etcd refused the request (code {code}): {message}")


def decode_kvs(answer: dict[str, Any]) -> list[KeyValue]:
    """The ``kvs`` of a range response (etcd leaves the field out when empty)."""
    return [
        KeyValue(unb64(kv["key"]), unb64(kv.get("value", "")), int(kv.get("mod_revision", 0)))
        for kv in answer.get("kvs", [])
    ]
