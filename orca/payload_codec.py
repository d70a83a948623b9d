"""Compressed Temporal payloads, and the one data converter every ORCA process uses.

A pod's history carries its manifest and launch specification several times (the workflow input,
`plan_launch`, `start_containers`): pretty JSON that zlib shrinks to a third or less. Every
payload of at least `COMPRESS_FROM_BYTES` is stored zlib-compressed, with encoding
`binary/zlib` and the original encoding kept in `orca-encoding`; smaller ones (activity
summaries, the `costUSD` memo, signals, most results) stay plain JSON, readable as they are in
the Temporal UI and `temporal workflow show`.

Decoding passes through every payload it did not compress, so histories recorded before this
codec (and payloads of other SDKs) replay and read unchanged. Compressed payloads are readable in
the Temporal Web UI through the codec endpoint the worker serves (`POST /codec/decode`, see
`orca.health`, and docs/operations.md "Reading compressed payloads in the UI").

The codec runs outside the workflow sandbox, in the SDK's data conversion: workflows never see
compressed bytes, and zlib is deterministic, so replay needs nothing of it but `decode`.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Sequence

from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, PayloadCodec

COMPRESSED_ENCODING = b"binary/zlib"
ORIGINAL_ENCODING_KEY = "orca-encoding"
COMPRESS_FROM_BYTES = 512
"""Payloads smaller than this stay plain: compression would save little and cost readability."""


class CompressionCodec(PayloadCodec):
    """zlib for large payloads; everything else, and every foreign payload, passes through."""

    def __init__(self, compress_from_bytes: int = COMPRESS_FROM_BYTES) -> None:
        self.compress_from_bytes = compress_from_bytes

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encode_one(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [decode_one(p) for p in payloads]

    def encode_one(self, payload: Payload) -> Payload:
        if len(payload.data) < self.compress_from_bytes:
            return payload
        compressed = zlib.compress(payload.data, level=6)
        if len(compressed) >= len(payload.data):
            return payload
        metadata = dict(payload.metadata)
        original = metadata.get("encoding", b"")
        metadata["encoding"] = COMPRESSED_ENCODING
        metadata[ORIGINAL_ENCODING_KEY] = original
        return Payload(metadata=metadata, data=compressed)


def decode_one(payload: Payload) -> Payload:
    """The payload as it was before `CompressionCodec.encode_one` (unchanged if not ours)."""
    if payload.metadata.get("encoding") != COMPRESSED_ENCODING:
        return payload
    metadata = dict(payload.metadata)
    metadata["encoding"] = metadata.pop(ORIGINAL_ENCODING_KEY, b"")
    return Payload(metadata=metadata, data=zlib.decompress(payload.data))


DATA_CONVERTER: DataConverter = dataclasses.replace(
    pydantic_data_converter, payload_codec=CompressionCodec()
)
"""Pydantic models as JSON, large payloads compressed: the worker's, the watcher's, the CLI's,
the replayer's and the tests' converter."""
