"""The HTTP endpoints of ``rater run``: ``/metrics``, ``/healthz`` and ``/readyz`` on one port.

``/metrics`` is Prometheus' text format (prometheus_client's registry); ``/healthz`` and
``/readyz`` answer 200 or 503 with one line of text from :data:`rater.health.HEALTH`
(``HEAD`` works too, for probes that only read the status). Any other path is a 404.
:func:`rater.metrics.serve` starts it; the port's rules (0 = any free port, a busy port is
a configuration error) are there.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from rater.health import HEALTH, Health, Verdict

__all__ = ["start_endpoints"]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    health: Health = HEALTH


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _answer(self, body: bool) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST, body)
        elif path == "/healthz":
            self._verdict(self.server.health.live(), body)
        elif path == "/readyz":
            self._verdict(self.server.health.ready(), body)
        else:
            self._send(404, b"not found: /metrics, /healthz, /readyz\n", "text/plain", body)

    def _verdict(self, verdict: Verdict, body: bool) -> None:
        text = f"{verdict.detail}\n".encode()
        self._send(200 if verdict.ok else 503, text, "text/plain; charset=utf-8", body)

    def _send(self, status: int, payload: bytes, content_type: str, body: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if body:
            self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        """Scrapes and probes every few seconds are not worth a log line."""


def start_endpoints(port: int, health: Health = HEALTH) -> ThreadingHTTPServer:
    """Serve the endpoints on ``port`` (0 = any free one) from a daemon thread.

    Raises OSError when the port cannot be bound.
    """
    server = _Server(("", port), _Handler)
    server.health = health
    threading.Thread(target=server.serve_forever, name="endpoints", daemon=True).start()
    return server
