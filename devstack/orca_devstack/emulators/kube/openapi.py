"""OpenAPI v3 for the served kinds, and the field validation (`fieldValidation`) it describes.

kubectl (1.27 and later) validates a manifest by asking the server's OpenAPI v3 whether the
kind's PATCH operation takes the `fieldValidation` query parameter. When it does, kubectl leaves
the checking to the server and sends `fieldValidation=Strict`; the server then refuses unknown
fields with the usual `strict decoding error: unknown field "spec.foo"`. With `Warn` (the
default when a request names none) unknown fields are dropped and reported in a `Warning` header;
with `Ignore` they are dropped silently. That is what a real API server does, and what this module
provides: `/openapi/v3` (the index), `/openapi/v3/api/v1` and `/openapi/v3/apis/<group>/<version>`
(one document per group-version), and `unknown_fields` / `prune_unknown` for the registry.

The schemas are generated from the kubernetes Python client's model classes (`openapi_types` and
`attribute_map`), which are themselves generated from the real server's OpenAPI: every property
the client knows, with its type; components are named as on a real server
(`io.k8s.api.core.v1.Pod`). Strategic-merge keys come from the emulator's own table
(`patching.MERGE_KEYS`), so `kubectl apply` computes the same patches as against a real cluster;
descriptions come from the models' documentation, so `kubectl explain` reads as usual.
kubectl no longer asks for OpenAPI v2 once v3 answers, so none is served (404, as a server with
v2 disabled).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from typing import Any

from orca_devstack.emulators.kube import patching
from orca_devstack.emulators.kube.store import ALL_RESOURCES, JsonObject, ResourceType

_META = "io.k8s.apimachinery.pkg.apis.meta.v1"
_META_MODELS = frozenset(
    {
        "V1ObjectMeta",
        "V1ListMeta",
        "V1OwnerReference",
        "V1ManagedFieldsEntry",
        "V1LabelSelector",
        "V1LabelSelectorRequirement",
        "V1Condition",
        "V1Status",
        "V1StatusDetails",
        "V1StatusCause",
        "V1DeleteOptions",
        "V1Preconditions",
    }
)
# The Python client's model for each served kind (both Events have prefixed names there).
_ROOT_MODELS = {
    "/pods": "V1Pod",
    "/nodes": "V1Node",
    "/namespaces": "V1Namespace",
    "/events": "CoreV1Event",
    "/secrets": "V1Secret",
    "/configmaps": "V1ConfigMap",
    "/services": "V1Service",
    "/serviceaccounts": "V1ServiceAccount",
    "coordination.k8s.io/leases": "V1Lease",
    "events.k8s.io/events": "EventsV1Event",
    "policy/poddisruptionbudgets": "V1PodDisruptionBudget",
    "/persistentvolumes": "V1PersistentVolume",
    "/persistentvolumeclaims": "V1PersistentVolumeClaim",
    "storage.k8s.io/storageclasses": "V1StorageClass",
    "apps/statefulsets": "V1StatefulSet",
}
_QUERY_PARAMETERS = {
    "dryRun": "When present, modifications are not persisted. Valid values: All",
    "fieldManager": "fieldManager is a name associated with the actor or entity making changes.",
    "fieldValidation": "fieldValidation instructs the server on how to handle objects in the "
    "request containing unknown or duplicate fields. Valid values: Ignore, Warn, Strict.",
    "force": "Force is going to force Apply requests.",
    "pretty": "If 'true', then the output is pretty printed.",
}
_PATCH_TYPES = (
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)
_ANY: JsonObject = {}  # an `object` in the client: IntOrString, RawExtension, free-form JSON


def _package(group: str) -> str:
    return f"io.k8s.api.{(group or 'core').split('.')[0]}.v1"


def _component_name(model: str, package: str) -> str:
    if model in _META_MODELS:
        return f"{_META}.{model[2:]}"
    short = re.sub(r"^(?:CoreV1|EventsV1|V1)", "", model)
    return f"{package}.{short}"


def _model_class(model: str) -> Any:
    from kubernetes import client  # imported on first use: it takes a second

    return getattr(client, model, None)


class _Builder:
    """Walks the client's models from one root kind, naming each component once."""

    def __init__(self, package: str) -> None:
        self.package = package
        self.components: dict[str, JsonObject] = {}

    def type_schema(self, type_name: str, path: tuple[str, ...]) -> JsonObject:
        if type_name == "str":
            return {"type": "string"}
        if type_name == "int":
            return {"type": "integer", "format": "int64"}
        if type_name == "float":
            return {"type": "number", "format": "double"}
        if type_name == "bool":
            return {"type": "boolean"}
        if type_name == "datetime":
            return {"type": "string", "format": "date-time"}
        if type_name == "date":
            return {"type": "string", "format": "date"}
        if type_name == "bytes":
            return {"type": "string", "format": "byte"}
        if type_name == "object":
            return dict(_ANY)
        if type_name.startswith("List[") and type_name.endswith("]"):
            return {"type": "array", "items": self.type_schema(type_name[5:-1], path)}
        if type_name.startswith("Dict[str, ") and type_name.endswith("]"):
            return {
                "type": "object",
                "additionalProperties": self.type_schema(type_name[10:-1], path),
            }
        return {"$ref": f"#/components/schemas/{self.model(type_name, path)}"}

    def model(self, model: str, path: tuple[str, ...]) -> str:
        name = _component_name(model, self.package)
        if name in self.components:
            return name
        cls = _model_class(model)
        if cls is None:
            self.components[name] = {"type": "object"}
            return name
        schema: JsonObject = {"type": "object", "properties": {}}
        summary = (cls.__doc__ or "").strip().split("\n\n")[0].strip()
        if summary and not summary.startswith("Attributes:"):
            schema["description"] = " ".join(summary.split())
        self.components[name] = schema  # before the properties: models refer to themselves
        described = getattr(cls, "model_fields", {})
        for attribute, type_name in cls.openapi_types.items():
            json_name = cls.attribute_map[attribute]
            here = (*path, json_name)
            prop = self.type_schema(type_name, here)
            description = getattr(described.get(attribute), "description", None)
            if type_name.startswith("List["):
                key = patching.merge_key_for(here)
                if key is not None:
                    prop.update(
                        {
                            "x-kubernetes-patch-merge-key": key,
                            "x-kubernetes-patch-strategy": "merge",
                            "x-kubernetes-list-type": "map",
                            "x-kubernetes-list-map-keys": [key],
                        }
                    )
                elif here in patching.PRIMITIVE_MERGE_LISTS:
                    prop.update(
                        {"x-kubernetes-patch-strategy": "merge", "x-kubernetes-list-type": "set"}
                    )
            if "$ref" in prop:
                prop = {"allOf": [prop]}  # OpenAPI v3: siblings of $ref are not allowed
            if description:
                prop["description"] = description
            schema["properties"][json_name] = prop
        return name


def _gvk(resource: ResourceType) -> list[JsonObject]:
    return [{"group": resource.group, "kind": resource.kind, "version": resource.version}]


def _parameter(name: str, location: str = "query") -> JsonObject:
    return {
        "name": name,
        "in": location,
        "description": _QUERY_PARAMETERS.get(name, ""),
        "required": location == "path",
        "schema": {"type": "boolean" if name == "force" else "string", "uniqueItems": True},
    }


def _operation(
    resource: ResourceType,
    action: str,
    component: str,
    parameters: list[str],
    body_types: tuple[str, ...] = (),
) -> JsonObject:
    ref = {"schema": {"$ref": f"#/components/schemas/{component}"}}
    operation: JsonObject = {
        "operationId": f"{action}{resource.kind}",
        "parameters": [_parameter(p) for p in parameters],
        "responses": {"200": {"description": "OK", "content": {"application/json": ref}}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": _gvk(resource)[0],
    }
    if body_types:
        operation["requestBody"] = {
            "content": {content_type: ref for content_type in body_types},
            "required": True,
        }
    return operation


def _paths(resource: ResourceType, component: str) -> dict[str, JsonObject]:
    prefix = f"/apis/{resource.group}/{resource.version}" if resource.group else "/api/v1"
    scope = f"{prefix}/namespaces/{{namespace}}" if resource.namespaced else prefix
    path_parameters = [_parameter("namespace", "path")] if resource.namespaced else []
    write = ["dryRun", "fieldManager", "fieldValidation", "pretty"]
    collection = {
        "get": _operation(resource, "list", component, ["labelSelector", "fieldSelector"]),
        "post": _operation(resource, "post", component, write, ("application/json",)),
        "parameters": path_parameters,
    }
    if resource.key != "/namespaces":
        collection["delete"] = _operation(
            resource, "deletecollection", component, ["dryRun", "labelSelector", "fieldSelector"]
        )
    item = {
        "get": _operation(resource, "get", component, ["pretty"]),
        "put": _operation(resource, "put", component, write, ("application/json",)),
        "patch": _operation(resource, "patch", component, [*write, "force"], _PATCH_TYPES),
        "delete": _operation(resource, "delete", component, ["dryRun", "gracePeriodSeconds"]),
        "parameters": [*path_parameters, _parameter("name", "path")],
    }
    paths = {f"{scope}/{resource.plural}": collection, f"{scope}/{resource.plural}/{{name}}": item}
    if resource.has_status:
        status = {k: v for k, v in item.items() if k in ("get", "put", "patch", "parameters")}
        paths[f"{scope}/{resource.plural}/{{name}}/status"] = status
    return paths


def _group_version_path(resource: ResourceType) -> str:
    return f"apis/{resource.group}/{resource.version}" if resource.group else "api/v1"


@functools.cache
def _documents() -> dict[str, JsonObject]:
    documents: dict[str, JsonObject] = {}
    builders: dict[str, _Builder] = {}
    for resource in ALL_RESOURCES:
        gv_path = _group_version_path(resource)
        builder = builders.setdefault(gv_path, _Builder(_package(resource.group)))
        component = builder.model(_ROOT_MODELS[resource.key], ())
        builder.components[component]["x-kubernetes-group-version-kind"] = _gvk(resource)
        document = documents.setdefault(
            gv_path,
            {
                "openapi": "3.0.0",
                "info": {"title": "Kubernetes", "version": "v1.32.0"},
                "paths": {},
                "components": {"schemas": builder.components},
            },
        )
        document["paths"].update(_paths(resource, component))
    return documents


@functools.cache
def _encoded(gv_path: str) -> bytes:
    return json.dumps(_documents()[gv_path], separators=(",", ":")).encode()


def index() -> JsonObject:
    """`/openapi/v3`: where each group-version's document is, with a hash of its content."""
    return {
        "paths": {
            gv_path: {
                "serverRelativeURL": f"/openapi/v3/{gv_path}?hash="
                + hashlib.sha512(_encoded(gv_path)).hexdigest()[:128].upper()
            }
            for gv_path in _documents()
        }
    }


def document(gv_path: str) -> bytes | None:
    """The encoded document of one group-version (`api/v1`, `apis/policy/v1`), or None."""
    return _encoded(gv_path) if gv_path in _documents() else None


def _root(resource: ResourceType) -> tuple[dict[str, JsonObject], str]:
    gv_path = _group_version_path(resource)
    schemas = _documents()[gv_path]["components"]["schemas"]
    return schemas, _component_name(_ROOT_MODELS[resource.key], _package(resource.group))


def _resolve(schemas: dict[str, JsonObject], schema: JsonObject) -> JsonObject:
    while True:
        ref = schema.get("$ref") or (schema.get("allOf") or [{}])[0].get("$ref")
        if not ref:
            return schema
        schema = schemas[ref.rsplit("/", 1)[1]]


def _walk(
    schemas: dict[str, JsonObject], schema: JsonObject, value: Any, path: str, prune: bool
) -> list[str]:
    schema = _resolve(schemas, schema)
    unknown: list[str] = []
    if isinstance(value, dict):
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key in list(value):
            here = f"{path}.{key}" if path else key
            if properties is not None:
                if key not in properties:
                    unknown.append(here)
                    if prune:
                        del value[key]
                    continue
                unknown += _walk(schemas, properties[key], value[key], here, prune)
            elif isinstance(extra, dict):
                unknown += _walk(schemas, extra, value[key], here, prune)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for position, item in enumerate(value):
            unknown += _walk(schemas, schema["items"], item, f"{path}[{position}]", prune)
    return unknown


def unknown_fields(resource: ResourceType, obj: JsonObject) -> list[str]:
    """Paths (`spec.containers[0].imagee`) of the fields of `obj` its kind's schema lacks."""
    schemas, root = _root(resource)
    return _walk(schemas, schemas[root], obj, "", prune=False)


def prune_unknown(resource: ResourceType, obj: JsonObject) -> list[str]:
    """Drop the unknown fields of `obj` in place; returns their paths."""
    schemas, root = _root(resource)
    return _walk(schemas, schemas[root], obj, "", prune=True)
