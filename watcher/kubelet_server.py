"""The virtual node's kubelet endpoint: what the API server proxies `kubectl logs` to.

Served on `node.kubeletPort` at the node's advertised InternalIP:

- `/containerLogs/{namespace}/{pod}/{container}`: the container's output, which ORCA's bootstrap on
  the instance ships to CloudWatch Logs (group `aws.logGroup`, stream
  `<namespace>/<pod>/<pod-uid>/<container>`, see docs/instance-contract.md). Query parameters as
  the kubelet's: `tailLines`, `sinceSeconds`, `sinceTime`, `timestamps`, `limitBytes`, `follow`
  (stream new lines until the pod ends or the client goes away);
- `/healthz`: `ok`;
- `/stats/summary` (Summary API) and `/metrics/resource` (Prometheus text, what metrics-server
  scrapes): the pods' usage figures, read from CloudWatch once per `node.statsInterval` by
  `pod_stats` and rendered by `stats_formats` (docs/stats.md); `nodes/stats` and `nodes/metrics`.

Always HTTPS (`kubelet_tls`: the provided `node.kubeletTLSCertFile`/`KeyFile`, else a self-signed
certificate made at start), and every request, on every path, is authenticated and authorized as a
kubelet does it (`kubelet_auth`): a client certificate signed by the cluster's client CA or a
bearer token (TokenReview), then a SubjectAccessReview on `nodes/<subresource>` of this node. The
API server proxies `kubectl logs` with its kubelet client certificate (`--kubelet-client-
certificate`), which needs `nodes/proxy`. Without credentials: 401; without the permission: 403.
`/exec/{namespace}/{pod}/{container}` (a WebSocket or SPDY upgrade, GET or POST) runs a command
in the container (`kubelet_exec`), `/portForward/{namespace}/{pod}` forwards connections to the
pod's ports (`kubelet_portforward`), `/attach/{namespace}/{pod}/{container}` attaches to it.
Other methods get 405 once authorized.

The client CA bundle is read at start and again every `CLIENT_CA_REFRESH_SECONDS` (new CAs are
trusted at once; a CA removed from the bundle stays trusted until the watcher restarts). TLS
handshakes run on each connection's own thread, so a slow client never holds up the others.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Generator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from kubernetes import client as k8s

from orca import aws_errors, pod_names
from orca.logging import get_logger
from orca.pod_phase import TERMINAL_PHASES
from orca.watcher import kubelet_exec, kubelet_portforward, kubelet_tls, stats_formats
from orca.watcher.kube_json import read_json_or_none
from orca.watcher.kubelet_auth import KubeletAuth, Refusal
from orca.watcher.pod_stats import PodStats

if TYPE_CHECKING:
    from mypy_boto3_logs import CloudWatchLogsClient

log = get_logger(__name__)

FOLLOW_POLL_SECONDS = 1.0
POD_CHECK_SECONDS = 5.0
CLIENT_CA_REFRESH_SECONDS = 60.0


def log_stream_name(namespace: str, pod: str, uid: str, container: str) -> str:
    return pod_names.container_log_stream(namespace, pod, uid, container)


def format_log_line(message: str, timestamp_ms: int, timestamps: bool) -> bytes:
    line = message if message.endswith("\n") else message + "\n"
    if timestamps:
        at = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
        line = at.strftime("%Y-%m-%dT%H:%M:%S.%f000Z ") + line
    return line.encode()


class LogQuery:
    """The kubelet's log options, parsed from the query string."""

    def __init__(self, query: dict[str, str], now: datetime) -> None:
        self.follow = query.get("follow", "").lower() in ("true", "1")
        self.timestamps = query.get("timestamps", "").lower() in ("true", "1")
        self.tail_lines = int(query["tailLines"]) if query.get("tailLines") else None
        self.limit_bytes = int(query["limitBytes"]) if query.get("limitBytes") else None
        start: datetime | None = None
        if query.get("sinceSeconds"):
            start = now - timedelta(seconds=int(query["sinceSeconds"]))
        elif query.get("sinceTime"):
            start = datetime.fromisoformat(query["sinceTime"].replace("Z", "+00:00"))
        self.start_ms = int(start.timestamp() * 1000) if start else None
        if self.tail_lines is not None and self.tail_lines < 0:
            raise ValueError("tailLines must be >= 0")


class _TlsServer(ThreadingHTTPServer):
    """A threading HTTP server whose connections do their TLS handshake on their own thread."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        context: ssl.SSLContext,
    ) -> None:
        self.context = context
        super().__init__(address, handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = self.socket.accept()
        wrapped = self.context.wrap_socket(
            connection, server_side=True, do_handshake_on_connect=False
        )
        return wrapped, address

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            request.settimeout(30.0)
            request.do_handshake()
            request.settimeout(None)
        except (ssl.SSLError, OSError) as error:
            log.debug("kubelet endpoint TLS handshake failed", error=str(error))
            return
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("kubelet endpoint connection failed", exc_info=True)


class KubeletServer:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        core: k8s.CoreV1Api,
        logs: CloudWatchLogsClient,
        log_group: str,
        node_name: str,
        pods: Callable[[], list[dict[str, Any]]],
        tls: ssl.SSLContext,
        auth: KubeletAuth,
        client_ca: Callable[[], str | None],
        stats: PodStats | None = None,
        exec_runner: kubelet_exec.InstanceExec | None = None,
    ) -> None:
        """`tls` is a `kubelet_tls` server context; `client_ca` returns the client CA bundle
        (PEM) to trust, or None while there is none; `exec_runner` runs `/exec` commands on the
        pods' instances (None: exec is refused)."""
        self.exec_runner = exec_runner
        self.core = core
        self.logs = logs
        self.log_group = log_group
        self.node_name = node_name
        self.pods = pods
        self.auth = auth
        self.stats = stats
        self.started_at = datetime.now(UTC)
        self._tls = tls
        self._client_ca = client_ca
        self._trusted_bundles: set[str] = set()
        self._server = _TlsServer((host, port), self._handler_class(), tls)
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="kubelet-server", daemon=True
        )
        self._ca_thread = threading.Thread(
            target=self._refresh_client_ca, name="kubelet-client-ca", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> KubeletServer:
        self.load_client_ca()
        self._thread.start()
        self._ca_thread.start()
        return self

    def load_client_ca(self) -> bool:
        """Trust the current client CA bundle; False when it could not be read."""
        try:
            bundle = self._client_ca()
        except Exception as error:
            log.warning(
                "kubelet client CA not readable; client certificates are refused until it is",
                error=str(error),
            )
            return False
        if bundle is None:
            log.warning(
                "no client CA bundle (ConfigMap kube-system/extension-apiserver-authentication "
                "key client-ca-file, or node.kubeletClientCAFile); client certificates are "
                "refused until there is one"
            )
            return False
        if bundle not in self._trusted_bundles:
            try:
                kubelet_tls.add_client_ca(self._tls, bundle)
            except ssl.SSLError as error:
                log.warning("kubelet client CA bundle is not valid PEM", error=str(error))
                return False
            self._trusted_bundles.add(bundle)
        return True

    def _refresh_client_ca(self) -> None:
        while not self._stopping.wait(CLIENT_CA_REFRESH_SECONDS):
            self.load_client_ca()

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    # -- logs ------------------------------------------------------------------------------

    def pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        return read_json_or_none(self.core.read_namespaced_pod, name, namespace)

    def log_events(
        self, stream: str, start_ms: int | None, token: str | None
    ) -> tuple[list[tuple[int, str]], str | None]:
        """Events after `token` (or from `start_ms`), and the token to continue from."""
        events: list[tuple[int, str]] = []
        while True:
            kwargs: dict[str, Any] = {
                "logGroupName": self.log_group,
                "logStreamName": stream,
                "startFromHead": True,
            }
            if token:
                kwargs["nextToken"] = token
            elif start_ms is not None:
                kwargs["startTime"] = start_ms
            try:
                page = self.logs.get_log_events(**kwargs)
            except Exception as error:
                if aws_errors.is_not_found(error):
                    return events, token  # the container has not written anything yet
                raise
            events.extend((e["timestamp"], e["message"]) for e in page.get("events", []))
            next_token = page.get("nextForwardToken")
            if not page.get("events") or next_token == token:
                return events, next_token or token
            token = next_token

    def resolve_container(self, namespace: str, name: str, container: str) -> dict[str, Any]:
        """The pod, after checking it has `container`; LookupError otherwise."""
        pod = self.pod(namespace, name)
        if pod is None:
            raise LookupError(f'pods "{name}" not found')
        spec = pod.get("spec") or {}
        names = [
            c.get("name")
            for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])
        ]
        if container not in names:
            raise LookupError(f"container {container} is not valid for pod {name}")
        return pod

    def container_logs(
        self, pod: dict[str, Any], container: str, query: LogQuery
    ) -> Generator[bytes, None, None]:
        metadata = pod["metadata"]
        namespace, name, uid = metadata["namespace"], metadata["name"], metadata["uid"]
        stream = log_stream_name(namespace, name, uid, container)
        events, token = self.log_events(stream, query.start_ms, None)
        if query.tail_lines is not None:
            events = events[-query.tail_lines :] if query.tail_lines else []
        sent = 0
        for timestamp, message in events:
            line = format_log_line(message, timestamp, query.timestamps)
            if query.limit_bytes is not None and sent + len(line) > query.limit_bytes:
                yield line[: query.limit_bytes - sent]
                return
            sent += len(line)
            yield line
        if not query.follow:
            return
        last_check = time.monotonic()
        while not self._stopping.is_set():
            time.sleep(FOLLOW_POLL_SECONDS)
            events, token = self.log_events(stream, query.start_ms, token)
            for timestamp, message in events:
                yield format_log_line(message, timestamp, query.timestamps)
            if not events and time.monotonic() - last_check >= POD_CHECK_SECONDS:
                last_check = time.monotonic()
                current = self.pod(namespace, name)
                if (
                    current is None
                    or current["metadata"]["uid"] != uid
                    or (current.get("status") or {}).get("phase") in TERMINAL_PHASES
                ):
                    return

    # -- stats -----------------------------------------------------------------------------

    def _figures(self, uid: str) -> stats_formats.PodFigures:
        return self.stats.figures(uid) if self.stats is not None else {}

    def summary(self) -> dict[str, Any]:
        return stats_formats.summary(
            self.node_name, self.started_at, self.pods(), self._figures, datetime.now(UTC)
        )

    def resource_metrics(self) -> str:
        return stats_formats.resource_metrics(self.pods(), self._figures, datetime.now(UTC))

    # -- HTTP ------------------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                parsed = urllib.parse.urlsplit(self.path)
                segments = [urllib.parse.unquote(s) for s in parsed.path.split("/") if s]
                query = dict(urllib.parse.parse_qsl(parsed.query))
                if not self._authorized(parsed.path):
                    return
                try:
                    if segments == ["healthz"]:
                        self._send(200, b"ok", "text/plain")
                    elif segments == ["stats", "summary"]:
                        body = json.dumps(server.summary()).encode()
                        self._send(200, body, "application/json")
                    elif segments == ["metrics", "resource"]:
                        body = server.resource_metrics().encode()
                        self._send(200, body, "text/plain; version=0.0.4; charset=utf-8")
                    elif len(segments) == 4 and segments[0] == "containerLogs":
                        self._logs(segments[1], segments[2], segments[3], query)
                    elif segments[:1] in (["exec"], ["attach"], ["portForward"]):
                        self._stream(segments)
                    else:
                        self._send(404, b"404 page not found\n", "text/plain")
                except kubelet_exec.ExecRefused as refusal:
                    self._send(refusal.code, refusal.message.encode(), "text/plain")
                except (ValueError, LookupError) as error:
                    code = 404 if isinstance(error, LookupError) else 400
                    message = str(error.args[0]) if error.args else str(error)
                    self._send(code, message.encode(), "text/plain")
                except (BrokenPipeError, ConnectionResetError):
                    return
                except Exception as error:
                    log.warning("kubelet endpoint failed", path=parsed.path, error=str(error))
                    self._send(500, f"internal error: {error}".encode(), "text/plain")

            def do_other(self) -> None:
                """Methods the endpoint serves nowhere: refused after authorization, as a
                kubelet refuses what it does not route."""
                self.close_connection = True  # the request body is left unread
                if self._authorized(urllib.parse.urlsplit(self.path).path):
                    self._send(405, b"405 method not allowed\n", "text/plain")

            def do_POST(self) -> None:
                first = urllib.parse.urlsplit(self.path).path.split("/")[1:2]
                if first in (["exec"], ["attach"], ["portForward"]):  # SPDY upgrades are POSTs
                    self.do_GET()
                else:
                    self.do_other()

            do_PUT = do_PATCH = do_DELETE = do_other  # noqa: N815

            def _stream(self, segments: list[str]) -> None:
                """exec, attach and portForward (`kubelet_exec`)."""
                if segments[0] == "portForward":
                    if len(segments) != 3:
                        self._send(404, b"404 page not found\n", "text/plain")
                        return
                    pod = server.pod(segments[1], segments[2])
                    if pod is None:
                        raise LookupError(f'pods "{segments[2]}" not found')
                    kubelet_portforward.serve_port_forward(self, pod, server.exec_runner)
                    return
                if len(segments) != 4:
                    self._send(404, b"404 page not found\n", "text/plain")
                    return
                found = server.resolve_container(segments[1], segments[2], segments[3])
                kubelet_exec.serve_exec(
                    self, found, segments[3], server.exec_runner, attach=segments[0] == "attach"
                )

            def _authorized(self, path: str) -> bool:
                """Whether the caller may make this request; if not, the refusal is sent."""
                try:
                    peer = getattr(self.connection, "getpeercert", lambda: None)()
                    server.auth.check(self.command, path, peer, self.headers.get("Authorization"))
                except Refusal as refusal:
                    if refusal.code >= 500:
                        log.warning("kubelet endpoint authorization failed", error=refusal.message)
                    self._send(refusal.code, refusal.body(), "application/json")
                    return False
                return True

            def _logs(
                self, namespace: str, pod: str, container: str, query: dict[str, str]
            ) -> None:
                options = LogQuery(query, datetime.now(UTC))
                found = server.resolve_container(namespace, pod, container)
                lines = server.container_logs(found, container, options)
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.close_connection = True
                try:
                    for line in lines:
                        self._chunk(line)
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                finally:
                    lines.close()

            def _chunk(self, payload: bytes) -> None:
                if payload:
                    self.wfile.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
                    self.wfile.flush()

            def _send(self, code: int, body: bytes, content_type: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # the API server's log requests would drown the watcher's own lines

        return Handler
