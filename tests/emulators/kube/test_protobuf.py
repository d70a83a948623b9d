"""The protobuf request-body decoder and the OpenAPI field checks, as plain functions."""

from __future__ import annotations

import pytest

from orca_devstack.emulators.kube import errors, openapi, protobuf
from orca_devstack.emulators.kube.registry import PODS


def _varint(value: int) -> bytes:
    value &= 0xFFFFFFFFFFFFFFFF
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, value: bytes | str | int) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    raw = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(raw)) + raw


def _envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = _field(1, api_version) + _field(2, kind)
    return protobuf.MAGIC + _field(1, type_meta) + _field(2, raw) + _field(3, "") + _field(4, "")


def _metadata(name: str, **extra: bytes) -> bytes:
    # As Go writes it: empty strings, generation 0 and a zero creationTimestamp are all present.
    return _field(
        1,
        _field(1, name) + _field(2, "") + _field(7, 0) + _field(8, b"") + b"".join(extra.values()),
    )


def test_a_secret_with_bytes_and_empty_fields() -> None:
    entry = _field(1, "token") + _field(2, b"\x00\xffs3cr3t")
    body = _envelope("v1", "Secret", _metadata("creds") + _field(2, entry) + _field(3, ""))
    assert protobuf.decode(body) == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "creds"},
        "data": {"token": "AP9zM2NyM3Q="},
    }


def test_int_or_string_negative_numbers_and_labels() -> None:
    labels = _field(11, _field(1, "app") + _field(2, "web"))
    selector = _field(1, _field(1, "app") + _field(2, "web"))
    spec = _field(1, _field(1, 1) + _field(3, "50%")) + _field(2, selector)
    status = _field(3, -1)  # disruptionsAllowed: a ten-byte varint
    body = _envelope(
        "policy/v1",
        "PodDisruptionBudget",
        _metadata("web", labels=labels) + _field(2, spec) + _field(3, status),
    )
    decoded = protobuf.decode(body)
    assert decoded["metadata"] == {"name": "web", "labels": {"app": "web"}}
    assert decoded["spec"] == {"minAvailable": "50%", "selector": {"matchLabels": {"app": "web"}}}
    assert decoded["status"] == {"disruptionsAllowed": -1}


def test_unknown_fields_and_kinds_are_refused() -> None:
    with pytest.raises(errors.ApiError) as unknown_field:
        protobuf.decode(_envelope("v1", "ConfigMap", _metadata("cfg") + _field(9, "x")))
    assert unknown_field.value.code == 400
    assert "unknown field 9 in ConfigMap" in unknown_field.value.message
    with pytest.raises(errors.ApiError) as unknown_kind:
        protobuf.decode(_envelope("v1", "Pod", _metadata("web")))
    assert unknown_kind.value.code == 415
    with pytest.raises(errors.ApiError) as truncated:
        protobuf.decode(protobuf.MAGIC + b"\x0a\x05ab")
    assert truncated.value.code == 400


def test_unknown_fields_by_the_schema() -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "labels": {"any-key": "is fine"}, "colour": "red"},
        "spec": {
            "containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": "1"}}}],
            "nodeSelector": {"a": "b"},
            "tolerations": [{"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5, "x": 1}],
        },
    }
    assert openapi.unknown_fields(PODS, pod) == ["metadata.colour", "spec.tolerations[0].x"]
    assert openapi.prune_unknown(PODS, pod) == ["metadata.colour", "spec.tolerations[0].x"]
    assert openapi.unknown_fields(PODS, pod) == []
    assert pod["metadata"] == {"name": "web", "labels": {"any-key": "is fine"}}
