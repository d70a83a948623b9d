"""The Kubernetes remote-command streaming protocol over WebSocket, as pure functions.

kubectl (1.30+) asks the API server for `pods/exec` and `pods/attach` with a WebSocket upgrade
offering the subprotocols `v5.channel.k8s.io`, `v4.channel.k8s.io`, ...; the API server relays
the connection to the kubelet, which picks one. After the handshake (RFC 6455 section 4) every
message is a binary frame whose first byte is the channel:

- 0 stdin (client → server), 1 stdout, 2 stderr (server → client);
- 3 error: in v4 and v5 one `metav1.Status` JSON when the command ends: `Success`, or `Failure`
  with reason `NonZeroExitCode` and a cause `{"reason": "ExitCode", "message": "<code>"}`, which
  kubectl turns into its own exit code;
- 4 resize (client → server, with a TTY): `{"Width": w, "Height": h}`;
- 255 close (v5 only): `[255, <channel>]` says the sender will write no more on that channel;
  kubectl sends `[255, 0]` at the end of its stdin.

Client frames are masked, server frames are not (RFC 6455 section 5.3). This module owns the
bytes; `kubelet_exec` owns the sockets.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
SUPPORTED_PROTOCOLS = (V5, V4)
"""What this endpoint speaks, best first (v1-v3 carry the error channel as plain text)."""
MAX_FRAME_BYTES = 16 * 1024 * 1024
"""A client frame larger than this is a protocol error (stdin arrives in 32 KiB pieces)."""


class Opcode(IntEnum):
    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


class Channel(IntEnum):
    STDIN = 0
    STDOUT = 1
    STDERR = 2
    ERROR = 3
    RESIZE = 4
    CLOSE = 255


CLOSE_NORMAL = 1000
CLOSE_PROTOCOL_ERROR = 1002


class ProtocolError(ValueError):
    """The peer broke RFC 6455 or the channel protocol."""


def accept_key(key: str) -> str:
    """`Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`."""
    digest = hashlib.sha1((key.strip() + WEBSOCKET_GUID).encode(), usedforsecurity=False)
    return base64.b64encode(digest.digest()).decode()


def choose_protocol(offered: str | None) -> str | None:
    """The subprotocol to answer with, from a `Sec-WebSocket-Protocol` header; None when the
    client offers none this endpoint speaks."""
    names = [p.strip() for p in (offered or "").split(",") if p.strip()]
    for protocol in SUPPORTED_PROTOCOLS:
        if protocol in names:
            return protocol
    return None


def is_websocket_upgrade(headers: Any) -> bool:
    """Whether request headers (a `Message`-like mapping) ask for a WebSocket upgrade."""
    upgrade = str(headers.get("Upgrade") or "").lower()
    connection = str(headers.get("Connection") or "").lower()
    return upgrade == "websocket" and "upgrade" in [c.strip() for c in connection.split(",")]


def encode_frame(opcode: Opcode, payload: bytes, *, mask: bytes | None = None) -> bytes:
    """One final frame. Servers send unmasked frames; a client passes a 4-byte `mask`."""
    length = len(payload)
    head = bytes([0x80 | int(opcode)])
    mask_bit = 0x80 if mask is not None else 0
    if length < 126:
        head += bytes([mask_bit | length])
    elif length < 1 << 16:
        head += bytes([mask_bit | 126]) + struct.pack("!H", length)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", length)
    if mask is None:
        return head + payload
    if len(mask) != 4:
        raise ValueError("a WebSocket mask is 4 bytes")
    return head + mask + _unmask(payload, mask)


def channel_message(channel: Channel, data: bytes) -> bytes:
    """A server frame carrying `data` on `channel`."""
    return encode_frame(Opcode.BINARY, bytes([int(channel)]) + data)


def close_frame(code: int = CLOSE_NORMAL, reason: str = "") -> bytes:
    return encode_frame(Opcode.CLOSE, struct.pack("!H", code) + reason.encode()[:120])


def exit_status(exit_code: int | None, message: str | None = None) -> dict[str, Any]:
    """The error channel's Status for a finished command (v4/v5): `exit_code` 0 is Success;
    None with a `message` is a failure to run at all (kubectl prints the message, exits 1)."""
    if exit_code == 0:
        return {"metadata": {}, "status": "Success"}
    if exit_code is None:
        return {
            "metadata": {},
            "status": "Failure",
            "message": message or "the command could not be run",
            "reason": "InternalError",
        }
    return {
        "metadata": {},
        "status": "Failure",
        "message": message or f"command terminated with non-zero exit code: {exit_code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(exit_code)}]},
    }


def status_message(status: dict[str, Any]) -> bytes:
    """The error-channel frame for `status`."""
    return channel_message(Channel.ERROR, json.dumps(status, separators=(",", ":")).encode())


def parse_resize(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a resize message, None when it is not one."""
    try:
        size = json.loads(data)
        return int(size["Width"]), int(size["Height"])
    except (ValueError, TypeError, KeyError):
        return None


@dataclass(frozen=True)
class Frame:
    opcode: Opcode
    payload: bytes


class FrameDecoder:
    """Incremental decoder of client frames: feed bytes, take whole messages (fragmented
    messages are reassembled; control frames may arrive between fragments)."""

    def __init__(self, *, require_mask: bool = True) -> None:
        self._buffer = bytearray()
        self._require_mask = require_mask
        self._fragments: list[bytes] = []
        self._fragment_opcode: Opcode | None = None

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer.extend(data)
        frames: list[Frame] = []
        while True:
            frame = self._next_frame()
            if frame is None:
                return frames
            fin, opcode, payload = frame
            if opcode >= Opcode.CLOSE:
                if not fin:
                    raise ProtocolError("a control frame must not be fragmented")
                frames.append(Frame(opcode, payload))
            elif opcode == Opcode.CONTINUATION:
                if self._fragment_opcode is None:
                    raise ProtocolError("a continuation frame without a message to continue")
                self._fragments.append(payload)
                if fin:
                    frames.append(Frame(self._fragment_opcode, b"".join(self._fragments)))
                    self._fragments, self._fragment_opcode = [], None
            elif self._fragment_opcode is not None:
                raise ProtocolError("a new message began before the last one ended")
            elif fin:
                frames.append(Frame(opcode, payload))
            else:
                self._fragment_opcode, self._fragments = opcode, [payload]

    def _next_frame(self) -> tuple[bool, Opcode, bytes] | None:
        buffer = self._buffer
        if len(buffer) < 2:
            return None
        fin = bool(buffer[0] & 0x80)
        if buffer[0] & 0x70:
            raise ProtocolError("reserved bits set without a negotiated extension")
        try:
            opcode = Opcode(buffer[0] & 0x0F)
        except ValueError:
            raise ProtocolError(f"unknown opcode {buffer[0] & 0x0F:#x}") from None
        masked = bool(buffer[1] & 0x80)
        if self._require_mask and not masked:
            raise ProtocolError("client frames must be masked")
        length = buffer[1] & 0x7F
        offset = 2
        if length == 126:
            if len(buffer) < 4:
                return None
            length = struct.unpack_from("!H", buffer, 2)[0]
            offset = 4
        elif length == 127:
            if len(buffer) < 10:
                return None
            length = struct.unpack_from("!Q", buffer, 2)[0]
            offset = 10
        if length > MAX_FRAME_BYTES:
            raise ProtocolError(f"a frame of {length} bytes is over {MAX_FRAME_BYTES}")
        mask = b""
        if masked:
            if len(buffer) < offset + 4:
                return None
            mask = bytes(buffer[offset : offset + 4])
            offset += 4
        if len(buffer) < offset + length:
            return None
        payload = bytes(buffer[offset : offset + length])
        del buffer[: offset + length]
        return fin, opcode, _unmask(payload, mask) if masked else payload


def _unmask(payload: bytes, mask: bytes) -> bytes:
    if not payload:
        return payload
    repeated = (mask * (len(payload) // 4 + 1))[: len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
        len(payload), "big"
    )
