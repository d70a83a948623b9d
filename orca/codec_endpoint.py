"""The remote codec endpoint of the Temporal Web UI: `POST /codec/decode` (and `/codec/encode`).

The UI (and `temporal` CLI's `--codec-endpoint`) sends `{"payloads": [...]}` in Temporal's
protobuf JSON form (base64 `metadata` values and `data`) with an `X-Namespace` header, and shows
what comes back. ORCA's codec only compresses (`orca.payload_codec`): decoding reveals nothing
a reader of the history could not inflate by hand, so the endpoint needs no authentication and
answers any origin (CORS `*`). The worker serves it on its health port (`orca.health`).
"""

from __future__ import annotations

from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from orca.payload_codec import CompressionCodec, decode_one

CODEC_PATHS = ("/codec/decode", "/codec/encode")
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, X-Namespace, Authorization",
}


class BadCodecRequestError(ValueError):
    """The request body is not `{"payloads": [...]}` in protobuf JSON."""


def answer(path: str, body: bytes) -> bytes:
    """The JSON response to a codec request for `path` (one of `CODEC_PATHS`)."""
    try:
        payloads = json_format.Parse(body or b"{}", Payloads())
    except json_format.ParseError as error:
        raise BadCodecRequestError(
            f'expected {{"payloads": [...]}} in protobuf JSON: {error}'
        ) from None
    if path == "/codec/decode":
        converted = [decode_one(p) for p in payloads.payloads]
    else:
        codec = CompressionCodec()
        converted = [codec.encode_one(p) for p in payloads.payloads]
    return json_format.MessageToJson(Payloads(payloads=converted), indent=None).encode()
