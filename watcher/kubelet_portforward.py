"""`kubectl port-forward` on the virtual node: the kubelet's `/portForward/{namespace}/{pod}`.

The protocol is `portforward.k8s.io` over SPDY/3.1 (`spdy_protocol`): for each connection the
client opens two streams with headers `port` and `requestID`, `streamtype: error` and
`streamtype: data`; the kubelet copies the data stream to the pod's port and writes a failure to
the error stream. kube-apiserver speaks it to kubelets as a SPDY upgrade; kubectl 1.32 tunnels
the same SPDY frames through a WebSocket (subprotocol `SPDY/3.1+portforward.k8s.io`,
`KUBECTL_PORT_FORWARD_WEBSOCKETS`), which the emulated API server relays as it is, so both
arrive here.

Each connection becomes an SSM Session Manager session on the pod's instance
(`AWS-StartPortForwardingSession` with `portNumber`; the containers use the host network, so the
instance's port is the container's), bridged byte for byte over its data channel
(`kubelet_session.DataChannel`).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from orca.logging import bind_work_context, get_logger
from orca.watcher import spdy_protocol as spdy
from orca.watcher import stream_protocol as ws
from orca.watcher.kubelet_exec import ExecRefused, InstanceExec
from orca.watcher.kubelet_session import InstanceSessions

log = get_logger(__name__)

PORT_FORWARD_PROTOCOL = "portforward.k8s.io"
WEBSOCKET_TUNNEL_PROTOCOL = "SPDY/3.1+portforward.k8s.io"


class Transport:
    """Bytes in and out of the upgraded connection: raw SPDY, or SPDY inside WebSocket binary
    messages (kubectl's tunnel)."""

    def __init__(self, reader: BinaryIO, connection: socket.socket, tunnelled: bool) -> None:
        self.reader = reader
        self.connection = connection
        self.tunnelled = tunnelled
        self.decoder = ws.FrameDecoder()
        self.lock = threading.Lock()

    def send(self, data: bytes) -> None:
        frame = ws.encode_frame(ws.Opcode.BINARY, data) if self.tunnelled else data
        with self.lock:
            self.connection.sendall(frame)

    def recv(self) -> bytes:
        """The next bytes of the SPDY stream; b"" at the end."""
        while True:
            data = self.reader.read1(65536)  # type: ignore[attr-defined]
            if not data or not self.tunnelled:
                return bytes(data)
            payload = b""
            for frame in self.decoder.feed(data):
                if frame.opcode is ws.Opcode.CLOSE:
                    return b""
                if frame.opcode is ws.Opcode.PING:
                    with self.lock:
                        self.connection.sendall(ws.encode_frame(ws.Opcode.PONG, frame.payload))
                elif frame.opcode is ws.Opcode.BINARY:
                    payload += frame.payload
            if payload:
                return payload


@dataclass
class _Forward:
    """One forwarded connection: its two streams, and the session once it is open."""

    port: int
    data_stream: int | None = None
    error_stream: int | None = None
    session: Any = None
    pending: list[bytes] = field(default_factory=list)


class PortForwardSession:
    def __init__(
        self,
        transport: Transport,
        open_port: Callable[[int, Callable[[bytes], None]], Any],
    ) -> None:
        self.transport = transport
        self.open_port = open_port
        self.codec = spdy.HeaderCodec()
        self.forwards: dict[str, _Forward] = {}
        self.by_stream: dict[int, str] = {}
        self.lock = threading.Lock()

    def serve(self) -> None:
        decoder = spdy.FrameDecoder()
        try:
            while True:
                data = self.transport.recv()
                if not data:
                    break
                for frame in decoder.feed(data):
                    if isinstance(frame, spdy.DataFrame):
                        self._data(frame)
                    elif frame.type == spdy.FrameType.SYN_STREAM:
                        self._syn_stream(self.codec.syn_stream(frame))
                    elif frame.type == spdy.FrameType.PING:
                        self.transport.send(spdy.control_frame(spdy.FrameType.PING, 0, frame.data))
                    elif frame.type == spdy.FrameType.GOAWAY:
                        return
        except (OSError, spdy.ProtocolError, ws.ProtocolError) as error:
            log.info("port-forward connection ended", error=str(error))
        finally:
            for forward in list(self.forwards.values()):
                if forward.session is not None:
                    forward.session.close()
            with contextlib.suppress(OSError):
                self.transport.connection.shutdown(socket.SHUT_RDWR)

    def _syn_stream(self, syn: spdy.SynStream) -> None:
        self.transport.send(self.codec.syn_reply(syn.stream_id, {}))
        request_id = syn.headers.get("requestid", "")
        kind = syn.headers.get("streamtype", "")
        try:
            port = int(syn.headers.get("port", ""))
        except ValueError:
            self.transport.send(spdy.rst_stream(syn.stream_id, spdy.RstStatus.PROTOCOL_ERROR))
            return
        with self.lock:
            forward = self.forwards.setdefault(request_id, _Forward(port))
            self.by_stream[syn.stream_id] = request_id
            if kind == "data":
                forward.data_stream = syn.stream_id
            elif kind == "error":
                forward.error_stream = syn.stream_id
            ready = forward.data_stream is not None and forward.error_stream is not None
        if ready and forward.session is None:
            threading.Thread(
                target=self._open, args=(forward,), name="kubelet-port-forward", daemon=True
            ).start()

    def _open(self, forward: _Forward) -> None:
        data_stream, error_stream = forward.data_stream, forward.error_stream
        if data_stream is None or error_stream is None:
            return

        def output(data: bytes) -> None:
            with contextlib.suppress(OSError):
                self.transport.send(spdy.data_frames(data_stream, data, fin=False))

        try:
            session = self.open_port(forward.port, output)
        except ExecRefused as refusal:
            message = f"error forwarding port {forward.port} to pod: {refusal.message}"
            with contextlib.suppress(OSError):
                self.transport.send(spdy.data_frames(error_stream, message.encode(), fin=True))
                self.transport.send(spdy.data_frames(data_stream, b"", fin=True))
            return
        with self.lock:
            forward.session = session
            pending, forward.pending = forward.pending, []
        for data in pending:
            session.input(data)
        session.wait(lambda: False)
        with contextlib.suppress(OSError):
            self.transport.send(spdy.data_frames(data_stream, b"", fin=True))
            self.transport.send(spdy.data_frames(error_stream, b"", fin=True))

    def _data(self, frame: spdy.DataFrame) -> None:
        with self.lock:
            request_id = self.by_stream.get(frame.stream_id)
            forward = self.forwards.get(request_id or "")
            if forward is None or frame.stream_id != forward.data_stream:
                return
            session = forward.session
            if session is None:
                forward.pending.append(frame.data)
        if session is not None:
            if frame.data:
                session.input(frame.data)
            if frame.fin:
                session.disconnect()


def upgrade(handler: Any) -> bool:
    """Answer the upgrade of a `/portForward` request; whether it is kubectl's WebSocket tunnel."""
    headers = handler.headers
    if ws.is_websocket_upgrade(headers):
        offered = [p.strip() for p in str(headers.get("Sec-WebSocket-Protocol") or "").split(",")]
        key = headers.get("Sec-WebSocket-Key")
        if WEBSOCKET_TUNNEL_PROTOCOL not in offered or not key:
            raise ExecRefused(
                400,
                f"port-forward over WebSocket needs the {WEBSOCKET_TUNNEL_PROTOCOL} subprotocol",
            )
        handler.close_connection = True
        handler.send_response(101, "Switching Protocols")
        handler.send_header("Upgrade", "websocket")
        handler.send_header("Connection", "Upgrade")
        handler.send_header("Sec-WebSocket-Accept", ws.accept_key(key))
        handler.send_header("Sec-WebSocket-Protocol", WEBSOCKET_TUNNEL_PROTOCOL)
        handler.end_headers()
        handler.wfile.flush()
        return True
    if str(headers.get("Upgrade") or "").lower() != spdy.UPGRADE.lower():
        raise ExecRefused(400, "Upgrade request required: port-forward streams over SPDY/3.1")
    offered = [
        p.strip()
        for value in headers.get_all("X-Stream-Protocol-Version") or ()
        for p in value.split(",")
    ]
    if offered and PORT_FORWARD_PROTOCOL not in offered:
        raise ExecRefused(403, f"port-forward speaks {PORT_FORWARD_PROTOCOL}, not {offered}")
    handler.close_connection = True
    handler.send_response(101, "Switching Protocols")
    handler.send_header("Connection", "Upgrade")
    handler.send_header("Upgrade", spdy.UPGRADE)
    handler.send_header("X-Stream-Protocol-Version", PORT_FORWARD_PROTOCOL)
    handler.end_headers()
    handler.wfile.flush()
    return False


def serve_port_forward(handler: Any, pod: dict[str, Any], runner: InstanceExec | None) -> None:
    """Serve an authorized `/portForward/...` request for `pod` on the handler's connection."""
    if runner is None:
        raise ExecRefused(501, "port-forward is not configured on this kubelet")
    metadata = pod["metadata"]
    sessions = InstanceSessions(runner, runner.ssm)
    with bind_work_context(
        pod=f"{metadata['namespace']}/{metadata['name']}", pod_uid=metadata.get("uid")
    ):
        tunnelled = upgrade(handler)
        log.info("port-forward started", websocket=tunnelled)

        def open_port(port: int, output: Callable[[bytes], None]) -> Any:
            return sessions.open_port(pod, port, output)

        transport = Transport(handler.rfile, handler.connection, tunnelled)
        PortForwardSession(transport, open_port).serve()
