"""`/exec` over SPDY/3.1: what kube-apiserver 1.30-1.32 speaks to kubelets (and kubectl with
`KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false`).

The same command as over WebSocket (`kubelet_exec`), carried on SPDY streams
(`spdy_protocol`): the client opens `error`, then `stdin` / `stdout` / `stderr` / `resize` as the
query asks; this side answers each SYN_STREAM, waits for them all, takes the stdin to its FIN,
runs the command, writes stdout and stderr each ending with FIN, then the `v4.channel.k8s.io`
Status on `error`, and closes the connection as the kubelet does.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from orca.exec_command import STDIN_LIMIT_BYTES
from orca.logging import get_logger
from orca.watcher import spdy_protocol as spdy
from orca.watcher import stream_protocol as ws
from orca.watcher.kubelet_exec import ExecOptions, ExecRefused, ExecResult, stdin_too_large

log = get_logger(__name__)

PROTOCOL_HEADER = "X-Stream-Protocol-Version"
SUPPORTED_PROTOCOLS = (ws.V4,)
"""v5 is WebSocket's (its close message); over SPDY streams end with FIN, which v4 already has."""
STREAM_CREATION_SECONDS = 30.0
"""How long the client has to open the streams the query asks for (the kubelet's
`--streaming-connection-idle-timeout` is longer; its stream creation timeout is 30 s)."""


def is_spdy_upgrade(headers: Any) -> bool:
    return str(headers.get("Upgrade") or "").lower() == spdy.UPGRADE.lower()


def upgrade(handler: Any) -> str:
    """Answer `101 Switching Protocols` for a SPDY upgrade; the chosen stream protocol."""
    offered = [
        p.strip()
        for value in handler.headers.get_all(PROTOCOL_HEADER) or ()
        for p in str(value).split(",")
    ]
    protocol = next((p for p in SUPPORTED_PROTOCOLS if p in offered), None)
    if protocol is None:
        raise ExecRefused(
            403,
            f"no supported {PROTOCOL_HEADER} ({', '.join(offered) or 'none'}); over SPDY this "
            f"kubelet speaks {', '.join(SUPPORTED_PROTOCOLS)}",
        )
    handler.close_connection = True
    handler.send_response(101, "Switching Protocols")
    handler.send_header("Connection", "Upgrade")
    handler.send_header("Upgrade", spdy.UPGRADE)
    handler.send_header(PROTOCOL_HEADER, protocol)
    handler.end_headers()
    handler.wfile.flush()
    return protocol


@dataclass
class _Streams:
    ids: dict[str, int] = field(default_factory=dict)
    stdin: bytearray = field(default_factory=bytearray)
    stdin_closed: threading.Event = field(default_factory=threading.Event)
    gone: threading.Event = field(default_factory=threading.Event)
    changed: threading.Condition = field(default_factory=threading.Condition)
    sink: Any = None
    """An interactive session (`kubelet_session.Session`) stdin and resizes go to, once open."""
    size: tuple[int, int] | None = None


class SpdyExecSession:
    def __init__(self, reader: BinaryIO, connection: socket.socket, options: ExecOptions) -> None:
        self.reader = reader
        self.connection = connection
        self.options = options
        self.codec = spdy.HeaderCodec()
        self.streams = _Streams()
        self._write_lock = threading.Lock()

    def send(self, frame: bytes) -> None:
        with self._write_lock:
            self.connection.sendall(frame)

    def expected(self) -> set[str]:
        wanted = {"error"}
        for name, on in (
            ("stdin", self.options.stdin),
            ("stdout", self.options.stdout),
            ("stderr", self.options.stderr and not self.options.tty),
            ("resize", self.options.tty),
        ):
            if on:
                wanted.add(name)
        return wanted

    def serve(self, run: Callable[[bytes], ExecResult]) -> None:
        thread = threading.Thread(target=self._read, name="kubelet-spdy-reader", daemon=True)
        thread.start()
        try:
            if not self._await_streams():
                return
            try:
                stdin = self._stdin()
                if stdin is None:
                    return
                result = run(stdin)
            except ExecRefused as refusal:
                result = ExecResult(None, message=refusal.message)
            self._send_result(result)
        finally:
            with contextlib.suppress(OSError):
                self.send(spdy.goaway(0))
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

    def serve_interactive(self, open_session: Callable[[Callable[[bytes], None]], Any]) -> None:
        """A terminal session (`kubelet_session`): stdin and resizes go to it as they come, its
        output to stdout, until it ends."""
        thread = threading.Thread(target=self._read, name="kubelet-spdy-reader", daemon=True)
        thread.start()
        try:
            if not self._await_streams():
                return
            stdout = self.streams.ids["stdout"]
            try:
                session = open_session(
                    lambda data: self.send(spdy.data_frames(stdout, data, fin=False))
                )
                with self.streams.changed:
                    buffered, size = bytes(self.streams.stdin), self.streams.size
                    self.streams.sink = session
                if size is not None:
                    session.resize(*size)
                if buffered:
                    session.input(buffered)
                result = session.wait(self.streams.gone.is_set)
            except ExecRefused as refusal:
                result = ExecResult(None, message=refusal.message)
            self._send_result(ExecResult(result.exit_code, message=result.message))
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                self.send(spdy.goaway(0))
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

    def _await_streams(self) -> bool:
        wanted = self.expected()
        with self.streams.changed:
            ready = self.streams.changed.wait_for(
                lambda: wanted <= set(self.streams.ids) or self.streams.gone.is_set(),
                timeout=STREAM_CREATION_SECONDS,
            )
        if not ready or self.streams.gone.is_set():
            log.info("exec streams not opened", wanted=sorted(wanted))
            return False
        return True

    def _stdin(self) -> bytes | None:
        if not self.options.stdin:
            return b""
        while not self.streams.stdin_closed.wait(0.2):
            if self.streams.gone.is_set():
                return None
        if len(self.streams.stdin) > STDIN_LIMIT_BYTES:
            raise stdin_too_large(len(self.streams.stdin))
        return bytes(self.streams.stdin)

    def _send_result(self, result: ExecResult) -> None:
        ids = self.streams.ids
        stdout, stderr = result.stdout, result.stderr
        if self.options.tty:
            stdout, stderr = stdout + stderr, b""
        if "stdout" in ids:
            self.send(spdy.data_frames(ids["stdout"], stdout, fin=True))
        if "stderr" in ids:
            self.send(spdy.data_frames(ids["stderr"], stderr, fin=True))
        status = ws.exit_status(result.exit_code, result.message)
        payload = json.dumps(status, separators=(",", ":")).encode()
        self.send(spdy.data_frames(ids["error"], payload, fin=True))

    def _read(self) -> None:
        decoder = spdy.FrameDecoder()
        streams = self.streams
        try:
            while not streams.gone.is_set():
                data = self.reader.read1(65536)  # type: ignore[attr-defined]
                if not data:
                    break
                for frame in decoder.feed(data):
                    if isinstance(frame, spdy.DataFrame):
                        self._data(frame)
                    else:
                        self._control(frame)
        except (spdy.ProtocolError, OSError) as error:
            log.info("exec SPDY connection ended", error=str(error))
        finally:
            streams.gone.set()
            with streams.changed:
                streams.changed.notify_all()

    def _control(self, frame: spdy.ControlFrame) -> None:
        if frame.type == spdy.FrameType.SYN_STREAM:
            syn = self.codec.syn_stream(frame)
            kind = syn.headers.get("streamtype", "")
            self.send(self.codec.syn_reply(syn.stream_id, {}))
            with self.streams.changed:
                self.streams.ids[kind] = syn.stream_id
                self.streams.changed.notify_all()
            if kind == "stdin" and syn.fin:
                self.streams.stdin_closed.set()
        elif frame.type == spdy.FrameType.PING:
            self.send(spdy.control_frame(spdy.FrameType.PING, 0, frame.data))
        elif frame.type == spdy.FrameType.GOAWAY:
            self.streams.gone.set()
        # SETTINGS, WINDOW_UPDATE, HEADERS, RST_STREAM: nothing to do for a one-shot command

    def _data(self, frame: spdy.DataFrame) -> None:
        with self.streams.changed:
            sink = self.streams.sink
            resize = frame.stream_id == self.streams.ids.get("resize")
            sizes = [
                size
                for line in frame.data.splitlines()
                if resize and (size := ws.parse_resize(line)) is not None
            ]
            if sink is None and sizes:
                self.streams.size = sizes[-1]
        if resize:
            for size in sizes if sink is not None else ():
                sink.resize(*size)
            return
        if frame.stream_id != self.streams.ids.get("stdin"):
            return
        if sink is not None:
            sink.input(frame.data)
            return
        if len(self.streams.stdin) <= STDIN_LIMIT_BYTES:
            self.streams.stdin.extend(frame.data)
        if frame.fin:
            self.streams.stdin_closed.set()
