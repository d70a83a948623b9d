"""`kubectl exec` on the virtual node: the kubelet's `/exec/{namespace}/{pod}/{container}`.

The API server relays kubectl's WebSocket (`stream_protocol`: v5 or v4 `channel.k8s.io`) to this
endpoint, or speaks SPDY/3.1 to it (`kubelet_spdy`). A non-interactive command runs through SSM
Run Command on the pod's instance
(`orca.exec_command`: `docker exec` in the container, found by its labels), which is the sound
choice for it: one SendCommand and a few GetCommandInvocation polls, the command's exit code as
the invocation's ResponseCode, no session to keep open and no extra agent plugin. What that
cannot do, and so this endpoint does not either (docs/exec.md):

- stdin is delivered whole: with `-i`, the command starts once kubectl closes its stdin (the v5
  close message, or the FIN of its SPDY stream; v4 over WebSocket has neither, so there stdin is
  refused), up to `STDIN_LIMIT_BYTES`;
- output arrives when the command ends, each of stdout and stderr cut at 24,000 characters;
- `-t` gets no terminal: the command runs without one, its stderr merged into stdout as a
  terminal would show it, and resize messages are read and dropped.

An exec with a TTY and stdin (`kubectl exec -it pod -- sh`) is a terminal session through SSM
Session Manager instead (`kubelet_session`), and so is `kubectl attach` (`/attach`, served here
as an exec without a command).

The session runs on the connection's own thread (the HTTP server's), so a long command holds up
nobody else; a reader thread answers the client's pings and collects stdin meanwhile. Logs name
the pod, its instance and the container, never the command or its output (they may carry secrets).
"""

from __future__ import annotations

import base64
import contextlib
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO

from orca import aws_errors
from orca.exec_command import (
    STDIN_LIMIT_BYTES,
    ExecRequest,
    exec_comment,
    render_exec_script,
)
from orca.instance_tags import POD_UID
from orca.logging import bind_work_context, get_logger
from orca.watcher import stream_protocol as ws

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ssm import SSMClient

log = get_logger(__name__)

POLL_SECONDS = 0.5
MAX_POLL_SECONDS = 5.0
"""GetCommandInvocation every 0.5 s at first, backing off to every 5 s for a long command."""
EXEC_TIMEOUT_SECONDS = 3600
"""The Run Command's executionTimeout: a command still running after an hour is stopped."""
_TRUE = ("true", "1")


def stdin_too_large(size: int) -> ExecRefused:
    return ExecRefused(
        413,
        f"stdin of more than {STDIN_LIMIT_BYTES} bytes (got at least {size}) is over what a "
        "non-interactive exec can carry (SSM Run Command parameters, docs/exec.md)",
    )


class ExecRefused(Exception):  # noqa: N818 - the answer, like Refusal
    """An exec the endpoint answers with `code` and `message` instead of running it."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ExecOptions:
    """The kubelet's exec query parameters, as kube-apiserver writes them: `command` (repeated),
    `input`, `output`, `error`, `tty` (`1` or `true`)."""

    command: tuple[str, ...]
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool

    @classmethod
    def from_query(cls, raw_query: str, *, attach: bool = False) -> ExecOptions:
        """Exec's options; `attach`: attach's (the same without a command)."""
        values = urllib.parse.parse_qs(raw_query, keep_blank_values=True)

        def flag(name: str) -> bool:
            return (values.get(name) or [""])[-1].lower() in _TRUE

        command = tuple(values.get("command") or ())
        if not command and not attach:
            raise ExecRefused(400, "you must specify at least one command for the container")
        options = cls(command, flag("input"), flag("output"), flag("error"), flag("tty"))
        if not (options.stdin or options.stdout or options.stderr):
            raise ExecRefused(400, "you must specify at least 1 of stdin, stdout, stderr")
        return options


@dataclass(frozen=True)
class ExecResult:
    exit_code: int | None
    """None when the command did not run to its end; `message` says why."""
    stdout: bytes = b""
    stderr: bytes = b""
    message: str | None = None


class InstanceExec:
    """Runs one command in a pod's container on its instance with SSM Run Command."""

    def __init__(
        self,
        ec2: EC2Client,
        ssm: SSMClient,
        *,
        poll_seconds: float = POLL_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.ec2 = ec2
        self.ssm = ssm
        self.poll_seconds = poll_seconds
        self.sleep = sleep

    def instance_of(self, pod_uid: str) -> str:
        """The running instance of the pod (by its pod-UID tag); ExecRefused when there is none."""
        response = self.ec2.describe_instances(
            Filters=[
                {"Name": f"tag:{POD_UID}", "Values": [pod_uid]},
                {"Name": "instance-state-name", "Values": ["running"]},
            ]
        )
        for reservation in response.get("Reservations", []):
            for instance in reservation.get("Instances", []):
                return str(instance["InstanceId"])
        raise ExecRefused(
            409, "the pod has no running instance (it is starting or has ended); try again"
        )

    def run(
        self,
        pod: dict[str, Any],
        container: str,
        options: ExecOptions,
        stdin: bytes,
        abandoned: Callable[[], bool] = lambda: False,
    ) -> ExecResult:
        """Run the command; `abandoned` says the client has gone, and then the output is not
        waited for (the command runs on to its end, as a kubelet's non-TTY exec does)."""
        metadata = pod["metadata"]
        uid = str(metadata["uid"])
        try:
            instance_id = self.instance_of(uid)
            with bind_work_context(instance_id=instance_id):
                request = ExecRequest(
                    pod_uid=uid,
                    container=container,
                    command=list(options.command),
                    stdin=base64.b64encode(stdin).decode(),
                    tty=options.tty,
                )
                response = self.ssm.send_command(
                    InstanceIds=[instance_id],
                    DocumentName="AWS-RunShellScript",
                    Comment=exec_comment(metadata["namespace"], metadata["name"]),
                    Parameters={
                        "commands": [render_exec_script(request)],
                        "executionTimeout": [str(EXEC_TIMEOUT_SECONDS)],
                    },
                )
                command_id = str(response["Command"]["CommandId"])
                log.info("exec sent", command_id=command_id, container=container)
                result = self._wait(command_id, instance_id, abandoned)
                log.info("exec finished", command_id=command_id, exit_code=result.exit_code)
                return result
        except ExecRefused:
            raise
        except Exception as error:
            code, message = aws_errors.exec_refusal(error)
            log.warning("exec failed", error=message)
            raise ExecRefused(code, message) from error

    def _wait(self, command_id: str, instance_id: str, abandoned: Callable[[], bool]) -> ExecResult:
        delay = self.poll_seconds
        while True:
            invocation: dict[str, Any]
            try:
                invocation = dict(
                    self.ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id)
                )
            except Exception as error:
                if not aws_errors.is_not_found(error):  # not known yet right after SendCommand
                    raise
                invocation = {"Status": "Pending"}
            status = str(invocation.get("Status", "Pending"))
            if status in aws_errors.COMMAND_FINISHED_STATUSES:
                return ExecResult(
                    int(invocation.get("ResponseCode", 0)),
                    str(invocation.get("StandardOutputContent") or "").encode(),
                    str(invocation.get("StandardErrorContent") or "").encode(),
                )
            if status in aws_errors.COMMAND_UNDELIVERED_STATUSES:
                return ExecResult(
                    None,
                    message=f"the command did not run to its end on instance {instance_id}: "
                    f"SSM Run Command {command_id} is {status} "
                    f"({invocation.get('StatusDetails', status)})",
                )
            if abandoned():
                log.info("exec abandoned by its client; the command runs on", command_id=command_id)
                return ExecResult(None, message="the client went away")
            self.sleep(delay)
            delay = min(delay * 1.5, MAX_POLL_SECONDS)


@dataclass
class _Incoming:
    """What the reader thread has seen of the client's messages."""

    stdin: bytearray = field(default_factory=bytearray)
    stdin_closed: threading.Event = field(default_factory=threading.Event)
    gone: threading.Event = field(default_factory=threading.Event)
    error: str | None = None
    sink: Any = None
    """An interactive session (`kubelet_session.Session`) stdin and resizes go to, once open."""
    size: tuple[int, int] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class ExecSession:
    """One upgraded exec connection: read what kubectl sends, run the command, send the
    output, the Status and a close frame."""

    def __init__(
        self,
        reader: BinaryIO,
        connection: socket.socket,
        protocol: str,
        options: ExecOptions,
    ) -> None:
        self.reader = reader
        self.connection = connection
        self.protocol = protocol
        self.options = options
        self.incoming = _Incoming()
        self._write_lock = threading.Lock()

    def send(self, frame: bytes) -> None:
        with self._write_lock:
            self.connection.sendall(frame)

    def serve(self, run: Callable[[bytes], ExecResult]) -> None:
        thread = threading.Thread(target=self._read, name="kubelet-exec-reader", daemon=True)
        thread.start()
        try:
            stdin = self._stdin()
            result = run(stdin) if stdin is not None else None
            if result is not None:
                self._send_result(result)
        except ExecRefused as refusal:
            self.send(ws.status_message(ws.exit_status(None, refusal.message)))
        finally:
            with contextlib.suppress(OSError):
                self.send(ws.close_frame())
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

    def _stdin(self) -> bytes | None:
        """The whole stdin (empty without `stdin`); None when the client went away first."""
        if not self.options.stdin:
            return b""
        if self.protocol != ws.V5:
            raise ExecRefused(
                400,
                f"stdin needs the {ws.V5} protocol (kubectl 1.30 or later), which can say where "
                "stdin ends; this connection speaks " + self.protocol,
            )
        while not self.incoming.stdin_closed.wait(0.2):
            if self.incoming.gone.is_set():
                return None
        if len(self.incoming.stdin) > STDIN_LIMIT_BYTES:
            raise stdin_too_large(len(self.incoming.stdin))
        return bytes(self.incoming.stdin)

    def serve_interactive(self, open_session: Callable[[Callable[[bytes], None]], Any]) -> None:
        """A terminal session: `open_session(write_stdout)` opens it (`kubelet_session`); stdin
        and resizes go to it as they come, its output to stdout, until it ends."""
        thread = threading.Thread(target=self._read, name="kubelet-exec-reader", daemon=True)
        thread.start()
        try:
            session = open_session(
                lambda data: self.send(ws.channel_message(ws.Channel.STDOUT, data))
            )
            with self.incoming.lock:
                buffered, size = bytes(self.incoming.stdin), self.incoming.size
                self.incoming.sink = session
            if size is not None:
                session.resize(*size)
            if buffered:
                session.input(buffered)
            result = session.wait(self.incoming.gone.is_set)
            self.send(ws.status_message(ws.exit_status(result.exit_code, result.message)))
        except ExecRefused as refusal:
            with contextlib.suppress(OSError):
                self.send(ws.status_message(ws.exit_status(None, refusal.message)))
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                self.send(ws.close_frame())
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

    def _send_result(self, result: ExecResult) -> None:
        stdout, stderr = result.stdout, result.stderr
        if self.options.tty:
            stdout, stderr = stdout + stderr, b""
        if stdout and self.options.stdout:
            self.send(ws.channel_message(ws.Channel.STDOUT, stdout))
        if stderr and self.options.stderr:
            self.send(ws.channel_message(ws.Channel.STDERR, stderr))
        self.send(ws.status_message(ws.exit_status(result.exit_code, result.message)))

    def _read(self) -> None:
        decoder = ws.FrameDecoder()
        incoming = self.incoming
        try:
            while not incoming.gone.is_set():
                data = self.reader.read1(65536)  # type: ignore[attr-defined]
                if not data:
                    break
                for frame in decoder.feed(data):
                    if frame.opcode is ws.Opcode.PING:
                        self.send(ws.encode_frame(ws.Opcode.PONG, frame.payload))
                    elif frame.opcode is ws.Opcode.CLOSE:
                        incoming.gone.set()
                        break
                    elif frame.opcode is ws.Opcode.BINARY and frame.payload:
                        self._message(frame.payload)
        except ws.ProtocolError as error:
            incoming.error = str(error)
            with contextlib.suppress(OSError):
                self.send(ws.close_frame(ws.CLOSE_PROTOCOL_ERROR, str(error)))
        except OSError:
            pass
        finally:
            incoming.gone.set()

    def _message(self, payload: bytes) -> None:
        channel, data = payload[0], payload[1:]
        with self.incoming.lock:
            sink = self.incoming.sink
            if sink is None and channel == ws.Channel.RESIZE:
                self.incoming.size = ws.parse_resize(data)
        if sink is not None:
            if channel == ws.Channel.STDIN:
                sink.input(data)
            elif channel == ws.Channel.RESIZE and (size := ws.parse_resize(data)) is not None:
                sink.resize(*size)
            return
        if channel == ws.Channel.STDIN:
            if len(self.incoming.stdin) <= STDIN_LIMIT_BYTES:
                self.incoming.stdin.extend(data)
        elif channel == ws.Channel.CLOSE and data[:1] == bytes([ws.Channel.STDIN]):
            self.incoming.stdin_closed.set()
        # resize (4) has no terminal to go to; other channels are not the client's to send on


def upgrade(handler: Any) -> str:
    """Complete the WebSocket handshake on a `BaseHTTPRequestHandler`; the chosen subprotocol.
    ExecRefused (before anything is sent) when the request is not one this endpoint takes."""
    headers = handler.headers
    if not ws.is_websocket_upgrade(headers):
        raise ExecRefused(
            400,
            "Upgrade request required: this kubelet streams over WebSocket "
            f"({', '.join(ws.SUPPORTED_PROTOCOLS)}) or SPDY/3.1",
        )
    protocol = ws.choose_protocol(headers.get("Sec-WebSocket-Protocol"))
    if protocol is None:
        raise ExecRefused(
            400,
            "no supported subprotocol in Sec-WebSocket-Protocol "
            f"({headers.get('Sec-WebSocket-Protocol') or 'none'}); this kubelet speaks "
            + ", ".join(ws.SUPPORTED_PROTOCOLS),
        )
    key = headers.get("Sec-WebSocket-Key")
    if not key or headers.get("Sec-WebSocket-Version") != "13":
        raise ExecRefused(400, "a WebSocket upgrade needs Sec-WebSocket-Key and version 13")
    handler.close_connection = True
    handler.send_response(101, "Switching Protocols")
    handler.send_header("Upgrade", "websocket")
    handler.send_header("Connection", "Upgrade")
    handler.send_header("Sec-WebSocket-Accept", ws.accept_key(key))
    handler.send_header("Sec-WebSocket-Protocol", protocol)
    handler.end_headers()
    handler.wfile.flush()
    return protocol


def serve_exec(
    handler: Any,
    pod: dict[str, Any],
    container: str,
    runner: InstanceExec | None,
    *,
    attach: bool = False,
) -> None:
    """Serve an authorized `/exec/...` (or, `attach`, `/attach/...`) request for `container` of
    `pod` on the handler's connection, from the handshake to the close frame. An attach is always
    a session (its output streams for as long as the container runs)."""
    raw_query = urllib.parse.urlsplit(handler.path).query
    options = ExecOptions.from_query(raw_query, attach=attach)
    if runner is None:
        raise ExecRefused(501, "exec is not configured on this kubelet")
    metadata = pod["metadata"]
    with bind_work_context(
        pod=f"{metadata['namespace']}/{metadata['name']}", pod_uid=metadata.get("uid")
    ):
        # the SPDY transport and the interactive sessions build on this module
        from orca.watcher import kubelet_spdy
        from orca.watcher.kubelet_session import InstanceSessions

        def run(gone: threading.Event) -> Callable[[bytes], ExecResult]:
            return lambda stdin: runner.run(pod, container, options, stdin, gone.is_set)

        sessions = InstanceSessions(runner, runner.ssm)

        def open_session(write: Callable[[bytes], None]) -> Any:
            return sessions.open(pod, container, options, write, attach=attach)

        interactive = attach or (options.tty and options.stdin)
        if kubelet_spdy.is_spdy_upgrade(handler.headers):
            protocol = kubelet_spdy.upgrade(handler)
            log.info("exec started", container=container, protocol=f"SPDY/{protocol}")
            spdy = kubelet_spdy.SpdyExecSession(handler.rfile, handler.connection, options)
            if interactive:
                spdy.serve_interactive(open_session)
            else:
                spdy.serve(run(spdy.streams.gone))
            return
        protocol = upgrade(handler)
        log.info("exec started", container=container, protocol=protocol, tty=options.tty)
        session = ExecSession(handler.rfile, handler.connection, protocol, options)
        if interactive:
            session.serve_interactive(open_session)
        else:
            session.serve(run(session.incoming.gone))
