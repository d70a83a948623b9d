"""Compressed Temporal payloads, and the one data converter every ORCA process uses.

A pod's history carries its manifest and launch specification several times (the workflow input,
`plan_launch`, `start_containers`), and a dozen smaller models (plans, instance states, status
reports): JSON whose bytes are mostly the same field names and values in every pod. Every JSON
object or array payload of at least `COMPRESS_FROM_BYTES` is stored zlib-compressed against a
preset dictionary of such payloads (`orca/payload_dictionary_1.txt`), with encoding
`binary/zlib+orca-dictionary-1` and the original encoding kept in `orca-encoding`: a 400-byte
launch specification becomes about 150 bytes, where zlib alone made it 390. Smaller payloads and
JSON strings (activity summaries, messages) stay plain, readable as they are in the Temporal UI
and `temporal workflow show`.

The dictionary is frozen: a payload written with it can only be read with the same bytes, so
`payload_dictionary_1.txt` never changes (a test pins its digest). A better one would be
`payload_dictionary_2.txt` with its own encoding, and decoding keeps reading every older one.

Decoding passes through every payload it did not compress, so histories recorded before this
codec (and payloads of other SDKs) replay and read unchanged; payloads compressed without a
dictionary (`binary/zlib`, written before it) are still read. Compressed payloads are readable
in the Temporal Web UI through the codec endpoint the worker serves (`POST /codec/decode`, see
`orca.health`, and docs/operations.md "Reading compressed payloads in the UI").

The codec runs outside the workflow sandbox, in the SDK's data conversion: workflows never see
compressed bytes, and zlib is deterministic, so replay needs nothing of it but `decode`.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Sequence
from importlib import resources

from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, PayloadCodec

COMPRESSED_ENCODING = b"binary/zlib+orca-dictionary-1"
"""zlib with `DICTIONARY` preset: what `CompressionCodec` writes."""
PLAIN_ZLIB_ENCODING = b"binary/zlib"
"""zlib without a dictionary: what it wrote before the dictionary; still read."""
ORIGINAL_ENCODING_KEY = "orca-encoding"
COMPRESS_FROM_BYTES = 128
"""Payloads smaller than this stay plain: compression would save little and cost readability."""
DICTIONARY = resources.files("orca").joinpath("payload_dictionary_1.txt").read_bytes()
"""Typical ORCA payloads (ids scrubbed), the preset dictionary of `COMPRESSED_ENCODING`.
Frozen: see the module docstring."""


class CompressionCodec(PayloadCodec):
    """zlib with ORCA's dictionary for JSON objects and arrays of `compress_from_bytes` or more;
    everything else, and every foreign payload, passes through."""

    def __init__(self, compress_from_bytes: int = COMPRESS_FROM_BYTES) -> None:
        self.compress_from_bytes = compress_from_bytes

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encode_one(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [decode_one(p) for p in payloads]

    def encode_one(self, payload: Payload) -> Payload:
        data = payload.data
        if len(data) < self.compress_from_bytes or not data.startswith((b"{", b"[")):
            return payload
        compressor = zlib.compressobj(6, zdict=DICTIONARY)
        compressed = compressor.compress(data) + compressor.flush()
        if len(compressed) >= len(data):
            return payload
        metadata = dict(payload.metadata)
        original = metadata.get("encoding", b"")
        metadata["encoding"] = COMPRESSED_ENCODING
        metadata[ORIGINAL_ENCODING_KEY] = original
        return Payload(metadata=metadata, data=compressed)


def decode_one(payload: Payload) -> Payload:
    """The payload as it was before `CompressionCodec.encode_one` (unchanged if not ours)."""
    encoding = payload.metadata.get("encoding")
    if encoding == COMPRESSED_ENCODING:
        decompressor = zlib.decompressobj(zdict=DICTIONARY)
        data = decompressor.decompress(payload.data) + decompressor.flush()
    elif encoding == PLAIN_ZLIB_ENCODING:
        data = zlib.decompress(payload.data)
    else:
        return payload
    metadata = dict(payload.metadata)
    metadata["encoding"] = metadata.pop(ORIGINAL_ENCODING_KEY, b"")
    return Payload(metadata=metadata, data=data)


DATA_CONVERTER: DataConverter = dataclasses.replace(
    pydantic_data_converter, payload_codec=CompressionCodec()
)
"""Pydantic models as JSON, large payloads compressed: the worker's, the watcher's, the CLI's,
the replayer's and the tests' converter."""
