"""A minimal HTTP/1.1 client connection on ``socket`` (and a given ``ssl`` context).

The IPAM stores talk JSON to etcd's gateway and to the Kubernetes API from
every ``multinic-ipam`` process, one process per pod ADD when a runtime
executes the plugin, so their import cost is paid on every pod start.
``http.client`` parses headers with the ``email`` package: importing it costs
about 20 ms of a plugin's start on the test machine (``python -X importtime``,
docs/benchmarks.md), more than the requests themselves. The stores need one
keep-alive connection, a request with a body and a status and body back, so this
is that and no more: Content-Length or chunked bodies, ``Connection: close``,
one request at a time. It imports neither ``ssl`` nor ``email``; a TLS
connection gets its context from the caller.

Failures are OSError: the socket's and ssl's own, and :class:`ProtocolError` for
an answer that is not HTTP/1.x. A connection that failed is closed; the next
request opens a new one.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Mapping

from multinic.records import TYPE_CHECKING

if TYPE_CHECKING:
    import ssl
    from typing import BinaryIO

#: Longest status or header line accepted (as http.client's limit).
MAX_LINE = 65536
#: Most header lines accepted in one answer.
MAX_HEADERS = 100
#: Longest line of a streamed body accepted (one watch event: a whole object).
MAX_BODY_LINE = 16 * 1024 * 1024


class ProtocolError(OSError):
    """The server's answer is not HTTP/1.x, or it closed the connection mid-answer."""


class Connection:
    """One keep-alive connection to ``host:port``, opened on the first request."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float,
        context: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.context = context
        self.sock: socket.socket | None = None
        self._reader: BinaryIO | None = None

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None,
        headers: Mapping[str, str],
        *,
        timeout: float,
    ) -> tuple[int, bytes]:
        """(status, body) of one request; OSError on any failure (the connection is closed)."""
        self.timeout = timeout
        try:
            reader = self._send(method, path, body, headers)
            version, status = _status_line(_line(reader))
            return status, self._body(reader, method, version, status, _headers(reader))
        except BaseException:
            self.close()
            raise

    def first_line(
        self, path: str, headers: Mapping[str, str], *, timeout: float
    ) -> tuple[int, bytes]:
        """GET a streamed answer (a Kubernetes watch) and return (status, its first line).

        The line is b"" when the stream ended first (the server's own timeout, or
        :meth:`shutdown` from another thread); a status other than 200 comes with its
        whole body. TimeoutError when nothing came within ``timeout``. A stream is
        never reused: the connection is closed afterwards, whatever happened.
        """
        self.timeout = timeout
        try:
            reader = self._send("GET", path, None, headers)
            version, status = _status_line(_line(reader))
            answer = _headers(reader)
            if status != 200:
                return status, self._body(reader, "GET", version, status, answer)
            if "chunked" not in answer.get("transfer-encoding", "").lower():
                return status, reader.readline(MAX_LINE)
            return status, _first_chunked_line(reader)
        finally:
            self.close()

    def shutdown(self) -> None:
        """End a :meth:`first_line` waiting in another thread now; nothing when none waits."""
        sock = self.sock
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed: the wait is over anyway
                sock.shutdown(socket.SHUT_RDWR)

    def _send(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]
    ) -> BinaryIO:
        sock, reader = self._open()
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host_header}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b""))
        return reader

    def _open(self) -> tuple[socket.socket, BinaryIO]:
        if self.sock is None or self._reader is None:
            sock = socket.create_connection((self.host, self.port), self.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.context is not None:
                sock = self.context.wrap_socket(sock, server_hostname=self.host)
            self.sock = sock
            self._reader = sock.makefile("rb")
        self.sock.settimeout(self.timeout)
        return self.sock, self._reader

    def _body(
        self, reader: BinaryIO, method: str, version: str, status: int, headers: dict[str, str]
    ) -> bytes:
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            body = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body = _chunked(reader)
        elif "content-length" in headers:
            body = _exactly(reader, _length(headers["content-length"]))
        else:
            body = reader.read()  # the body ends with the connection
            self.close()
        if headers.get("connection", "").lower() == "close" or version == "HTTP/1.0":
            self.close()
        return body


def _line(reader: BinaryIO) -> bytes:
    line = reader.readline(MAX_LINE + 1)
    if not line:
        raise ProtocolError("the server closed the connection")
    if len(line) > MAX_LINE:
        raise ProtocolError("an answer line is too long")
    return line


def _status_line(line: bytes) -> tuple[str, int]:
    version, _, rest = line.decode("latin-1").partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or not code.isdigit():
        raise ProtocolError(f"not an HTTP/1.x answer: {line[:80]!r}")
    return version, int(code)


def _headers(reader: BinaryIO) -> dict[str, str]:
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS):
        line = _line(reader)
        if line in (b"\r\n", b"\n"):
            return headers
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    raise ProtocolError(f"more than {MAX_HEADERS} header lines")


def _length(text: str) -> int:
    if not text.isdigit():
        raise ProtocolError(f"bad Content-Length {text!r}")
    return int(text)


def _exactly(reader: BinaryIO, size: int) -> bytes:
    data = reader.read(size)
    if len(data) != size:
        raise ProtocolError(f"the body ended after {len(data)} of {size} bytes")
    return data


def _chunked(reader: BinaryIO) -> bytes:
    parts = []
    while True:
        size_text = _line(reader).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError as exc:
            raise ProtocolError(f"bad chunk size {size_text[:20]!r}") from exc
        if size == 0:
            break
        parts.append(_exactly(reader, size))
        _line(reader)  # the CRLF after the chunk
    while _line(reader) not in (b"\r\n", b"\n"):
        pass  # trailer fields: none that matter here
    return b"".join(parts)


def _first_chunked_line(reader: BinaryIO) -> bytes:
    """The chunked body's first line (a watch event), or b"" when the stream ends first."""
    data = b""
    while b"\n" not in data:
        size_line = reader.readline(MAX_LINE)
        size_text = size_line.split(b";", 1)[0].strip()
        if not size_text or size_text == b"0":
            return b""  # closed (or shut down) before a whole line came
        try:
            size = int(size_text, 16)
        except ValueError as exc:
            raise ProtocolError(f"bad chunk size {size_text[:20]!r}") from exc
        data += _exactly(reader, size)
        _line(reader)  # the CRLF after the chunk
        if len(data) > MAX_BODY_LINE:
            raise ProtocolError("a streamed line is too long")
    return data.split(b"\n", 1)[0] + b"\n"
