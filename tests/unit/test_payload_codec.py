"""The payload codec: large payloads compressed and restored exactly, everything else untouched."""

from __future__ import annotations

import hashlib
import json
import random
import zlib

import pytest
from temporalio.api.common.v1 import Payload

from orca.launch_spec import parse_launch_spec
from orca.payload_codec import (
    COMPRESS_FROM_BYTES,
    COMPRESSED_ENCODING,
    DATA_CONVERTER,
    DICTIONARY,
    PLAIN_ZLIB_ENCODING,
    CompressionCodec,
    decode_one,
)
from orca.settings import InstancesSettings, LimitsSettings
from orca.workflows.models import PodLifecycleInput
from tests.unit.pods import container, pod

DICTIONARY_SHA256 = "34d3d1d19ad37ef39cf92ee3535554099ccf75c7ff07b1f649358795531a8461"


def json_payload(data: bytes) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=data)


def test_a_large_payload_is_compressed_and_restored_exactly() -> None:
    data = json.dumps({"spec": {"containers": [{"name": f"c{i}"} for i in range(100)]}}).encode()
    encoded = CompressionCodec().encode_one(json_payload(data))

    assert encoded.metadata["encoding"] == COMPRESSED_ENCODING
    assert len(encoded.data) < len(data) / 3
    decompressor = zlib.decompressobj(zdict=DICTIONARY)
    assert decompressor.decompress(encoded.data) + decompressor.flush() == data
    assert decode_one(encoded) == json_payload(data)


def test_the_dictionary_is_frozen() -> None:
    """Every payload compressed with it can only be read with these exact bytes: a new
    dictionary is a new file and a new encoding, never an edit of this one."""
    assert hashlib.sha256(DICTIONARY).hexdigest() == DICTIONARY_SHA256


def test_payloads_compressed_before_the_dictionary_are_still_read() -> None:
    data = json.dumps({"pod": {"metadata": {"name": "job-1"}}, "carried": None}).encode() * 20
    written = Payload(
        metadata={"encoding": PLAIN_ZLIB_ENCODING, "orca-encoding": b"json/plain"},
        data=zlib.compress(data),
    )
    assert decode_one(written) == json_payload(data)


def test_the_dictionary_shrinks_a_launch_specification_beyond_plain_zlib() -> None:
    manifest = pod(annotations={"orca.research/instance-type": "g5.xlarge"})
    spec = parse_launch_spec(manifest, InstancesSettings(), LimitsSettings())
    data = spec.model_dump_json().encode()
    encoded = CompressionCodec().encode_one(json_payload(data))
    assert encoded.metadata["encoding"] == COMPRESSED_ENCODING
    assert len(encoded.data) < len(zlib.compress(data, 6)) * 0.7
    assert decode_one(encoded) == json_payload(data)


@pytest.mark.parametrize(
    "payload",
    [
        json_payload(b'"Launch g5.xlarge spot in us-west-2b (attempt 2)"'),  # a summary
        json_payload(b'"' + b"a long summary or message, " * 20 + b'"'),  # JSON strings stay
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
