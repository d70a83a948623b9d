"""SSM Session Manager's data channel: the binary agent messages of a session's WebSocket.

StartSession returns a `StreamUrl` (`wss://ssmmessages.<region>.amazonaws.com/v1/data-channel/
<session-id>?role=publish_subscribe`) and a `TokenValue`. The client opens a WebSocket to the URL,
sends one text message (`open_data_channel`: the token, a request ID, a client ID and version),
then both sides exchange binary agent messages, as the open-source session-manager-plugin and the
SSM agent do:

    uint32 header length (116) | 32 bytes message type, space padded | uint32 schema version |
    uint64 created (ms) | int64 sequence number | uint64 flags | 16 bytes message ID |
    32 bytes SHA-256 of the payload | uint32 payload type | uint32 payload length | payload

Message types used here: `input_stream_data` (client → agent: keystrokes, payload type 1, and
terminal sizes, payload type 3 `{"cols": c, "rows": r}`), `output_stream_data` (agent → client:
output, payload type 1; the handshake, types 5-7; the exit code, type 12, where the agent sends
it), `acknowledge` (each data message is acknowledged with its type, ID and sequence number) and
`channel_closed` (the session is over). Defined once here for the watcher (the client) and the
AWS emulator (which plays the agent).
"""

from __future__ import annotations

import hashlib
import json
import struct
import time
import uuid
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any

HEADER_LENGTH = 116
SCHEMA_VERSION = 1
CLIENT_VERSION = "1.2.0.0"
PLAIN_PORT_CLIENT_VERSION = "1.0.0.0"
"""Announced for port-forwarding sessions: the agent multiplexes connections (smux) only for
newer clients, and ORCA bridges one connection per session, the plain mode."""
_HEADER = struct.Struct("!I32sIQqQ16s32sI")  # up to and including the payload type


class MessageType(StrEnum):
    INPUT_STREAM_DATA = "input_stream_data"
    OUTPUT_STREAM_DATA = "output_stream_data"
    ACKNOWLEDGE = "acknowledge"
    CHANNEL_CLOSED = "channel_closed"
    START_PUBLICATION = "start_publication"
    PAUSE_PUBLICATION = "pause_publication"


class PayloadType(IntEnum):
    NONE = 0
    OUTPUT = 1
    ERROR = 2
    SIZE = 3
    PARAMETER = 4
    HANDSHAKE_REQUEST = 5
    HANDSHAKE_RESPONSE = 6
    HANDSHAKE_COMPLETE = 7
    FLAG = 10
    STDERR = 11
    EXIT_CODE = 12


class ProtocolError(ValueError):
    """A message that is not an agent message."""


@dataclass(frozen=True)
class AgentMessage:
    message_type: str
    sequence_number: int
    payload_type: int
    payload: bytes
    message_id: uuid.UUID
    flags: int = 0
    created_ms: int = 0

    def encode(self) -> bytes:
        raw_id = self.message_id.bytes
        head = _HEADER.pack(
            HEADER_LENGTH,
            self.message_type.encode().ljust(32, b" "),
            SCHEMA_VERSION,
            self.created_ms or int(time.time() * 1000),
            self.sequence_number,
            self.flags,
            raw_id[8:] + raw_id[:8],  # the agent writes the UUID's low half first
            hashlib.sha256(self.payload).digest(),
            int(self.payload_type),
        )
        return head + struct.pack("!I", len(self.payload)) + self.payload


def message(
    message_type: MessageType, sequence_number: int, payload_type: PayloadType, payload: bytes
) -> AgentMessage:
    return AgentMessage(
        str(message_type), sequence_number, int(payload_type), payload, uuid.uuid4()
    )


def decode(data: bytes) -> AgentMessage:
    if len(data) < HEADER_LENGTH + 4:
        raise ProtocolError(f"an agent message of {len(data)} bytes is shorter than its header")
    (header_length, kind, _, created, sequence, flags, raw_id, digest, payload_type) = (
        _HEADER.unpack_from(data, 0)
    )
    if header_length != HEADER_LENGTH:
        raise ProtocolError(f"header length {header_length}, not {HEADER_LENGTH}")
    (length,) = struct.unpack_from("!I", data, HEADER_LENGTH)
    payload = data[HEADER_LENGTH + 4 : HEADER_LENGTH + 4 + length]
    if len(payload) != length:
        raise ProtocolError("an agent message shorter than its payload length")
    if payload and hashlib.sha256(payload).digest() != digest:
        raise ProtocolError("an agent message whose payload does not match its digest")
    return AgentMessage(
        kind.decode().strip(" \x00"),
        sequence,
        payload_type,
        payload,
        uuid.UUID(bytes=raw_id[8:] + raw_id[:8]),
        flags,
        created,
    )


def acknowledgement(of: AgentMessage) -> AgentMessage:
    body = {
        "AcknowledgedMessageType": of.message_type,
        "AcknowledgedMessageId": str(of.message_id),
        "AcknowledgedMessageSequenceNumber": of.sequence_number,
        "IsSequentialMessage": True,
    }
    return message(MessageType.ACKNOWLEDGE, 0, PayloadType.NONE, json.dumps(body).encode())


def open_data_channel(token: str, client_version: str = CLIENT_VERSION) -> str:
    """The first (text) message on the data channel."""
    return json.dumps(
        {
            "MessageSchemaVersion": "1.0",
            "RequestId": str(uuid.uuid4()),
            "TokenValue": token,
            "ClientId": str(uuid.uuid4()),
            "ClientVersion": client_version,
        }
    )


def handshake_response(request: dict[str, Any], client_version: str = CLIENT_VERSION) -> bytes:
    """The client's answer to the agent's HandshakeRequest: every requested action processed."""
    actions = [
        {"ActionType": action.get("ActionType"), "ActionStatus": 1}
        for action in request.get("RequestedClientActions") or []
    ]
    return json.dumps(
        {"ClientVersion": client_version, "ProcessedClientActions": actions, "Errors": []}
    ).encode()


def size_payload(columns: int, rows: int) -> bytes:
    return json.dumps({"cols": columns, "rows": rows}).encode()
