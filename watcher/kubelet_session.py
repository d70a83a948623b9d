"""SSM Session Manager sessions for the kubelet endpoint: `kubectl exec -it` (a terminal in the
pod's container), `kubectl attach` and, one session per connection, `kubectl port-forward`
(`kubelet_portforward`).

Run Command cannot carry a terminal, so an exec with a TTY and stdin starts a session instead:
`StartSession` with the `AWS-StartInteractiveCommand` document, whose `command` is the
interactive exec script (`orca.exec_command`: `docker exec -it` in the container), then the
session's data channel (`orca.ssm_data_channel`): a WebSocket to the returned `StreamUrl`, opened
with the token, answering the agent's handshake and acknowledging each message. kubectl's stdin
becomes `input_stream_data`, its resize messages size messages, the agent's output kubectl's
stdout. The exit code is the one the agent reports at the end (payload type 12); an agent that
reports none leaves the exec `Success`. TerminateSession when it ends either way.

Logs name the session, the pod and its instance; never what is typed or shown.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import ssl
import struct
import threading
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from orca import aws_errors
from orca import ssm_data_channel as dc
from orca.exec_command import ExecRequest, render_session_command
from orca.logging import bind_work_context, get_logger
from orca.watcher import stream_protocol as ws
from orca.watcher.kubelet_exec import ExecOptions, ExecRefused, ExecResult, InstanceExec

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient

log = get_logger(__name__)

INTERACTIVE_COMMAND_DOCUMENT = "AWS-StartInteractiveCommand"
PORT_FORWARDING_DOCUMENT = "AWS-StartPortForwardingSession"
DISCONNECT_TO_PORT = 1
"""The flag payload that says the forwarded connection closed on the client's side."""
CONNECT_TIMEOUT_SECONDS = 30.0


def connect(stream_url: str) -> tuple[socket.socket, bytes]:
    """A WebSocket client connection to `stream_url` (wss: TLS, verified); the socket and any
    bytes read past the handshake."""
    url = urllib.parse.urlsplit(stream_url)
    secure = url.scheme == "wss"
    host = url.hostname or ""
    port = url.port or (443 if secure else 80)
    raw = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_SECONDS)
    connection: socket.socket = (
        ssl.create_default_context().wrap_socket(raw, server_hostname=host) if secure else raw
    )
    key = base64.b64encode(os.urandom(16)).decode()
    target = url.path + (f"?{url.query}" if url.query else "")
    connection.sendall(
        (
            f"GET {target} HTTP/1.1\r\nHost: {url.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = connection.recv(4096)
        if not chunk:
            raise OSError("the data channel closed during the handshake")
        head += chunk
    head, _, rest = head.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    accept = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines)}
    if " 101 " not in f"{status} " or accept.get("sec-websocket-accept") != ws.accept_key(key):
        raise OSError(f"the data channel refused the WebSocket: {status}")
    connection.settimeout(None)
    return connection, rest


class DataChannel:
    """One Session Manager session's data channel, from the client's side."""

    def __init__(
        self,
        connection: socket.socket,
        leftover: bytes,
        token: str,
        output: Callable[[bytes], None],
        client_version: str = dc.CLIENT_VERSION,
    ) -> None:
        self.connection = connection
        self.client_version = client_version
        self.output = output
        self.decoder = ws.FrameDecoder(require_mask=False)
        self.leftover = leftover
        self.sequence = 0
        self.exit_code: int | None = None
        self.done = threading.Event()
        self.handshaken = threading.Event()
        self._write_lock = threading.Lock()
        self._send_frame(ws.Opcode.TEXT, dc.open_data_channel(token, client_version).encode())
        self._reader = threading.Thread(target=self._read, name="kubelet-ssm-data", daemon=True)
        self._reader.start()

    def _send_frame(self, opcode: ws.Opcode, payload: bytes) -> None:
        with self._write_lock:
            self.connection.sendall(ws.encode_frame(opcode, payload, mask=os.urandom(4)))

    def _send(self, message: dc.AgentMessage) -> None:
        self._send_frame(ws.Opcode.BINARY, message.encode())

    def _input(self, payload_type: dc.PayloadType, data: bytes) -> None:
        with self._write_lock:
            sequence = self.sequence
            self.sequence += 1
        self._send(dc.message(dc.MessageType.INPUT_STREAM_DATA, sequence, payload_type, data))

    def input(self, data: bytes) -> None:
        self.handshaken.wait(CONNECT_TIMEOUT_SECONDS)
        if data and not self.done.is_set():
            self._input(dc.PayloadType.OUTPUT, data)

    def flag(self, value: int) -> None:
        self.handshaken.wait(CONNECT_TIMEOUT_SECONDS)
        if not self.done.is_set():
            self._input(dc.PayloadType.FLAG, struct.pack("!I", value))

    def resize(self, width: int, height: int) -> None:
        self.handshaken.wait(CONNECT_TIMEOUT_SECONDS)
        if not self.done.is_set():
            self._input(dc.PayloadType.SIZE, dc.size_payload(width, height))

    def close(self) -> None:
        self.done.set()
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _read(self) -> None:
        try:
            data = self.leftover
            while not self.done.is_set():
                for frame in self.decoder.feed(data):
                    if frame.opcode is ws.Opcode.CLOSE:
                        return
                    if frame.opcode is ws.Opcode.PING:
                        self._send_frame(ws.Opcode.PONG, frame.payload)
                    elif frame.opcode is ws.Opcode.BINARY:
                        self._message(dc.decode(frame.payload))
                data = self.connection.recv(65536)
                if not data:
                    return
        except (OSError, ValueError) as error:
            log.info("session data channel ended", error=str(error))
        finally:
            self.done.set()
            self.handshaken.set()

    def _message(self, message: dc.AgentMessage) -> None:
        if message.message_type == dc.MessageType.CHANNEL_CLOSED:
            self.done.set()
            return
        if message.message_type != dc.MessageType.OUTPUT_STREAM_DATA:
            return  # acknowledgements of ours, publication control
        with contextlib.suppress(OSError):  # the agent may have closed after its last message
            self._send(dc.acknowledgement(message))
        if message.payload_type == dc.PayloadType.HANDSHAKE_REQUEST:
            request: dict[str, Any] = json.loads(message.payload or b"{}")
            response = dc.handshake_response(request, self.client_version)
            self._input(dc.PayloadType.HANDSHAKE_RESPONSE, response)
        elif message.payload_type == dc.PayloadType.HANDSHAKE_COMPLETE:
            self.handshaken.set()
        elif message.payload_type in (dc.PayloadType.OUTPUT, dc.PayloadType.STDERR):
            self.handshaken.set()  # an agent without a handshake
            self.output(message.payload)
        elif message.payload_type == dc.PayloadType.EXIT_CODE:
            with contextlib.suppress(ValueError):
                self.exit_code = int(message.payload.decode().strip())


class InstanceSessions:
    """Opens interactive sessions in pods' containers (the instance found as `InstanceExec`
    finds it)."""

    def __init__(self, runner: InstanceExec, ssm: SSMClient) -> None:
        self.runner = runner
        self.ssm = ssm

    def open(
        self,
        pod: dict[str, Any],
        container: str,
        options: ExecOptions,
        output: Callable[[bytes], None],
        *,
        attach: bool = False,
    ) -> Session:
        """A terminal session running the exec's command (`attach`: attached to the container's
        main process instead)."""
        metadata = pod["metadata"]
        request = ExecRequest(
            pod_uid=str(metadata["uid"]),
            container=container,
            command=list(options.command),
            tty=True,
            attach=attach,
        )
        parameters = {"command": [render_session_command(request)]}
        reason = "kubectl attach" if attach else "kubectl exec"
        return self._start(pod, INTERACTIVE_COMMAND_DOCUMENT, parameters, output, reason)

    def open_port(self, pod: dict[str, Any], port: int, output: Callable[[bytes], None]) -> Session:
        """A session carrying one connection to `port` on the pod's instance."""
        parameters = {"portNumber": [str(port)], "localPortNumber": ["0"]}
        return self._start(
            pod,
            PORT_FORWARDING_DOCUMENT,
            parameters,
            output,
            "kubectl port-forward",
            dc.PLAIN_PORT_CLIENT_VERSION,
        )

    def _start(
        self,
        pod: dict[str, Any],
        document: str,
        parameters: dict[str, list[str]],
        output: Callable[[bytes], None],
        reason: str,
        client_version: str = dc.CLIENT_VERSION,
    ) -> Session:
        metadata = pod["metadata"]
        instance_id = self.runner.instance_of(str(metadata["uid"]))
        with bind_work_context(instance_id=instance_id):
            try:
                started = self.ssm.start_session(
                    Target=instance_id,
                    DocumentName=document,
                    Reason=f"{reason} {metadata['namespace']}/{metadata['name']}"[:256],
                    Parameters=parameters,
                )
            except Exception as error:
                code, message = aws_errors.exec_refusal(error)
                log.warning("session not started", error=message)
                raise ExecRefused(code, message) from error
            session_id = str(started["SessionId"])
            try:
                connection, leftover = connect(str(started["StreamUrl"]))
            except OSError as error:
                self._terminate(session_id)
                raise ExecRefused(
                    502, f"the session's data channel could not be opened: {error}"
                ) from error
            log.info("session started", session_id=session_id, document=document)
            token = str(started["TokenValue"])
            channel = DataChannel(connection, leftover, token, output, client_version)
            return Session(self, session_id, channel)

    def _terminate(self, session_id: str) -> None:
        try:
            self.ssm.terminate_session(SessionId=session_id)
        except Exception as error:
            log.info("session not terminated", session_id=session_id, error=str(error))


class Session:
    """An open session: feed it input and resizes, wait for its end."""

    def __init__(self, owner: InstanceSessions, session_id: str, channel: DataChannel) -> None:
        self.owner = owner
        self.session_id = session_id
        self.channel = channel

    def input(self, data: bytes) -> None:
        self.channel.input(data)

    def resize(self, width: int, height: int) -> None:
        self.channel.resize(width, height)

    def disconnect(self) -> None:
        """The forwarded connection closed on this side (port forwarding)."""
        self.channel.flag(DISCONNECT_TO_PORT)

    def close(self) -> None:
        self.channel.close()

    def wait(self, abandoned: Callable[[], bool]) -> ExecResult:
        while not self.channel.done.wait(0.5):
            if abandoned():
                break
        self.channel.close()
        self.owner._terminate(self.session_id)
        code = self.channel.exit_code
        log.info("session ended", session_id=self.session_id, exit_code=code)
        return ExecResult(0 if code is None else code)
