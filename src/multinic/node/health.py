"""``/healthz`` and ``/metrics`` over HTTP, for kubelet's probes and Prometheus.

Plain ``http.server``: two read-only paths, a handful of requests a minute.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from multinic.node.metrics import Metrics


class HealthServer:
    """Serves ``/healthz`` (200 while ``ready()``, else 503) and ``/metrics``."""

    def __init__(self, host: str, port: int, metrics: Metrics, ready: Callable[[], bool]) -> None:
        handler = _handler(metrics, ready)
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="health", daemon=True)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler(metrics: Metrics, ready: Callable[[], bool]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/healthz":
                ok = ready()
                self._answer(200 if ok else 503, b"ok\n" if ok else b"not ready\n", "text/plain")
            elif self.path == "/metrics":
                self._answer(200, metrics.exposition(), "text/plain; version=0.0.4")
            else:
                self._answer(404, b"not found\n", "text/plain")

        def _answer(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # probes every few seconds would flood the daemon's log

    return Handler
