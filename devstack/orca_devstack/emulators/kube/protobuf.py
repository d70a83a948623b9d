"""Decoding Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`).

kubectl's generators (`kubectl create namespace|secret|configmap|serviceaccount|service|pdb`) send
their object in protobuf, not JSON. A body is the magic `k8s\\x00` followed by a `runtime.Unknown`
message: its `typeMeta` (apiVersion, kind) and `raw`, the object itself. This module reads the wire
format (varints, length-delimited fields) and turns the messages of the kinds those generators
create into the JSON form the registry stores. Field numbers are those of the kinds'
`generated.proto`; a field this table does not know is refused with 400 (never silently dropped),
and so is a kind outside it (415, as a server that cannot decode the type).

Responses stay JSON: every client that sends protobuf also accepts JSON.
"""

from __future__ import annotations

import base64
import datetime as dt
import struct
from typing import Any

from orca_devstack.emulators.kube import errors

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"

# A field is (json name, type, repeated); types are "string", "bytes", "bool", "int32", "int64",
# "map:<value type>", or the name of a message below. Maps are repeated entries (key 1, value 2).
Field = tuple[str, str, bool]
_MESSAGES: dict[str, dict[int, Field]] = {
    "Unknown": {
        1: ("typeMeta", "TypeMeta", False),
        2: ("raw", "bytes", False),
        3: ("contentEncoding", "string", False),
        4: ("contentType", "string", False),
    },
    "TypeMeta": {1: ("apiVersion", "string", False), 2: ("kind", "string", False)},
    "ObjectMeta": {
        1: ("name", "string", False),
        2: ("generateName", "string", False),
        3: ("namespace", "string", False),
        4: ("selfLink", "string", False),
        5: ("uid", "string", False),
        6: ("resourceVersion", "string", False),
        7: ("generation", "int64", False),
        8: ("creationTimestamp", "Time", False),
        9: ("deletionTimestamp", "Time", False),
        10: ("deletionGracePeriodSeconds", "int64", False),
        11: ("labels", "map:string", False),
        12: ("annotations", "map:string", False),
        13: ("ownerReferences", "OwnerReference", True),
        14: ("finalizers", "string", True),
        17: ("managedFields", "ManagedFieldsEntry", True),
    },
    "OwnerReference": {
        1: ("kind", "string", False),
        3: ("name", "string", False),
        4: ("uid", "string", False),
        5: ("apiVersion", "string", False),
        6: ("controller", "bool", False),
        7: ("blockOwnerDeletion", "bool", False),
    },
    "ManagedFieldsEntry": {
        1: ("manager", "string", False),
        2: ("operation", "string", False),
        3: ("apiVersion", "string", False),
        4: ("time", "Time", False),
        6: ("fieldsType", "string", False),
        7: ("fieldsV1", "FieldsV1", False),
        8: ("subresource", "string", False),
    },
    "FieldsV1": {1: ("raw", "bytes", False)},
    "Time": {1: ("seconds", "int64", False), 2: ("nanos", "int32", False)},
    "Condition": {
        1: ("type", "string", False),
        2: ("status", "string", False),
        3: ("observedGeneration", "int64", False),
        4: ("lastTransitionTime", "Time", False),
        5: ("reason", "string", False),
        6: ("message", "string", False),
    },
    "LabelSelector": {
        1: ("matchLabels", "map:string", False),
        2: ("matchExpressions", "LabelSelectorRequirement", True),
    },
    "LabelSelectorRequirement": {
        1: ("key", "string", False),
        2: ("operator", "string", False),
        3: ("values", "string", True),
    },
    "IntOrString": {
        1: ("type", "int64", False),
        2: ("intVal", "int32", False),
        3: ("strVal", "string", False),
    },
    # core/v1
    "Namespace": {
        1: ("metadata", "ObjectMeta", False),
        2: ("spec", "NamespaceSpec", False),
        3: ("status", "NamespaceStatus", False),
    },
    "NamespaceSpec": {1: ("finalizers", "string", True)},
    "NamespaceStatus": {
        1: ("phase", "string", False),
        2: ("conditions", "NamespaceCondition", True),
    },
    "NamespaceCondition": {
        1: ("type", "string", False),
        2: ("status", "string", False),
        4: ("lastTransitionTime", "Time", False),
        5: ("reason", "string", False),
        6: ("message", "string", False),
    },
    "Secret": {
        1: ("metadata", "ObjectMeta", False),
        2: ("data", "map:bytes", False),
        3: ("type", "string", False),
        4: ("stringData", "map:string", False),
        5: ("immutable", "bool", False),
    },
    "ConfigMap": {
        1: ("metadata", "ObjectMeta", False),
        2: ("data", "map:string", False),
        3: ("binaryData", "map:bytes", False),
        4: ("immutable", "bool", False),
    },
    "ServiceAccount": {
        1: ("metadata", "ObjectMeta", False),
        2: ("secrets", "ObjectReference", True),
        3: ("imagePullSecrets", "LocalObjectReference", True),
        4: ("automountServiceAccountToken", "bool", False),
    },
    "ObjectReference": {
        1: ("kind", "string", False),
        2: ("namespace", "string", False),
        3: ("name", "string", False),
        4: ("uid", "string", False),
        5: ("apiVersion", "string", False),
        6: ("resourceVersion", "string", False),
        7: ("fieldPath", "string", False),
    },
    "LocalObjectReference": {1: ("name", "string", False)},
    "Service": {
        1: ("metadata", "ObjectMeta", False),
        2: ("spec", "ServiceSpec", False),
        3: ("status", "ServiceStatus", False),
    },
    "ServiceSpec": {
        1: ("ports", "ServicePort", True),
        2: ("selector", "map:string", False),
        3: ("clusterIP", "string", False),
        4: ("type", "string", False),
        5: ("externalIPs", "string", True),
        7: ("sessionAffinity", "string", False),
        8: ("loadBalancerIP", "string", False),
        9: ("loadBalancerSourceRanges", "string", True),
        10: ("externalName", "string", False),
        11: ("externalTrafficPolicy", "string", False),
        12: ("healthCheckNodePort", "int32", False),
        13: ("publishNotReadyAddresses", "bool", False),
        14: ("sessionAffinityConfig", "SessionAffinityConfig", False),
        17: ("ipFamilyPolicy", "string", False),
        18: ("clusterIPs", "string", True),
        19: ("ipFamilies", "string", True),
        20: ("allocateLoadBalancerNodePorts", "bool", False),
        21: ("loadBalancerClass", "string", False),
        22: ("internalTrafficPolicy", "string", False),
        23: ("trafficDistribution", "string", False),
    },
    "ServicePort": {
        1: ("name", "string", False),
        2: ("protocol", "string", False),
        3: ("port", "int32", False),
        4: ("targetPort", "IntOrString", False),
        5: ("nodePort", "int32", False),
        6: ("appProtocol", "string", False),
    },
    "SessionAffinityConfig": {1: ("clientIP", "ClientIPConfig", False)},
    "ClientIPConfig": {1: ("timeoutSeconds", "int32", False)},
    "ServiceStatus": {
        1: ("loadBalancer", "LoadBalancerStatus", False),
        2: ("conditions", "Condition", True),
    },
    "LoadBalancerStatus": {1: ("ingress", "LoadBalancerIngress", True)},
    "LoadBalancerIngress": {
        1: ("ip", "string", False),
        2: ("hostname", "string", False),
        3: ("ipMode", "string", False),
        4: ("ports", "PortStatus", True),
    },
    "PortStatus": {
        1: ("port", "int32", False),
        2: ("protocol", "string", False),
        3: ("error", "string", False),
    },
    # policy/v1
    "PodDisruptionBudget": {
        1: ("metadata", "ObjectMeta", False),
        2: ("spec", "PodDisruptionBudgetSpec", False),
        3: ("status", "PodDisruptionBudgetStatus", False),
    },
    "PodDisruptionBudgetSpec": {
        1: ("minAvailable", "IntOrString", False),
        2: ("selector", "LabelSelector", False),
        3: ("maxUnavailable", "IntOrString", False),
        4: ("unhealthyPodEvictionPolicy", "string", False),
    },
    "PodDisruptionBudgetStatus": {
        1: ("observedGeneration", "int64", False),
        2: ("disruptedPods", "map:Time", False),
        3: ("disruptionsAllowed", "int32", False),
        4: ("currentHealthy", "int32", False),
        5: ("desiredHealthy", "int32", False),
        6: ("expectedPods", "int32", False),
        7: ("conditions", "Condition", True),
    },
}
# Go's protobuf encoder writes non-pointer scalars even when zero, where JSON's `omitempty` would
# leave them out: the empty string always means "unset", and so does zero for these fields.
_OMIT_ZERO = frozenset(
    {
        ("ObjectMeta", "generation"),
        ("ServicePort", "nodePort"),
        ("ServiceSpec", "healthCheckNodePort"),
        ("ServiceSpec", "publishNotReadyAddresses"),
    }
)
# The top-level kinds a body may carry, by (apiVersion, kind).
DECODABLE_KINDS = {
    ("v1", "Namespace"),
    ("v1", "Secret"),
    ("v1", "ConfigMap"),
    ("v1", "ServiceAccount"),
    ("v1", "Service"),
    ("policy/v1", "PodDisruptionBudget"),
}


class ProtobufError(ValueError):
    """The bytes are not a well-formed message of the expected type."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ProtobufError("varint too long")


def _fields(data: bytes) -> list[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) triples: an int for varints and fixed, bytes otherwise."""
    out: list[tuple[int, int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ProtobufError("truncated length-delimited field")
            value, pos = data[pos : pos + length], pos + length
        elif wire == 1:
            if pos + 8 > len(data):
                raise ProtobufError("truncated fixed64 field")
            value, pos = struct.unpack_from("<q", data, pos)[0], pos + 8
        elif wire == 5:
            if pos + 4 > len(data):
                raise ProtobufError("truncated fixed32 field")
            value, pos = struct.unpack_from("<i", data, pos)[0], pos + 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
        out.append((number, wire, value))
    return out


def _signed(value: int) -> int:
    """Negative int32 and int64 values are ten-byte two's complement varints."""
    value &= 0xFFFFFFFFFFFFFFFF
    if value >= 1 << 63:
        value -= 1 << 64
    return value


def _scalar(kind: str, value: int | bytes, path: str) -> Any:
    if kind == "string":
        if not isinstance(value, bytes):
            raise ProtobufError(f"{path}: expected a string")
        try:
            return value.decode()
        except UnicodeDecodeError as error:
            raise ProtobufError(f"{path}: invalid UTF-8") from error
    if kind == "bytes":
        if not isinstance(value, bytes):
            raise ProtobufError(f"{path}: expected bytes")
        return base64.b64encode(value).decode()
    if isinstance(value, bytes):
        raise ProtobufError(f"{path}: expected a number")
    if kind == "bool":
        return bool(value)
    if kind in ("int32", "int64"):
        return _signed(value)
    raise ProtobufError(f"{path}: unknown scalar type {kind}")


def _value(kind: str, value: int | bytes, path: str) -> Any:
    if kind in _MESSAGES:
        if not isinstance(value, bytes):
            raise ProtobufError(f"{path}: expected a message")
        return _message(kind, value, path)
    return _scalar(kind, value, path)


def _map_entry(value_kind: str, data: int | bytes, path: str) -> tuple[str, Any]:
    if not isinstance(data, bytes):
        raise ProtobufError(f"{path}: expected a map entry")
    key, item = "", None
    for number, _, raw in _fields(data):
        if number == 1:
            key = _scalar("string", raw, path)
        elif number == 2:
            item = _value(value_kind, raw, f"{path}[{key}]")
    if item is None:
        item = "" if value_kind in ("string", "bytes") else None
    return key, item


def _message(name: str, data: bytes, path: str = "") -> Any:
    schema = _MESSAGES[name]
    obj: dict[str, Any] = {}
    for number, wire, raw in _fields(data):
        field = schema.get(number)
        if field is None:
            raise ProtobufError(f"unknown field {number} in {name} at {path or '.'}")
        json_name, kind, repeated = field
        here = f"{path}.{json_name}" if path else json_name
        if kind.startswith("map:"):
            key, item = _map_entry(kind[4:], raw, here)
            obj.setdefault(json_name, {})[key] = item
        elif repeated:
            if wire == 2 and kind in ("int32", "int64", "bool") and isinstance(raw, bytes):
                packed = [v for _, _, v in _fields_packed(raw)]
                obj.setdefault(json_name, []).extend(_scalar(kind, v, here) for v in packed)
            else:
                obj.setdefault(json_name, []).append(_value(kind, raw, here))
        else:
            value = _value(kind, raw, here)
            if value == "" or (not value and (name, json_name) in _OMIT_ZERO):
                obj.pop(json_name, None)
            else:
                obj[json_name] = value
    return _to_json(name, obj)


def _fields_packed(data: bytes) -> list[tuple[int, int, int]]:
    values: list[tuple[int, int, int]] = []
    pos = 0
    while pos < len(data):
        value, pos = _varint(data, pos)
        values.append((0, 0, value))
    return values


def _to_json(name: str, obj: dict[str, Any]) -> Any:
    """Messages whose JSON form is not an object: Time and IntOrString."""
    if name == "Time":
        seconds = int(obj.get("seconds", 0))
        if seconds == 0 and not obj.get("nanos"):
            return None  # the zero time: JSON null, as Go marshals metav1.Time{}
        moment = dt.datetime.fromtimestamp(seconds, dt.UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    if name == "IntOrString":
        return obj.get("strVal", "") if obj.get("type") == 1 else int(obj.get("intVal", 0))
    if name == "FieldsV1":
        return obj.get("raw")
    return obj


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def decode(body: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf request body, with its apiVersion and kind."""
    if not body.startswith(MAGIC):
        raise errors.bad_request(
            "the body of the request is not a Kubernetes protobuf message (no k8s\\x00 prefix)"
        )
    try:
        unknown = _message("Unknown", body[len(MAGIC) :])
    except ProtobufError as error:
        raise errors.bad_request(f"cannot decode the protobuf body: {error}") from error
    type_meta = unknown.get("typeMeta") or {}
    api_version, kind = type_meta.get("apiVersion", ""), type_meta.get("kind", "")
    if unknown.get("contentEncoding"):
        raise errors.ApiError(
            415,
            "UnsupportedMediaType",
            f"the content encoding {unknown['contentEncoding']!r} is not supported",
        )
    if (api_version, kind) not in DECODABLE_KINDS:
        raise errors.ApiError(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format - accepted media types include: "
            f"application/json, application/yaml; {kind} in version {api_version!r} is not "
            f"accepted in {CONTENT_TYPE}",
        )
    raw = base64.b64decode(unknown.get("raw") or "")
    try:
        obj = _message(kind, raw)
    except ProtobufError as error:
        raise errors.bad_request(
            f'{kind} in version "{api_version.rsplit("/", 1)[-1]}" cannot be handled as a {kind}: '
            f"{error}"
        ) from error
    return {"apiVersion": api_version, "kind": kind, **_drop_nulls(obj)}
