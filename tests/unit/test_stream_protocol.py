"""The WebSocket framing and the channel protocol of `kubectl exec` (pure functions)."""

from __future__ import annotations

import json
import struct

import pytest

from orca.watcher import stream_protocol as ws

MASK = b"\x01\x02\x03\x04"


def test_accept_key_is_the_rfc_6455_example() -> None:
    assert ws.accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        ("v5.channel.k8s.io, v4.channel.k8s.io, v3.channel.k8s.io", ws.V5),
        ("v4.channel.k8s.io,v3.channel.k8s.io", ws.V4),
        ("v3.channel.k8s.io, channel.k8s.io", None),
        (None, None),
    ],
)
def test_the_best_offered_subprotocol_is_chosen(offered: str | None, chosen: str | None) -> None:
    assert ws.choose_protocol(offered) == chosen


def test_upgrade_headers_are_recognised_case_insensitively() -> None:
    assert ws.is_websocket_upgrade({"Upgrade": "WebSocket", "Connection": "keep-alive, Upgrade"})
    assert not ws.is_websocket_upgrade({"Upgrade": "SPDY/3.1", "Connection": "Upgrade"})
    assert not ws.is_websocket_upgrade({"Connection": "Upgrade"})


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 200_000])
def test_masked_client_frames_of_every_length_encoding_decode(size: int) -> None:
    payload = bytes(i % 251 for i in range(size))
    frame = ws.encode_frame(ws.Opcode.BINARY, payload, mask=MASK)
    assert frame[1] & 0x80  # the mask bit
    frames = ws.FrameDecoder().feed(frame)
    assert frames == [ws.Frame(ws.Opcode.BINARY, payload)]


def test_server_frames_are_unmasked_with_the_channel_first() -> None:
    frame = ws.channel_message(ws.Channel.STDOUT, b"hi")
    assert frame == bytes([0x82, 3, 1]) + b"hi"


def test_a_frame_split_across_reads_comes_out_once_whole() -> None:
    frame = ws.encode_frame(ws.Opcode.BINARY, b"\x00stdin bytes", mask=MASK)
    decoder = ws.FrameDecoder()
    seen = [f for i in range(len(frame)) for f in decoder.feed(frame[i : i + 1])]
    assert seen == [ws.Frame(ws.Opcode.BINARY, b"\x00stdin bytes")]


def test_fragments_are_reassembled_around_a_ping() -> None:
    first = bytes([0x02, 0x80 | 3]) + MASK + bytes(b ^ MASK[i % 4] for i, b in enumerate(b"\x00ab"))
    ping = ws.encode_frame(ws.Opcode.PING, b"p", mask=MASK)
    last = bytes([0x80, 0x80 | 2]) + MASK + bytes(b ^ MASK[i % 4] for i, b in enumerate(b"cd"))
    frames = ws.FrameDecoder().feed(first + ping + last)
    assert frames == [ws.Frame(ws.Opcode.PING, b"p"), ws.Frame(ws.Opcode.BINARY, b"\x00abcd")]


def test_unmasked_client_frames_and_unknown_opcodes_are_protocol_errors() -> None:
    with pytest.raises(ws.ProtocolError, match="masked"):
        ws.FrameDecoder().feed(ws.encode_frame(ws.Opcode.BINARY, b"x"))
    with pytest.raises(ws.ProtocolError, match="opcode"):
        ws.FrameDecoder().feed(bytes([0x83, 0x80]) + MASK)
    with pytest.raises(ws.ProtocolError, match="continuation"):
        ws.FrameDecoder().feed(bytes([0x80, 0x80]) + MASK)


def test_an_oversized_frame_is_refused_before_it_is_buffered() -> None:
    head = bytes([0x82, 0x80 | 127]) + struct.pack("!Q", ws.MAX_FRAME_BYTES + 1)
    with pytest.raises(ws.ProtocolError, match="over"):
        ws.FrameDecoder().feed(head)


def test_exit_codes_travel_as_the_status_kubectl_decodes() -> None:
    assert ws.exit_status(0) == {"metadata": {}, "status": "Success"}
    failed = ws.exit_status(3)
    assert failed["status"] == "Failure"
    assert failed["reason"] == "NonZeroExitCode"
    assert failed["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    broken = ws.exit_status(None, "the instance is gone")
    assert broken["reason"] == "InternalError"
    assert broken["message"] == "the instance is gone"
    assert "details" not in broken


def test_the_status_goes_on_the_error_channel_as_json() -> None:
    frame = ws.status_message(ws.exit_status(2))
    frames = ws.FrameDecoder(require_mask=False).feed(frame)
    assert frames[0].payload[0] == ws.Channel.ERROR
    assert json.loads(frames[0].payload[1:])["details"]["causes"][0]["message"] == "2"


def test_close_frames_carry_the_code() -> None:
    frame = ws.FrameDecoder(require_mask=False).feed(ws.close_frame(ws.CLOSE_NORMAL, "bye"))[0]
    assert frame.opcode is ws.Opcode.CLOSE
    assert struct.unpack("!H", frame.payload[:2])[0] == 1000
    assert frame.payload[2:] == b"bye"


def test_resize_messages_are_read() -> None:
    assert ws.parse_resize(b'{"Width":120,"Height":40}') == (120, 40)
    assert ws.parse_resize(b"not json") is None
