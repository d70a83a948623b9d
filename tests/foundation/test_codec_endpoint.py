"""The worker's codec endpoint for the Temporal Web UI, over real HTTP: what the UI sends
(protobuf JSON payloads, a CORS preflight) and what it must get back."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload

from orca.health import HealthServer
from orca.payload_codec import COMPRESSED_ENCODING, CompressionCodec


@pytest.fixture
def server() -> Iterator[HealthServer]:
    running = HealthServer("127.0.0.1", 0, codec=True).start()
    yield running
    running.stop()


def post(server: HealthServer, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.port}{path}",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "X-Namespace": "orca"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def wire(payload: Payload) -> dict[str, Any]:
    """A payload as the UI sends it: base64 metadata values and data."""
    return {
        "metadata": {k: base64.b64encode(v).decode() for k, v in payload.metadata.items()},
        "data": base64.b64encode(payload.data).decode(),
    }


def test_decode_inflates_a_compressed_payload_and_passes_a_plain_one(
    server: HealthServer,
) -> None:
    manifest = json.dumps({"pod": {"spec": {"containers": [{"name": "main"}] * 40}}}).encode()
    compressed = CompressionCodec().encode_one(
        Payload(metadata={"encoding": b"json/plain"}, data=manifest)
    )
    plain = Payload(metadata={"encoding": b"json/plain"}, data=b'"a summary"')
    body = json.dumps({"payloads": [wire(compressed), wire(plain)]}).encode()

    status, headers, answer = post(server, "/codec/decode", body)

    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == "*"
    decoded = json.loads(answer)["payloads"]
    assert [base64.b64decode(p["data"]) for p in decoded] == [manifest, b'"a summary"']
    assert base64.b64decode(decoded[0]["metadata"]["encoding"]) == b"json/plain"


def test_encode_compresses_what_the_worker_would(server: HealthServer) -> None:
    data = b'{"containers": [' + b'{"name": "main"},' * 60 + b"{}]}"
    body = json.dumps(
        {"payloads": [wire(Payload(metadata={"encoding": b"json/plain"}, data=data))]}
    )

    status, _, answer = post(server, "/codec/encode", body.encode())

    assert status == 200
    [encoded] = json.loads(answer)["payloads"]
    assert base64.b64decode(encoded["metadata"]["encoding"]) == COMPRESSED_ENCODING


def test_a_body_that_is_not_payloads_is_a_400_naming_the_expected_form(
    server: HealthServer,
) -> None:
    status, _, answer = post(server, "/codec/decode", b'{"items": 3}')
    assert status == 400
    assert b'{"payloads": [...]}' in answer


def test_the_ui_preflight_is_answered_and_other_paths_are_404(server: HealthServer) -> None:
    preflight = urllib.request.Request(
        f"http://127.0.0.1:{server.port}/codec/decode", method="OPTIONS"
    )
    with urllib.request.urlopen(preflight, timeout=5) as response:
        assert response.status == 204
        assert "X-Namespace" in response.headers["Access-Control-Allow-Headers"]
    status, _, _ = post(server, "/codec/other", b"{}")
    assert status == 404


def test_a_server_without_the_codec_serves_no_codec_path() -> None:
    plain = HealthServer("127.0.0.1", 0).start()
    try:
        status, _, _ = post(plain, "/codec/decode", b'{"payloads": []}')
    finally:
        plain.stop()
    assert status == 404
