"""A loopback stand-in for a kubelet's /containerLogs endpoint: HTTPS with a self-signed
certificate, and, given the cluster's client CA, a client certificate required and recorded."""

from __future__ import annotations

import ssl
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from orca.watcher import kubelet_tls
from orca.watcher.kubelet_auth import caller_from_certificate


class FakeKubelet:
    def __init__(self, logs: dict[str, list[str]]) -> None:
        self.logs = logs  # "ns/pod/container" -> lines
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.callers: list[str | None] = []  # the client certificate's user, per request


@contextmanager
def fake_kubelet(
    logs: dict[str, list[str]], client_ca: str | None = None
) -> Iterator[tuple[FakeKubelet, int]]:
    state = FakeKubelet(logs)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, format: str, *args: object) -> None:
            return

        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(url.query))
            state.requests.append((url.path, query))
            caller = caller_from_certificate(self.connection.getpeercert())  # type: ignore[attr-defined]
            state.callers.append(caller.username if caller else None)
            key = url.path.removeprefix("/containerLogs/")
            if key not in state.logs:
                body = b"container not found"
                self.send_response(404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            lines = state.logs[key]
            if "tailLines" in query:
                lines = lines[-int(query["tailLines"]) :]
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            for line in lines:
                self.wfile.write(f"{line}\n".encode())
                self.wfile.flush()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = kubelet_tls.server_context(
        *kubelet_tls.self_signed_certificate("127.0.0.1", "fake-kubelet")
    )
    if client_ca is not None:
        kubelet_tls.add_client_ca(context, client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield state, int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
