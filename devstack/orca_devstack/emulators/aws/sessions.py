"""SSM Session Manager in the emulator: StartSession's data channel, played by a pty in the
container's sandbox.

``StartSession`` (``AWS-StartInteractiveCommand``, intercepted by the middleware) records the
session and answers with a ``StreamUrl`` on this server's own port (as ``ssmmessages`` is its own
endpoint) and a token. The client opens a WebSocket there, sends ``open_data_channel`` with the
token, and the server plays the agent (``orca.ssm_data_channel``): a handshake (HandshakeRequest,
the client's HandshakeResponse, HandshakeComplete), then the session's command — the exec request
its ``command`` carries (``orca.exec_command``) — runs as a real subprocess on a pty in the
container's sandbox (``sandboxes``). Keystrokes go to the pty, size messages resize it, output
comes back as ``output_stream_data``; when the command ends the server sends its exit code
(payload type 12) and ``channel_closed``. A container that is not running gets its message and
exit code 126.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import socket
import struct
import subprocess
import termios
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from orca import ssm_data_channel as dc
from orca.exec_command import ExecRequest
from orca.watcher import stream_protocol as ws

NOT_RUNNING_EXIT_CODE = 126


@dataclass
class SessionRecord:
    session_id: str
    instance_id: str
    request: ExecRequest | None
    token: str
    port: int | None = None
    """A port-forwarding session's port on the instance (the host, in the emulator)."""


class SessionServer:
    """The data-channel endpoint; `sandbox_of(pod_uid, instance_id, container)` finds the
    running container's sandbox (None when it is not running)."""

    def __init__(
        self,
        host: str,
        sandbox_of: Callable[[str, str, str], Path | None],
        ended_with: Callable[[str], int | None],
    ) -> None:
        self.host = host
        self.sandbox_of = sandbox_of
        self.ended_with = ended_with
        self.sessions: dict[str, SessionRecord] = {}
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, 0))
        listener.listen(64)
        self._listener = listener
        self._thread = threading.Thread(target=self._accept, name="aws-emulator-ssm", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
            self._listener = None

    def reset(self) -> None:
        with self._lock:
            self.sessions.clear()

    def open(
        self, instance_id: str, request: ExecRequest | None, port: int | None = None
    ) -> SessionRecord:
        record = SessionRecord(
            f"orca-{secrets.token_hex(8)}", instance_id, request, secrets.token_urlsafe(24), port
        )
        with self._lock:
            self.sessions[record.session_id] = record
        return record

    def terminate(self, session_id: str) -> None:
        with self._lock:
            self.sessions.pop(session_id, None)

    def stream_url(self, session_id: str) -> str:
        assert self._listener is not None
        port = self._listener.getsockname()[1]
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{port}/v1/data-channel/{session_id}?role=publish_subscribe"

    def _accept(self) -> None:
        while self._listener is not None:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(
                target=self._serve, args=(connection,), name="aws-emulator-ssm-session", daemon=True
            ).start()

    def _serve(self, connection: socket.socket) -> None:
        with connection:
            try:
                record, leftover = self._handshake(connection)
                if record is not None:
                    _Session(connection, record, self, leftover).run()
            except (OSError, ValueError):
                return

    def _handshake(self, connection: socket.socket) -> tuple[SessionRecord | None, bytes]:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = connection.recv(4096)
            if not chunk:
                return None, b""
            head += chunk
        head, _, leftover = head.partition(b"\r\n\r\n")
        request_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines)}
        path = urllib.parse.urlsplit(request_line.split(" ")[1]).path
        session_id = path.rsplit("/", 1)[-1]
        with self._lock:
            record = self.sessions.get(session_id)
        if record is None or "sec-websocket-key" not in headers:
            connection.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            return None, b""
        connection.sendall(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {ws.accept_key(headers['sec-websocket-key'])}\r\n\r\n"
            ).encode()
        )
        return record, leftover


class _Session:
    """One data channel: the agent's side."""

    def __init__(
        self,
        connection: socket.socket,
        record: SessionRecord,
        server: SessionServer,
        leftover: bytes,
    ) -> None:
        self.connection = connection
        self.record = record
        self.sandbox_of = server.sandbox_of
        self.ended_with = server.ended_with
        self.decoder = ws.FrameDecoder()
        self.pending = self.decoder.feed(leftover)
        self.sequence = 0
        self.write_lock = threading.Lock()
        self.master: int | None = None
        self.target: socket.socket | None = None
        self.detached = threading.Event()

    def send(self, message_type: dc.MessageType, payload_type: dc.PayloadType, data: bytes) -> None:
        with self.write_lock:
            sequence = self.sequence
            if message_type is dc.MessageType.OUTPUT_STREAM_DATA:
                self.sequence += 1
            frame = ws.encode_frame(
                ws.Opcode.BINARY, dc.message(message_type, sequence, payload_type, data).encode()
            )
            self.connection.sendall(frame)

    def frames(self) -> ws.Frame | None:
        while not self.pending:
            data = self.connection.recv(65536)
            if not data:
                return None
            self.pending = self.decoder.feed(data)
        return self.pending.pop(0)

    def run(self) -> None:
        opened = self.frames()
        if opened is None or opened.opcode is not ws.Opcode.TEXT:
            return
        if json.loads(opened.payload).get("TokenValue") != self.record.token:
            self.connection.sendall(ws.close_frame(1008, "token"))
            return
        request = {
            "AgentVersion": "3.3.1957.0",
            "RequestedClientActions": [
                {
                    "ActionType": "SessionType",
                    "ActionParameters": {"SessionType": "InteractiveCommands", "Properties": {}},
                }
            ],
        }
        self.send(
            dc.MessageType.OUTPUT_STREAM_DATA,
            dc.PayloadType.HANDSHAKE_REQUEST,
            json.dumps(request).encode(),
        )
        while True:
            frame = self.frames()
            if frame is None:
                return
            message = dc.decode(frame.payload) if frame.opcode is ws.Opcode.BINARY else None
            if message is not None and message.payload_type == dc.PayloadType.HANDSHAKE_RESPONSE:
                self.send(dc.MessageType.ACKNOWLEDGE, dc.PayloadType.NONE, b"{}")
                break
        self.send(
            dc.MessageType.OUTPUT_STREAM_DATA,
            dc.PayloadType.HANDSHAKE_COMPLETE,
            json.dumps({"HandshakeTimeToComplete": 1000000, "CustomerMessage": ""}).encode(),
        )
        if self.record.port is not None:
            self._forward(self.record.port)
        else:
            self._command()

    def _forward(self, port: int) -> None:
        """Port forwarding: the session's bytes to and from a connection to the port."""
        try:  # every emulated instance is this host, and its containers use its network
            target = socket.create_connection(("127.0.0.1", port), timeout=10)
        except OSError as error:
            self.send(
                dc.MessageType.OUTPUT_STREAM_DATA,
                dc.PayloadType.ERROR,
                f"connection to port {port} failed: {error}".encode(),
            )
            self._close(1)
            return
        target.settimeout(None)
        self.target = target
        threading.Thread(target=self._input, name="aws-emulator-ssm-input", daemon=True).start()
        with target:
            while True:
                try:
                    data = target.recv(65536)
                except OSError:
                    break
                if not data:
                    break
                self.send(dc.MessageType.OUTPUT_STREAM_DATA, dc.PayloadType.OUTPUT, data)
        self.target = None
        self._close(0)

    def _command(self) -> None:
        request = self.record.request
        sandbox = (
            None
            if request is None
            else self.sandbox_of(request.pod_uid, self.record.instance_id, request.container)
        )
        if request is None or sandbox is None:
            container = request.container if request else "?"
            self.send(
                dc.MessageType.OUTPUT_STREAM_DATA,
                dc.PayloadType.OUTPUT,
                f"container {container} is not running\r\n".encode(),
            )
            self._close(NOT_RUNNING_EXIT_CODE)
            return
        if request.attach:
            self._attach(request)
            return
        master, slave = os.openpty()
        self.master = master
        try:
            process = subprocess.Popen(
                request.command,
                cwd=sandbox,
                env={
                    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                    "HOME": str(sandbox),
                    "TERM": "xterm",
                    "HOSTNAME": request.container,
                },
                stdin=slave,
                stdout=slave,
                stderr=slave,
                start_new_session=True,
            )
        except FileNotFoundError:
            os.close(slave)
            os.close(master)
            self.send(
                dc.MessageType.OUTPUT_STREAM_DATA,
                dc.PayloadType.OUTPUT,
                f'exec: "{request.command[0]}": executable file not found in $PATH\r\n'.encode(),
            )
            self._close(127)
            return
        os.close(slave)
        threading.Thread(target=self._input, name="aws-emulator-ssm-input", daemon=True).start()
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:
                break
            if not data:
                break
            self.send(dc.MessageType.OUTPUT_STREAM_DATA, dc.PayloadType.OUTPUT, data)
        code = process.wait()
        os.close(master)
        self.master = None
        self._close(code if code >= 0 else 128 - code)

    def _attach(self, request: ExecRequest) -> None:
        """`docker attach`: the emulated main process writes nothing after it has started, so
        the session shows nothing new and ends, with its exit code, when the container does
        (or when the client detaches)."""
        threading.Thread(target=self._input, name="aws-emulator-ssm-input", daemon=True).start()
        while not self.detached.wait(0.2):
            code = self.ended_with(request.pod_uid)
            if code is not None:
                self._close(code)
                return

    def _input(self) -> None:
        while True:
            try:
                frame = self.frames()
            except (OSError, ValueError):
                self.detached.set()
                return
            if frame is None or frame.opcode is ws.Opcode.CLOSE:
                self.detached.set()
                return
            if frame.opcode is not ws.Opcode.BINARY:
                continue
            message = dc.decode(frame.payload)
            if message.message_type != dc.MessageType.INPUT_STREAM_DATA:
                continue
            with contextlib.suppress(OSError):  # the client may be gone already
                self.send(
                    dc.MessageType.ACKNOWLEDGE,
                    dc.PayloadType.NONE,
                    dc.acknowledgement(message).payload,
                )
            target = self.target
            if target is not None:
                if message.payload_type == dc.PayloadType.OUTPUT:
                    with contextlib.suppress(OSError):
                        target.sendall(message.payload)
                elif message.payload_type == dc.PayloadType.FLAG:
                    with contextlib.suppress(OSError):
                        target.shutdown(socket.SHUT_WR)
                continue
            master = self.master
            if master is None:
                continue  # attached: keystrokes have no process to go to
            if message.payload_type == dc.PayloadType.OUTPUT:
                with contextlib.suppress(OSError):
                    os.write(master, message.payload)
            elif message.payload_type == dc.PayloadType.SIZE:
                size = json.loads(message.payload)
                with contextlib.suppress(OSError, KeyError, ValueError):
                    packed = struct.pack("HHHH", int(size["rows"]), int(size["cols"]), 0, 0)
                    fcntl.ioctl(master, termios.TIOCSWINSZ, packed)

    def _close(self, exit_code: int) -> None:
        with contextlib.suppress(OSError):
            self.send(
                dc.MessageType.OUTPUT_STREAM_DATA,
                dc.PayloadType.EXIT_CODE,
                str(exit_code).encode(),
            )
            closed = {
                "MessageType": "channel_closed",
                "SessionId": self.record.session_id,
                "SchemaVersion": 1,
                "Output": "",
            }
            self.send(
                dc.MessageType.CHANNEL_CLOSED, dc.PayloadType.NONE, json.dumps(closed).encode()
            )
            self.connection.sendall(ws.close_frame())
