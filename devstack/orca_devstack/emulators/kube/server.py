"""HTTP front of the emulator: routing, discovery, Status bodies, watch streams and the log proxy.

A `ThreadingHTTPServer` gives each connection its own thread, so hundreds of long-lived watch
streams and ordinary requests proceed side by side. Watches are chunked HTTP/1.1 responses with one
JSON event per line, as a real API server sends them. Responses are always JSON, whatever the
Accept header asks for (kubectl falls back from protobuf). Request bodies may be JSON, YAML, or
protobuf for the kinds kubectl's generators send that way (`protobuf.py`).

Every request's body is read to its end, even when the request is refused before the body is
looked at: an unread body would otherwise be taken for the next request on the kept-alive
connection.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import yaml

from orca_devstack.emulators.kube import (
    access,
    errors,
    openapi,
    patching,
    protobuf,
    streaming,
    tables,
)
from orca_devstack.emulators.kube import resource_metrics as metrics_api
from orca_devstack.emulators.kube.registry import (
    FIELD_VALIDATIONS,
    NODES,
    PODS,
    DeleteOptions,
    PatchType,
    Registry,
    WriteOptions,
    find_resource,
)
from orca_devstack.emulators.kube.selectors import (
    FieldRequirement,
    InvalidSelectorError,
    LabelRequirement,
    check_supported_fields,
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)
from orca_devstack.emulators.kube.store import ALL_RESOURCES, JsonObject, ResourceType, WatchEvent

KUBERNETES_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-orca-emulator",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2024-12-11T00:00:00Z",
    "goVersion": "go1.23.3",
    "compiler": "gc",
    "platform": "linux/amd64",
}
DEFAULT_WATCH_TIMEOUT_SECONDS = 1800
_TRUE = ("true", "True", "1")
_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
_MAX_DISCARDED_BODY = 64 * 1024 * 1024
_LOG_PARAMETERS = (
    "follow",
    "tailLines",
    "sinceSeconds",
    "sinceTime",
    "timestamps",
    "limitBytes",
    "previous",
)


# Create-only review resources: answered at once, never stored (`access`).
_REVIEWS: dict[tuple[str, str, str], JsonObject] = {
    ("authentication.k8s.io", "v1", "tokenreviews"): {
        "name": "tokenreviews",
        "singularName": "tokenreview",
        "namespaced": False,
        "kind": "TokenReview",
        "verbs": ["create"],
    },
    ("authorization.k8s.io", "v1", "subjectaccessreviews"): {
        "name": "subjectaccessreviews",
        "singularName": "subjectaccessreview",
        "namespaced": False,
        "kind": "SubjectAccessReview",
        "verbs": ["create"],
    },
}


def _group_versions() -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for group, version, _ in _REVIEWS:
        groups.setdefault(group, []).append(version)
    groups[metrics_api.GROUP] = [metrics_api.VERSION]
    for resource in ALL_RESOURCES:
        if resource.group:
            versions = groups.setdefault(resource.group, [])
            if resource.version not in versions:
                versions.append(resource.version)
    return groups


def api_resource_list(group: str, version: str) -> JsonObject:
    resources: list[JsonObject] = [
        dict(entry) for (g, v, _), entry in _REVIEWS.items() if (g, v) == (group, version)
    ]
    if (group, version) == (metrics_api.GROUP, metrics_api.VERSION):
        resources.extend(dict(entry) for entry in metrics_api.RESOURCES.values())
    for resource in ALL_RESOURCES:
        if resource.group != group or resource.version != version:
            continue
        resources.append(
            {
                "name": resource.plural,
                "singularName": resource.singular,
                "namespaced": resource.namespaced,
                "kind": resource.kind,
                "verbs": [
                    verb
                    for verb in _VERBS
                    if verb != "deletecollection" or resource.key != "/namespaces"
                ],
                **({"shortNames": list(resource.short_names)} if resource.short_names else {}),
                **({"categories": list(resource.categories)} if resource.categories else {}),
            }
        )
        for sub in resource.subresources:
            entry: JsonObject = {
                "name": f"{resource.plural}/{sub}",
                "singularName": "",
                "namespaced": resource.namespaced,
                "kind": resource.kind,
                "verbs": ["get", "patch", "update"],
            }
            if sub == "binding":
                entry.update(kind="Binding", verbs=["create"])
            elif sub == "eviction":
                entry.update(kind="Eviction", group="policy", version="v1", verbs=["create"])
            elif sub == "log":
                entry.update(verbs=["get"])
            elif sub == "scale":
                entry.update(kind="Scale", group="autoscaling", version="v1")
            elif sub in streaming.OPTIONS_KINDS:
                entry.update(kind=streaming.OPTIONS_KINDS[sub], verbs=["create", "get"])
            resources.append(entry)
    group_version = f"{group}/{version}" if group else version
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }


def api_group(name: str, versions: list[str]) -> JsonObject:
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": entries, "preferredVersion": entries[0]}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], emulator: ApiServer) -> None:
        self.emulator = emulator
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        self.metrics = metrics_api.MetricsScraper(
            lambda node: _fetch_resource_metrics(node, emulator.access.kubelet_context)
        )
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self.connections_lock:
            connections = list(self.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class ApiServer:
    """Binds a listener and serves the registry over HTTP."""

    def __init__(
        self,
        registry: Registry,
        host: str,
        port: int,
        bookmark_interval: float = 60.0,
        cluster_access: access.ClusterAccess | None = None,
    ) -> None:
        self.registry = registry
        self.bookmark_interval = bookmark_interval
        self.access = cluster_access or access.ClusterAccess()
        self._server = _Server((host, port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            name="kube-emulator-http",
            daemon=True,
            kwargs={"poll_interval": 0.05},
        )

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: _Server
    _body_read = False  # per request: whether its body has been read (or discarded)
    _warnings: tuple[str, ...] | list[str] = ()  # per request: the Warning headers to send

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: tests and `orca dev` own the terminal

    # -- plumbing ------------------------------------------------------------------------------

    @property
    def registry(self) -> Registry:
        return self.server.emulator.registry

    def _send_json(self, code: int, body: Any) -> None:
        self._send_bytes(code, json.dumps(body, separators=(",", ":")).encode())

    def _send_bytes(self, code: int, payload: bytes) -> None:
        self._discard_body()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for warning in self._warnings:
            escaped = warning.replace("\\", "\\\\").replace('"', '\\"')
            self.send_header("Warning", f'299 - "{escaped}"')
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _send_error(self, error: errors.ApiError) -> None:
        self._send_json(error.code, error.status())

    def _raw_body(self) -> bytes:
        if self._body_read:
            return b""
        self._body_read = True
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.close_connection = True  # no chunked request bodies: do not reuse the stream
            raise errors.ApiError(
                411, "LengthRequired", "a request body must come with a Content-Length"
            )
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError as error:
            self.close_connection = True
            raise errors.bad_request("invalid Content-Length") from error
        return self.rfile.read(length) if length > 0 else b""

    def _discard_body(self) -> None:
        """Read what is left of the request body, so the connection can carry the next one."""
        if self._body_read:
            return
        self._body_read = True
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.close_connection = True
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.close_connection = True
            return
        if length > _MAX_DISCARDED_BODY:
            self.close_connection = True
            return
        while length > 0:
            chunk = self.rfile.read(min(length, 65536))
            if not chunk:
                self.close_connection = True
                return
            length -= len(chunk)

    def _read_body(self) -> Any:
        raw = self._raw_body()
        if not raw:
            return None
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if content_type == protobuf.CONTENT_TYPE:
            return protobuf.decode(raw)
        if content_type in ("application/yaml", PatchType.APPLY):
            try:
                return yaml.safe_load(raw)
            except yaml.YAMLError as error:
                raise errors.bad_request(f"the request body is not valid YAML: {error}") from error
        if content_type and not content_type.endswith("json"):
            raise errors.ApiError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types "
                f"include: application/json, application/yaml, {protobuf.CONTENT_TYPE}; "
                f"got {content_type}",
            )
        try:
            return json.loads(raw)
        except ValueError as error:
            raise errors.bad_request(f"the request body is not valid JSON: {error}") from error

    def _write_options(self, query: dict[str, str], operation: str) -> WriteOptions:
        options = WriteOptions(
            dry_run=self._dry_run(operation),
            field_manager=query.get("fieldManager") or None,
            force=query.get("force") in _TRUE,
        )
        validation = query.get("fieldValidation") or "Warn"
        if validation not in FIELD_VALIDATIONS:
            raise errors.invalid(
                operation,
                "",
                [
                    (
                        "fieldValidation",
                        f'Unsupported value: "{validation}": supported values: '
                        + ", ".join(f'"{v}"' for v in FIELD_VALIDATIONS),
                    )
                ],
                "meta.k8s.io",
            )
        options.field_validation = validation
        self._warnings = options.warnings
        return options

    def _dry_run(self, operation: str) -> bool:
        values = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).get("dryRun", [])
        for position, value in enumerate(values):
            if value != "All":
                raise errors.invalid(
                    operation,
                    "",
                    [
                        (
                            f"dryRun[{position}]",
                            f'Unsupported value: "{value}": supported values: "All"',
                        )
                    ],
                    "meta.k8s.io",
                )
        return bool(values)

    def _dispatch(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = {
            k: v[-1] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()
        }
        segments = [urllib.parse.unquote(s) for s in url.path.strip("/").split("/") if s]
        self._body_read = False
        self._warnings = []
        try:
            self._route(segments, query)
        except errors.ApiError as error:
            self._send_error(error)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as error:  # a bug must still answer with a Status, not a dropped socket
            self._send_error(errors.internal_error(f"{type(error).__name__}: {error}"))
        finally:
            self._discard_body()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _dispatch  # noqa: N815

    # -- routing -------------------------------------------------------------------------------

    def _route(self, segments: list[str], query: dict[str, str]) -> None:
        if segments in (["healthz"], ["livez"], ["readyz"]):
            payload = b"ok"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        if segments == ["version"]:
            self._send_json(200, KUBERNETES_VERSION)
            return
        if segments[:2] == ["openapi", "v3"]:
            if len(segments) == 2:
                self._send_json(200, openapi.index())
                return
            document = openapi.document("/".join(segments[2:]))
            if document is None:
                raise errors.path_not_found()
            self._send_bytes(200, document)
            return
        if segments == ["api"]:
            host, port = self.server.emulator.address
            self._send_json(
                200,
                {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [
                        {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{host}:{port}"}
                    ],
                },
            )
            return
        if segments == ["api", "v1"]:
            self._send_json(200, api_resource_list("", "v1"))
            return
        groups = _group_versions()
        if segments == ["apis"]:
            self._send_json(
                200,
                {
                    "kind": "APIGroupList",
                    "apiVersion": "v1",
                    "groups": [api_group(name, versions) for name, versions in groups.items()],
                },
            )
            return
        if len(segments) == 2 and segments[0] == "apis" and segments[1] in groups:
            self._send_json(
                200,
                {
                    "kind": "APIGroup",
                    "apiVersion": "v1",
                    **api_group(segments[1], groups[segments[1]]),
                },
            )
            return
        if (
            len(segments) == 3
            and segments[0] == "apis"
            and segments[2] in groups.get(segments[1], [])
        ):
            self._send_json(200, api_resource_list(segments[1], segments[2]))
            return
        if len(segments) >= 3 and segments[:2] == ["api", "v1"]:
            self._route_resource("", "v1", segments[2:], query)
            return
        if len(segments) >= 4 and segments[1:3] == [metrics_api.GROUP, metrics_api.VERSION]:
            self._resource_metrics(segments[3:], query)
            return
        if len(segments) == 4 and segments[0] == "apis" and tuple(segments[1:]) in _REVIEWS:
            self._review(segments[3])
            return
        if len(segments) >= 4 and segments[0] == "apis":
            self._route_resource(segments[1], segments[2], segments[3:], query)
            return
        raise errors.path_not_found()

    def _review(self, plural: str) -> None:
        if self.command != "POST":
            raise errors.method_not_allowed()
        cluster = self.server.emulator.access
        body = self._read_body()
        if plural == "tokenreviews":
            self._send_json(201, access.review_token(cluster.tokens, body))
        else:
            self._send_json(201, access.review_access(body))

    def _route_resource(
        self, group: str, version: str, rest: list[str], query: dict[str, str]
    ) -> None:
        namespace: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            nested = find_resource(group, version, rest[2])
            if nested is not None and nested.namespaced:
                namespace, rest = rest[1], rest[2:]
        resource = find_resource(group, version, rest[0])
        if resource is None or len(rest) > 3:
            raise errors.path_not_found()
        if resource.namespaced and namespace is None and len(rest) > 1:
            raise errors.path_not_found()
        name = rest[1] if len(rest) > 1 else None
        subresource = rest[2] if len(rest) > 2 else None
        if subresource is not None and subresource not in resource.subresources:
            raise errors.path_not_found()
        ns = namespace or ""
        method = self.command
        if name is None:
            if method in ("GET", "HEAD"):
                if query.get("watch") in _TRUE:
                    self._watch(resource, namespace, query)
                else:
                    self._list(resource, namespace, query)
            elif method == "POST":
                options = self._write_options(query, "CreateOptions")
                body = self._read_body()
                self._send_json(201, self.registry.create(resource, ns, body, options))
            elif method == "DELETE":
                labels, fields = self._selectors(resource, query)
                result = self.registry.delete_collection(
                    resource, namespace, labels, fields, self._delete_options(query)
                )
                self._send_json(
                    200,
                    {
                        "kind": f"{resource.kind}List",
                        "apiVersion": resource.api_version,
                        "metadata": {"resourceVersion": str(result.resource_version)},
                        "items": result.items,
                    },
                )
            else:
                raise errors.method_not_allowed()
            return
        if subresource == "log":
            self._pod_log(ns, name, query)
        elif subresource in streaming.OPTIONS_KINDS:
            if method not in ("GET", "POST"):
                raise errors.method_not_allowed()
            self._pod_stream(ns, name, subresource, query)
        elif subresource == "binding" and method == "POST":
            self.registry.bind(ns, name, self._read_body())
            self._send_json(
                201,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "code": 201,
                },
            )
        elif subresource == "eviction" and method == "POST":
            self.registry.evict(ns, name, self._read_body())
            self._send_json(
                201,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "code": 201,
                },
            )
        elif subresource in ("binding", "eviction"):
            raise errors.method_not_allowed()
        elif subresource == "scale":
            self._scale(resource, ns, name, query)
        elif method in ("GET", "HEAD"):
            obj = self.registry.get(resource, ns, name)
            if self._wants_table():
                self._send_json(
                    200,
                    self._table(
                        resource, [obj], {"resourceVersion": obj["metadata"]["resourceVersion"]}
                    ),
                )
            else:
                self._send_json(200, obj)
        elif method == "PUT":
            options = self._write_options(query, "UpdateOptions")
            self._send_json(
                200,
                self.registry.replace(resource, ns, name, self._read_body(), subresource, options),
            )
        elif method == "PATCH":
            options = self._write_options(query, "PatchOptions")
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            body = self._read_body()
            if content_type == PatchType.APPLY:
                obj, created = self.registry.apply(resource, ns, name, body, options, subresource)
                self._send_json(201 if created else 200, obj)
                return
            self._send_json(
                200,
                self.registry.patch(resource, ns, name, content_type, body, subresource, options),
            )
        elif method == "DELETE":
            self._send_json(
                200, self.registry.delete(resource, ns, name, self._delete_options(query))
            )
        else:
            raise errors.method_not_allowed()

    def _scale(
        self, resource: ResourceType, namespace: str, name: str, query: dict[str, str]
    ) -> None:
        method = self.command
        if method in ("GET", "HEAD"):
            self._send_json(200, self.registry.get_scale(resource, namespace, name))
            return
        if method == "PUT":
            options = self._write_options(query, "UpdateOptions")
            body = self._read_body()
            self._send_json(
                200, self.registry.update_scale(resource, namespace, name, lambda _: body, options)
            )
            return
        if method != "PATCH":
            raise errors.method_not_allowed()
        options = self._write_options(query, "PatchOptions")
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        patch = self._read_body()

        def change(scale: JsonObject) -> JsonObject:
            try:
                if content_type == PatchType.JSON:
                    patched: JsonObject = patching.json_patch(scale, patch)
                elif content_type == PatchType.MERGE:
                    patched = patching.json_merge_patch(scale, patch)
                elif content_type in (PatchType.STRATEGIC, PatchType.APPLY):
                    patched = patching.strategic_merge_patch(scale, patch)
                else:
                    raise errors.unsupported_media_type(content_type)
            except patching.PatchError as error:
                raise errors.ApiError(422, "Invalid", str(error)) from error
            return patched

        self._send_json(200, self.registry.update_scale(resource, namespace, name, change, options))

    def _delete_options(self, query: dict[str, str]) -> DeleteOptions:
        body = self._read_body() or {}
        grace: int | None = body.get("gracePeriodSeconds")
        if "gracePeriodSeconds" in query:
            try:
                grace = int(query["gracePeriodSeconds"])
            except ValueError as error:
                raise errors.bad_request(
                    f"invalid gracePeriodSeconds: {query['gracePeriodSeconds']}"
                ) from error
        preconditions = body.get("preconditions") or {}
        dry_run = self._dry_run("DeleteOptions") or body.get("dryRun") == ["All"]
        if body.get("dryRun") not in (None, [], ["All"]):
            raise errors.invalid(
                "DeleteOptions",
                "",
                [("dryRun", f'Unsupported value: {body["dryRun"]}: supported values: "All"')],
                "meta.k8s.io",
            )
        return DeleteOptions(
            grace_period_seconds=grace,
            precondition_uid=preconditions.get("uid"),
            precondition_resource_version=preconditions.get("resourceVersion"),
            dry_run=dry_run,
        )

    # -- list and watch ------------------------------------------------------------------------

    def _selectors(
        self, resource: ResourceType, query: dict[str, str]
    ) -> tuple[tuple[LabelRequirement, ...], tuple[FieldRequirement, ...]]:
        try:
            labels = parse_label_selector(query.get("labelSelector"))
            fields = parse_field_selector(query.get("fieldSelector"))
            check_supported_fields(resource.plural, fields)
        except InvalidSelectorError as error:
            raise errors.bad_request(str(error)) from error
        return labels, fields

    def _wants_table(self) -> bool:
        return "as=Table" in (self.headers.get("Accept") or "")

    def _table(
        self, resource: ResourceType, objects: list[JsonObject], metadata: JsonObject
    ) -> JsonObject:
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        return tables.build_table(
            resource,
            objects,
            metadata,
            query.get("includeObject", "Metadata"),
            self.registry.clock(),
        )

    def _list(self, resource: ResourceType, namespace: str | None, query: dict[str, str]) -> None:
        labels, fields = self._selectors(resource, query)
        try:
            limit = int(query["limit"]) if query.get("limit") else None
        except ValueError as error:
            raise errors.bad_request(f"invalid limit: {query['limit']}") from error
        result = self.registry.list(
            resource, namespace, labels, fields, limit, query.get("continue") or None
        )
        metadata: JsonObject = {"resourceVersion": str(result.resource_version)}
        if result.continue_token:
            metadata["continue"] = result.continue_token
            metadata["remainingItemCount"] = result.remaining
        if self._wants_table():
            self._send_json(200, self._table(resource, result.items, metadata))
            return
        body = {
            "kind": f"{resource.kind}List",
            "apiVersion": resource.api_version,
            "metadata": metadata,
            "items": result.items,
        }
        self._send_json(200, body)

    def _write_chunk(self, payload: bytes) -> None:
        self.wfile.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
        self.wfile.flush()

    def _watch(self, resource: ResourceType, namespace: str | None, query: dict[str, str]) -> None:
        labels, fields = self._selectors(resource, query)
        requested = query.get("resourceVersion") or ""
        try:
            cursor = int(requested) if requested not in ("", "0") else None
            timeout = (
                int(query["timeoutSeconds"])
                if query.get("timeoutSeconds")
                else DEFAULT_WATCH_TIMEOUT_SECONDS
            )
        except ValueError as error:
            raise errors.bad_request(f"invalid watch parameter: {error}") from error
        bookmarks = query.get("allowWatchBookmarks") in _TRUE
        store = self.registry.store
        self._discard_body()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.close_connection = True
        render: Callable[[JsonObject], JsonObject] | None = None
        if self._wants_table():
            # Each event carries a one-row Table, as kubectl get -w asks with as=Table.
            def render(obj: JsonObject) -> JsonObject:
                rv = obj["metadata"].get("resourceVersion", "")
                return self._table(resource, [obj], {"resourceVersion": rv})

        stream = _WatchStream(resource, namespace, labels, fields, render)
        deadline = time.monotonic() + timeout
        interval = self.server.emulator.bookmark_interval
        next_bookmark = time.monotonic() + interval
        try:
            if cursor is None:
                objects, current = store.snapshot(
                    resource, namespace if resource.namespaced else None
                )
                for obj in objects:
                    if stream.selects(obj):
                        self._write_chunk(stream.event_line("ADDED", obj))
                cursor = current
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                wait = min(remaining, next_bookmark - time.monotonic()) if bookmarks else remaining
                try:
                    events, cursor = store.events_after(cursor, max(wait, 0.0))
                except ConnectionAbortedError:
                    break
                except errors.ApiError as error:
                    self._write_chunk(_event_line("ERROR", error.status()))
                    break
                for event in events:
                    line = stream.line_for(event)
                    if line is not None:
                        self._write_chunk(line)
                if bookmarks and time.monotonic() >= next_bookmark:
                    self._write_chunk(_event_line("BOOKMARK", stream.bookmark(cursor)))
                    next_bookmark = time.monotonic() + interval
            if bookmarks and not store.closed:
                self._write_chunk(_event_line("BOOKMARK", stream.bookmark(cursor)))
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            return

    # -- metrics.k8s.io ----------------------------------------------------------------------

    def _resource_metrics(self, path: list[str], query: dict[str, str]) -> None:
        """PodMetrics and NodeMetrics, list and get, from the kubelets' /metrics/resource."""
        if self.command != "GET":
            raise errors.method_not_allowed()
        scraper = self.server.metrics
        labels = parse_label_selector(query.get("labelSelector"))
        if path[:1] == ["nodes"] and len(path) <= 2:
            nodes = (
                [self.registry.get(NODES, "", path[1])]
                if len(path) == 2
                else self.registry.list(NODES, None, labels).items
            )
            found = [metrics_api.node_metrics(n, scraper.samples(n)) for n in nodes]
            if len(path) == 2:
                if found[0] is None:
                    raise errors.not_found("nodes", path[1], metrics_api.GROUP)
                self._send_json(200, found[0])
                return
            self._send_json(200, metrics_api.metrics_list("NodeMetrics", [f for f in found if f]))
            return
        namespace: str | None = None
        if path[:1] == ["namespaces"] and len(path) >= 3 and path[2] == "pods":
            namespace, path = path[1], path[2:]
        if path[:1] != ["pods"] or len(path) > 2:
            raise errors.path_not_found()
        if len(path) == 2:
            if namespace is None:
                raise errors.path_not_found()
            pods = [self.registry.get(PODS, namespace, path[1])]
        else:
            pods = self.registry.list(PODS, namespace, labels).items
        samples: dict[str, metrics_api.NodeSamples | None] = {}
        items = []
        for pod in pods:
            node_name = (pod.get("spec") or {}).get("nodeName")
            if not node_name:
                continue
            if node_name not in samples:
                try:
                    node = self.registry.get(NODES, "", node_name)
                except errors.ApiError:
                    samples[node_name] = None
                else:
                    samples[node_name] = scraper.samples(node)
            item = metrics_api.pod_metrics(pod, samples[node_name])
            if item is not None:
                items.append(item)
        if len(path) == 2:
            if not items:
                raise errors.not_found("pods", path[1], metrics_api.GROUP)
            self._send_json(200, items[0])
            return
        self._send_json(200, metrics_api.metrics_list("PodMetrics", items))

    # -- exec, attach, port-forward -------------------------------------------------------------

    def _pod_stream(
        self, namespace: str, name: str, subresource: str, query: dict[str, str]
    ) -> None:
        """Relay an upgraded exec / attach / portforward connection to the node's kubelet."""
        pod = self.registry.get(PODS, namespace, name)
        raw_query = urllib.parse.urlsplit(self.path).query
        path = streaming.kubelet_path(pod, subresource, query, raw_query)
        host, port = self._kubelet_address(pod)
        self._body_read = True  # an upgrade request has no body; the socket is the stream's
        self.close_connection = True
        streaming.relay(self, f"{host}:{port}", path, self.server.emulator.access.kubelet_context)

    def _kubelet_address(self, pod: JsonObject) -> tuple[str, int]:
        """The bound node's InternalIP (bracketed when IPv6) and kubelet port."""
        name = (pod.get("metadata") or {}).get("name")
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name:
            raise errors.bad_request(f"pod {name} does not have a host assigned")
        node = self.registry.get(NODES, "", node_name)
        status = node.get("status") or {}
        address = next(
            (
                a.get("address")
                for a in status.get("addresses") or []
                if a.get("type") == "InternalIP"
            ),
            None,
        )
        port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
        if not address or not port:
            raise errors.bad_request(
                f"node {node_name} has no InternalIP address or kubelet endpoint port"
            )
        host = f"[{address}]" if ":" in str(address) else str(address)
        return host, int(port)

    # -- logs ----------------------------------------------------------------------------------

    def _pod_log(self, namespace: str, name: str, query: dict[str, str]) -> None:
        pod = self.registry.get(PODS, namespace, name)
        containers = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
        container = query.get("container") or ""
        if not container:
            if len(containers) != 1:
                raise errors.bad_request(
                    f"a container name must be specified for pod {name}, "
                    f"choose one of: [{' '.join(map(str, containers))}]"
                )
            container = str(containers[0])
        elif container not in containers:
            raise errors.bad_request(f"container {container} is not valid for pod {name}")
        host, port = self._kubelet_address(pod)
        params = {k: v for k, v in query.items() if k in _LOG_PARAMETERS}
        path = "/containerLogs/{}/{}/{}".format(
            *(urllib.parse.quote(p, safe="") for p in (namespace, name, container))
        )
        suffix = f"?{urllib.parse.urlencode(params)}" if params else ""
        follow = query.get("follow") in _TRUE
        response = _open_kubelet(
            f"{host}:{port}{path}{suffix}", follow, self.server.emulator.access.kubelet_context
        )
        with response:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            while True:
                chunk = response.read1(65536) if follow else response.read(65536)
                if not chunk:
                    break
                self._write_chunk(chunk)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()


def _kubelet_location(node: JsonObject) -> str | None:
    """`host:port` of the node's kubelet endpoint (InternalIP, daemonEndpoints)."""
    status = node.get("status") or {}
    address = next(
        (a.get("address") for a in status.get("addresses") or [] if a.get("type") == "InternalIP"),
        None,
    )
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
    if not address or not port:
        return None
    host = f"[{address}]" if ":" in str(address) else str(address)
    return f"{host}:{port}"


def _fetch_resource_metrics(node: JsonObject, context: ssl.SSLContext) -> str:
    """The node's kubelet `/metrics/resource`, as metrics-server scrapes it."""
    location = _kubelet_location(node)
    if location is None:
        raise LookupError("no kubelet endpoint")
    with _open_kubelet(f"{location}/metrics/resource", False, context) as response:
        return str(response.read().decode())


def _open_kubelet(location: str, follow: bool, context: ssl.SSLContext) -> Any:
    """Open the kubelet's containerLogs endpoint over HTTPS, presenting the API server's kubelet
    client certificate (`--kubelet-client-certificate`) and not verifying the kubelet's serving
    certificate (no `--kubelet-certificate-authority`)."""
    try:
        return urllib.request.urlopen(
            f"https://{location}", context=context, timeout=None if follow else 30.0
        )
    except urllib.error.HTTPError as error:
        text = error.read().decode(errors="replace").strip()
        with contextlib.suppress(ValueError, TypeError, KeyError):
            text = str(json.loads(text)["message"])  # the kubelet's Status-like refusal
        raise errors.ApiError(
            error.code,
            HTTPStatus(error.code).phrase.replace(" ", "")
            if error.code in HTTPStatus._value2member_map_
            else "Unknown",
            text or f"the kubelet answered {error.code}",
        ) from error
    except (urllib.error.URLError, ssl.SSLError, ConnectionError, TimeoutError, OSError) as error:
        reason = error.reason if isinstance(error, urllib.error.URLError) else error
        raise errors.internal_error(f'Get "https://{location}": {reason}') from error


def _event_line(event_type: str, obj: JsonObject) -> bytes:
    return json.dumps({"type": event_type, "object": obj}, separators=(",", ":")).encode() + b"\n"


class _WatchStream:
    """Which events one watch sees, and how: selector changes turn MODIFIED into ADDED/DELETED."""

    def __init__(
        self,
        resource: ResourceType,
        namespace: str | None,
        labels: tuple[LabelRequirement, ...],
        fields: tuple[FieldRequirement, ...],
        render: Callable[[JsonObject], JsonObject] | None = None,
    ) -> None:
        self.resource = resource
        self.namespace = namespace if resource.namespaced else None
        self.labels = labels
        self.fields = fields
        self.render = render  # turns an object into what the event carries (a Table)

    def event_line(self, event_type: str, obj: JsonObject) -> bytes:
        return _event_line(event_type, self.render(obj) if self.render else obj)

    def selects(self, obj: JsonObject) -> bool:
        metadata = obj["metadata"]
        if self.namespace is not None and metadata.get("namespace") != self.namespace:
            return False
        return labels_match(self.labels, metadata.get("labels")) and fields_match(self.fields, obj)

    def line_for(self, event: WatchEvent) -> bytes | None:
        if event.resource is not self.resource:
            return None
        now_selected = self.selects(event.object)
        if event.type == "MODIFIED":
            was_selected = event.previous is not None and self.selects(event.previous)
            if now_selected and not was_selected:
                return self.event_line("ADDED", event.object)
            if was_selected and not now_selected:
                return self.event_line("DELETED", event.object)
            if not now_selected:
                return None
        elif not now_selected:
            return None
        if self.render is not None:
            return self.event_line(event.type, event.object)
        if event.encoded is None:
            event.encoded = _event_line(event.type, event.object)  # shared by every watcher
        return event.encoded

    def bookmark(self, resource_version: int) -> JsonObject:
        if self.render is not None:
            return {
                "kind": "Table",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": {"resourceVersion": str(resource_version)},
                "columnDefinitions": [],
                "rows": [],
            }
        return {
            "kind": self.resource.kind,
            "apiVersion": self.resource.api_version,
            "metadata": {"resourceVersion": str(resource_version)},
        }
