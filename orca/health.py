"""A small HTTP server for `/healthz`, `/readyz` and Prometheus `/metrics`, in a thread.

The worker and the watcher each start one. Liveness says the process loop is alive; readiness is
a callable the process supplies (the watcher: node registered and watch live). The worker's also
answers the Temporal Web UI's codec requests (`orca.codec_endpoint`, `codec=True`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from orca import codec_endpoint


class HealthServer:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        ready: Callable[[], bool] = lambda: True,
        alive: Callable[[], bool] = lambda: True,
        metrics_path: str | None = "/metrics",
        codec: bool = False,
    ) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/healthz":
                    self._answer(outer.alive(), b"ok\n", b"unhealthy\n")
                elif path == "/readyz":
                    self._answer(outer.ready(), b"ready\n", b"not ready\n")
                elif metrics_path is not None and path == metrics_path:
                    body = generate_latest()
                    self.send_response(200)
                    self.send_header("Content-Type", CONTENT_TYPE_LATEST)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                else:
                    self.send_error(404)

            def do_OPTIONS(self) -> None:
                """CORS preflight of the UI's codec requests."""
                if not codec or self.path.split("?", 1)[0] not in codec_endpoint.CODEC_PATHS:
                    self.send_error(404)
                    return
                self.send_response(204)
                self._cors()
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                path = self.path.split("?", 1)[0]
                if not codec or path not in codec_endpoint.CODEC_PATHS:
                    self.send_error(404)
                    return
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = codec_endpoint.answer(path, self.rfile.read(length))
                except codec_endpoint.BadCodecRequestError as error:
                    self.send_response(400)
                    body = f"{error}\n".encode()
                    self._cors()
                    self.send_header("Content-Type", "text/plain")
                else:
                    self.send_response(200)
                    self._cors()
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _cors(self) -> None:
                for name, value in codec_endpoint.CORS_HEADERS.items():
                    self.send_header(name, value)

            def _answer(self, good: bool, yes: bytes, no: bytes) -> None:
                body = yes if good else no
                self.send_response(200 if good else 503)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # probes every few seconds would drown the real logs

        self.ready = ready
        self.alive = alive
        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
