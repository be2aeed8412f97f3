"""multinic.minihttp against the standard library's HTTP/1.1 server on loopback."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from multinic.minihttp import Connection, ProtocolError


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as etcd and the API server answer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (body, b"-", body.upper()):
                self.wfile.write(b"%x;ext=1\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\nTrailer: x\r\n\r\n")
        elif self.path == "/close":
            self.send_response(409)
            self.send_header("Connection", "close")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/garbage":
            self.wfile.write(b"SSH-2.0-not-http\r\n\r\n")
            self.close_connection = True
        else:
            answer = self.headers["Host"].encode() + b" " + body
            self.send_response(200)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def connect(server: ThreadingHTTPServer) -> Connection:
    return Connection("127.0.0.1", server.server_address[1], timeout=10)


def test_requests_share_one_keep_alive_connection(server: ThreadingHTTPServer) -> None:
    conn = connect(server)
    try:
        port = server.server_address[1]
        assert conn.request("POST", "/", b"one", {}, timeout=10) == (
            200,
            b"127.0.0.1:%d one" % port,
        )
        sock = conn.sock
        assert conn.request("POST", "/", b"two", {}, timeout=10)[1].endswith(b" two")
        assert conn.sock is sock and sock is not None
    finally:
        conn.close()


def test_a_chunked_body_is_joined_and_its_trailer_skipped(server: ThreadingHTTPServer) -> None:
    conn = connect(server)
    try:
        assert conn.request("POST", "/chunked", b"ab", {}, timeout=10) == (200, b"ab-AB")
        assert conn.request("POST", "/", b"next", {}, timeout=10)[1].endswith(b" next")
    finally:
        conn.close()


def test_connection_close_is_honoured_and_the_next_request_reconnects(
    server: ThreadingHTTPServer,
) -> None:
    conn = connect(server)
    try:
        assert conn.request("POST", "/close", b"gone", {}, timeout=10) == (409, b"gone")
        assert conn.sock is None
        assert conn.request("POST", "/", b"again", {}, timeout=10)[0] == 200
    finally:
        conn.close()


def test_an_answer_that_is_not_http_is_an_oserror_and_closes(server: ThreadingHTTPServer) -> None:
    conn = connect(server)
    with pytest.raises(ProtocolError, match="not an HTTP"):
        conn.request("POST", "/garbage", b"x", {}, timeout=10)
    assert conn.sock is None and isinstance(ProtocolError("x"), OSError)


def test_nobody_listening_is_an_oserror() -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), Handler) as unused:
        port = unused.server_address[1]
    conn = Connection("127.0.0.1", port, timeout=5)
    with pytest.raises(ConnectionRefusedError):
        conn.request("GET", "/", None, {}, timeout=5)
    assert conn.sock is None
