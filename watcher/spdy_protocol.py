"""SPDY/3.1 framing, as much of it as the Kubernetes streaming protocols use, as pure functions.

kube-apiserver 1.30-1.32 accepts kubectl's WebSocket but speaks SPDY/3.1 to kubelets
(`TranslateStreamCloseWebsocketRequests`), and kubectl itself falls back to SPDY (or uses it
with `KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false`). After an HTTP upgrade (`Upgrade: SPDY/3.1`,
`X-Stream-Protocol-Version: v4.channel.k8s.io`, ...) the client opens one SPDY stream per
channel with SYN_STREAM, naming it in the `streamtype` header (`error`, `stdin`, `stdout`,
`stderr`, `resize`); the server answers each with SYN_REPLY, writes DATA frames on its output
streams and ends them with FIN. Header blocks are zlib-compressed with the dictionary the SPDY/3
draft defines, one compression context per direction for the whole connection.

Frames (draft 3, section 2.2): a control frame is `1 | version(15) | type(16) | flags(8) |
length(24) | data`; a data frame `0 | stream-id(31) | flags(8) | length(24) | data`.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from enum import IntEnum

VERSION = 3
UPGRADE = "SPDY/3.1"
FLAG_FIN = 0x01
MAX_FRAME_BYTES = 16 * 1024 * 1024
DATA_CHUNK_BYTES = 32 * 1024

_DICTIONARY_WORDS = [
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
]
_DICTIONARY_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 "
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
HEADER_DICTIONARY = (
    b"".join(struct.pack("!I", len(word)) + word.encode() for word in _DICTIONARY_WORDS)
    + _DICTIONARY_TAIL.encode()
)
"""The zlib dictionary of SPDY/3 header blocks (draft 3, section 2.6.10.1): each word with its
32-bit length, then the tail of common values."""


class FrameType(IntEnum):
    SYN_STREAM = 1
    SYN_REPLY = 2
    RST_STREAM = 3
    SETTINGS = 4
    PING = 6
    GOAWAY = 7
    HEADERS = 8
    WINDOW_UPDATE = 9


class RstStatus(IntEnum):
    PROTOCOL_ERROR = 1
    REFUSED_STREAM = 3
    CANCEL = 5


class ProtocolError(ValueError):
    """The peer broke SPDY framing."""


@dataclass(frozen=True)
class ControlFrame:
    type: int
    flags: int
    data: bytes


@dataclass(frozen=True)
class DataFrame:
    stream_id: int
    flags: int
    data: bytes

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


@dataclass(frozen=True)
class SynStream:
    stream_id: int
    flags: int
    headers: dict[str, str]

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


def control_frame(frame_type: FrameType, flags: int, data: bytes) -> bytes:
    return struct.pack("!HHI", 0x8000 | VERSION, int(frame_type), (flags << 24) | len(data)) + data


def data_frame(stream_id: int, data: bytes, *, fin: bool = False) -> bytes:
    flags = FLAG_FIN if fin else 0
    return struct.pack("!II", stream_id & 0x7FFFFFFF, (flags << 24) | len(data)) + data


def data_frames(stream_id: int, data: bytes, *, fin: bool) -> bytes:
    """`data` on a stream in frames of at most DATA_CHUNK_BYTES, the last with FIN if `fin`."""
    chunks = [data[i : i + DATA_CHUNK_BYTES] for i in range(0, len(data), DATA_CHUNK_BYTES)]
    if not chunks:
        return data_frame(stream_id, b"", fin=fin) if fin else b""
    return b"".join(
        data_frame(stream_id, chunk, fin=fin and i == len(chunks) - 1)
        for i, chunk in enumerate(chunks)
    )


def encode_header_block(headers: dict[str, str]) -> bytes:
    """The uncompressed name/value block: count, then each length-prefixed name and value."""
    block = struct.pack("!I", len(headers))
    for name, value in headers.items():
        encoded_name, encoded_value = name.lower().encode(), value.encode()
        block += struct.pack("!I", len(encoded_name)) + encoded_name
        block += struct.pack("!I", len(encoded_value)) + encoded_value
    return block


def decode_header_block(block: bytes) -> dict[str, str]:
    try:
        (count,) = struct.unpack_from("!I", block, 0)
        offset, headers = 4, {}
        for _ in range(count):
            (length,) = struct.unpack_from("!I", block, offset)
            name = block[offset + 4 : offset + 4 + length].decode()
            offset += 4 + length
            (length,) = struct.unpack_from("!I", block, offset)
            value = block[offset + 4 : offset + 4 + length].decode()
            offset += 4 + length
            headers[name] = value
    except (struct.error, UnicodeDecodeError) as error:
        raise ProtocolError(f"a malformed header block: {error}") from error
    return headers


@dataclass
class HeaderCodec:
    """The two zlib contexts of one connection's header blocks."""

    _inflate: zlib._Decompress = field(
        default_factory=lambda: zlib.decompressobj(zdict=HEADER_DICTIONARY)
    )
    _deflate: zlib._Compress = field(
        default_factory=lambda: zlib.compressobj(zdict=HEADER_DICTIONARY)
    )

    def compress(self, headers: dict[str, str]) -> bytes:
        block = encode_header_block(headers)
        return self._deflate.compress(block) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    def decompress(self, data: bytes) -> dict[str, str]:
        try:
            return decode_header_block(self._inflate.decompress(data))
        except zlib.error as error:
            raise ProtocolError(f"a header block does not inflate: {error}") from error

    def syn_reply(self, stream_id: int, headers: dict[str, str], *, fin: bool = False) -> bytes:
        data = struct.pack("!I", stream_id & 0x7FFFFFFF) + self.compress(headers)
        return control_frame(FrameType.SYN_REPLY, FLAG_FIN if fin else 0, data)

    def syn_stream(self, frame: ControlFrame) -> SynStream:
        if len(frame.data) < 10:
            raise ProtocolError("a SYN_STREAM shorter than its fixed fields")
        (stream_id,) = struct.unpack_from("!I", frame.data, 0)
        return SynStream(stream_id & 0x7FFFFFFF, frame.flags, self.decompress(frame.data[10:]))


def rst_stream(stream_id: int, status: RstStatus) -> bytes:
    return control_frame(FrameType.RST_STREAM, 0, struct.pack("!II", stream_id, int(status)))


def goaway(last_stream_id: int) -> bytes:
    return control_frame(FrameType.GOAWAY, 0, struct.pack("!II", last_stream_id, 0))


class FrameDecoder:
    """Incremental decoder: feed bytes, take whole frames."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[ControlFrame | DataFrame]:
        self._buffer.extend(data)
        frames: list[ControlFrame | DataFrame] = []
        while len(self._buffer) >= 8:
            first, flags_length = struct.unpack_from("!II", self._buffer, 0)
            length = flags_length & 0xFFFFFF
            if length > MAX_FRAME_BYTES:
                raise ProtocolError(f"a frame of {length} bytes is over {MAX_FRAME_BYTES}")
            if len(self._buffer) < 8 + length:
                break
            payload = bytes(self._buffer[8 : 8 + length])
            del self._buffer[: 8 + length]
            flags = flags_length >> 24
            if first & 0x80000000:
                version = (first >> 16) & 0x7FFF
                if version != VERSION:
                    raise ProtocolError(f"SPDY version {version}, not {VERSION}")
                frames.append(ControlFrame(first & 0xFFFF, flags, payload))
            else:
                frames.append(DataFrame(first & 0x7FFFFFFF, flags, payload))
        return frames
