"""SPDY/3.1 framing for the kubelet's exec over SPDY (pure functions)."""

from __future__ import annotations

import struct
import zlib

import pytest

from orca.watcher import spdy_protocol as spdy


def test_the_header_dictionary_is_the_drafts() -> None:
    # 1423 bytes; the Adler-32 zlib puts in the header of every dictionary-primed block.
    assert len(spdy.HEADER_DICTIONARY) == 1423
    assert zlib.adler32(spdy.HEADER_DICTIONARY) == 3821447106
    assert spdy.HEADER_DICTIONARY.endswith(b"enq=0.")


def client_syn_stream(deflate: zlib._Compress, stream_id: int, headers: dict[str, str]) -> bytes:
    block = spdy.encode_header_block(headers)
    compressed = deflate.compress(block) + deflate.flush(zlib.Z_SYNC_FLUSH)
    data = struct.pack("!IIH", stream_id, 0, 0) + compressed
    return spdy.control_frame(spdy.FrameType.SYN_STREAM, 0, data)


def test_syn_streams_decode_with_one_context_across_frames() -> None:
    deflate = zlib.compressobj(zdict=spdy.HEADER_DICTIONARY)
    wire = client_syn_stream(deflate, 1, {"streamtype": "error"}) + client_syn_stream(
        deflate, 3, {"streamtype": "stdout", "port": "8080"}
    )
    codec = spdy.HeaderCodec()
    decoder = spdy.FrameDecoder()
    frames = [f for i in range(0, len(wire), 7) for f in decoder.feed(wire[i : i + 7])]
    assert all(isinstance(f, spdy.ControlFrame) for f in frames)
    syns = [codec.syn_stream(f) for f in frames if isinstance(f, spdy.ControlFrame)]
    assert [(s.stream_id, s.headers["streamtype"]) for s in syns] == [(1, "error"), (3, "stdout")]


def test_syn_replies_inflate_on_the_other_side() -> None:
    codec = spdy.HeaderCodec()
    inflate = zlib.decompressobj(zdict=spdy.HEADER_DICTIONARY)
    for stream_id in (1, 3):
        (frame,) = spdy.FrameDecoder().feed(codec.syn_reply(stream_id, {"status": "200"}))
        assert isinstance(frame, spdy.ControlFrame)
        assert frame.type == spdy.FrameType.SYN_REPLY
        assert struct.unpack_from("!I", frame.data)[0] == stream_id
        assert spdy.decode_header_block(inflate.decompress(frame.data[4:])) == {"status": "200"}


def test_data_is_framed_in_chunks_and_the_last_carries_fin() -> None:
    payload = b"x" * (spdy.DATA_CHUNK_BYTES * 2 + 5)
    frames = spdy.FrameDecoder().feed(spdy.data_frames(5, payload, fin=True))
    assert [len(f.data) for f in frames] == [spdy.DATA_CHUNK_BYTES, spdy.DATA_CHUNK_BYTES, 5]
    assert [f.fin for f in frames if isinstance(f, spdy.DataFrame)] == [False, False, True]
    (empty,) = spdy.FrameDecoder().feed(spdy.data_frames(5, b"", fin=True))
    assert isinstance(empty, spdy.DataFrame)
    assert (empty.fin, empty.data) == (True, b"")


def test_other_versions_and_garbage_headers_are_protocol_errors() -> None:
    wrong = struct.pack("!HHI", 0x8000 | 2, 1, 0)
    with pytest.raises(spdy.ProtocolError, match="version 2"):
        spdy.FrameDecoder().feed(wrong)
    with pytest.raises(spdy.ProtocolError, match="inflate"):
        spdy.HeaderCodec().decompress(b"not zlib at all")
    with pytest.raises(spdy.ProtocolError, match="malformed"):
        spdy.decode_header_block(struct.pack("!II", 1, 99) + b"ab")
