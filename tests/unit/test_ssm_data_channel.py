"""Session Manager's agent messages (pure functions)."""

from __future__ import annotations

import hashlib
import json
import struct
import uuid

import pytest

from orca import ssm_data_channel as dc


def test_a_message_round_trips_with_the_documented_layout() -> None:
    original = dc.message(dc.MessageType.INPUT_STREAM_DATA, 7, dc.PayloadType.OUTPUT, b"ls\r")
    wire = original.encode()
    assert struct.unpack_from("!I", wire)[0] == dc.HEADER_LENGTH == 116
    assert wire[4:36] == b"input_stream_data".ljust(32, b" ")
    assert struct.unpack_from("!q", wire, 48)[0] == 7  # after the schema version and date
    assert wire[80:112] == hashlib.sha256(b"ls\r").digest()
    assert struct.unpack_from("!II", wire, 112) == (1, 3)  # payload type, payload length
    decoded = dc.decode(wire)
    assert decoded.message_type == "input_stream_data"
    assert (decoded.sequence_number, decoded.payload_type, decoded.payload) == (7, 1, b"ls\r")
    assert decoded.message_id == original.message_id


def test_the_message_id_is_written_low_half_first() -> None:
    fixed = uuid.UUID("00112233-4455-6677-8899-aabbccddeeff")
    wire = dc.AgentMessage("acknowledge", 0, 0, b"", fixed).encode()
    assert wire[64:80] == bytes.fromhex("8899aabbccddeeff0011223344556677")


def test_a_payload_that_does_not_match_its_digest_is_refused() -> None:
    wire = bytearray(
        dc.message(dc.MessageType.OUTPUT_STREAM_DATA, 0, dc.PayloadType.OUTPUT, b"a").encode()
    )
    wire[-1:] = b"b"
    with pytest.raises(dc.ProtocolError, match="digest"):
        dc.decode(bytes(wire))
    with pytest.raises(dc.ProtocolError, match="shorter"):
        dc.decode(b"\x00" * 10)


def test_acknowledgements_name_the_message() -> None:
    data = dc.message(dc.MessageType.OUTPUT_STREAM_DATA, 4, dc.PayloadType.OUTPUT, b"x")
    body = json.loads(dc.acknowledgement(data).payload)
    assert body == {
        "AcknowledgedMessageType": "output_stream_data",
        "AcknowledgedMessageId": str(data.message_id),
        "AcknowledgedMessageSequenceNumber": 4,
        "IsSequentialMessage": True,
    }


def test_the_handshake_is_answered_action_by_action() -> None:
    request = {
        "RequestedClientActions": [{"ActionType": "SessionType"}, {"ActionType": "KMSEncryption"}]
    }
    answer = json.loads(dc.handshake_response(request))
    assert [a["ActionType"] for a in answer["ProcessedClientActions"]] == [
        "SessionType",
        "KMSEncryption",
    ]
    assert json.loads(dc.open_data_channel("tok"))["TokenValue"] == "tok"
    assert json.loads(dc.size_payload(100, 30)) == {"cols": 100, "rows": 30}
