"""The payload codec: large payloads compressed and restored exactly, everything else untouched."""

from __future__ import annotations

import json
import random
import zlib

import pytest
from temporalio.api.common.v1 import Payload

from orca.payload_codec import (
    COMPRESS_FROM_BYTES,
    COMPRESSED_ENCODING,
    DATA_CONVERTER,
    CompressionCodec,
    decode_one,
)
from orca.workflows.models import PodLifecycleInput
from tests.unit.pods import container, pod


def json_payload(data: bytes) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=data)


def test_a_large_payload_is_compressed_and_restored_exactly() -> None:
    data = json.dumps({"spec": {"containers": [{"name": f"c{i}"} for i in range(100)]}}).encode()
    encoded = CompressionCodec().encode_one(json_payload(data))

    assert encoded.metadata["encoding"] == COMPRESSED_ENCODING
    assert len(encoded.data) < len(data) / 3
    assert zlib.decompress(encoded.data) == data
    assert decode_one(encoded) == json_payload(data)


@pytest.mark.parametrize(
    "payload",
    [
        json_payload(b'"Launch g5.xlarge spot in us-west-2b (attempt 2)"'),  # a summary
        json_payload(b"x" * (COMPRESS_FROM_BYTES - 1)),  # just below the threshold
        json_payload(random.Random(0).randbytes(1024)),  # incompressible: kept as it is
        Payload(metadata={"encoding": b"binary/null"}),
    ],
)
def test_small_incompressible_and_empty_payloads_stay_plain(payload: Payload) -> None:
    assert CompressionCodec().encode_one(payload) == payload


def test_payloads_the_codec_did_not_write_pass_through_decoding() -> None:
    foreign = Payload(metadata={"encoding": b"binary/encrypted"}, data=b"\x00\x01")
    plain = json_payload(b'{"pod": {}}')
    assert decode_one(foreign) == foreign
    assert decode_one(plain) == plain


async def test_the_data_converter_round_trips_a_workflow_input_through_compression() -> None:
    sidecars = [container(f"sidecar-{i}", requests={"cpu": "1", "memory": "1Gi"}) for i in range(8)]
    manifest = pod(annotations={"orca.research/instance-type": "g5.xlarge"}, containers=sidecars)
    start = PodLifecycleInput(pod=manifest)
    [payload] = await DATA_CONVERTER.encode([start])

    assert payload.metadata["encoding"] == COMPRESSED_ENCODING
    [decoded] = await DATA_CONVERTER.decode([payload], [PodLifecycleInput])
    assert decoded == start
