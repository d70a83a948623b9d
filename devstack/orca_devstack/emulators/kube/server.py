"""HTTP front of the emulator: routing, discovery, Status bodies, watch streams and the log proxy.

A `ThreadingHTTPServer` gives each connection its own thread, so hundreds of long-lived watch
streams and ordinary requests proceed side by side. Watches are chunked HTTP/1.1 responses with one
JSON event per line, as a real API server sends them. Responses are always JSON, whatever the
Accept header asks for (kubectl falls back from protobuf).
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
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from orca_devstack.emulators.kube import errors, tables
from orca_devstack.emulators.kube.registry import (
    NODES,
    PODS,
    DeleteOptions,
    Registry,
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
_VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]
_LOG_PARAMETERS = (
    "follow",
    "tailLines",
    "sinceSeconds",
    "sinceTime",
    "timestamps",
    "limitBytes",
    "previous",
)


def _group_versions() -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for resource in ALL_RESOURCES:
        if resource.group:
            versions = groups.setdefault(resource.group, [])
            if resource.version not in versions:
                versions.append(resource.version)
    return groups


def api_resource_list(group: str, version: str) -> JsonObject:
    resources: list[JsonObject] = []
    for resource in ALL_RESOURCES:
        if resource.group != group or resource.version != version:
            continue
        resources.append(
            {
                "name": resource.plural,
                "singularName": resource.singular,
                "namespaced": resource.namespaced,
                "kind": resource.kind,
                "verbs": _VERBS,
                **({"shortNames": list(resource.short_names)} if resource.short_names else {}),
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
    ) -> None:
        self.registry = registry
        self.bookmark_interval = bookmark_interval
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

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: tests and `orca dev` own the terminal

    # -- plumbing ------------------------------------------------------------------------------

    @property
    def registry(self) -> Registry:
        return self.server.emulator.registry

    def _send_json(self, code: int, body: Any) -> None:
        payload = json.dumps(body, separators=(",", ":")).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _send_error(self, error: errors.ApiError) -> None:
        self._send_json(error.code, error.status())

    def _read_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if "protobuf" in content_type or "yaml" in content_type or "cbor" in content_type:
            # client-go retries a 415 in JSON.
            raise errors.ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types "
                f"include: application/json; got {content_type}",
            )
        try:
            return json.loads(raw)
        except ValueError as error:
            raise errors.bad_request(f"the request body is not valid JSON: {error}") from error

    def _dispatch(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = {
            k: v[-1] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()
        }
        segments = [urllib.parse.unquote(s) for s in url.path.strip("/").split("/") if s]
        try:
            self._route(segments, query)
        except errors.ApiError as error:
            self._send_error(error)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as error:  # a bug must still answer with a Status, not a dropped socket
            self._send_error(errors.internal_error(f"{type(error).__name__}: {error}"))

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
        if len(segments) >= 4 and segments[0] == "apis":
            self._route_resource(segments[1], segments[2], segments[3:], query)
            return
        raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")

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
            raise errors.ApiError(
                404, "NotFound", "the server could not find the requested resource"
            )
        if resource.namespaced and namespace is None and len(rest) > 1:
            raise errors.ApiError(
                404, "NotFound", "the server could not find the requested resource"
            )
        name = rest[1] if len(rest) > 1 else None
        subresource = rest[2] if len(rest) > 2 else None
        if subresource is not None and subresource not in resource.subresources:
            raise errors.ApiError(
                404, "NotFound", "the server could not find the requested resource"
            )
        ns = namespace or ""
        method = self.command
        if name is None:
            if method in ("GET", "HEAD"):
                if query.get("watch") in _TRUE:
                    self._watch(resource, namespace, query)
                else:
                    self._list(resource, namespace, query)
            elif method == "POST":
                body = self._read_body()
                self._send_json(201, self.registry.create(resource, ns, body))
            else:
                raise errors.method_not_allowed()
            return
        if subresource == "log":
            self._pod_log(ns, name, query)
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
            self._send_json(
                200, self.registry.replace(resource, ns, name, self._read_body(), subresource)
            )
        elif method == "PATCH":
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            body = self._read_body()
            self._send_json(
                200, self.registry.patch(resource, ns, name, content_type, body, subresource)
            )
        elif method == "DELETE":
            self._send_json(
                200, self.registry.delete(resource, ns, name, self._delete_options(query))
            )
        else:
            raise errors.method_not_allowed()

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
        return DeleteOptions(
            grace_period_seconds=grace,
            precondition_uid=preconditions.get("uid"),
            precondition_resource_version=preconditions.get("resourceVersion"),
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
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.close_connection = True
        stream = _WatchStream(resource, namespace, labels, fields)
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
                        self._write_chunk(_event_line("ADDED", obj))
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
        params = {k: v for k, v in query.items() if k in _LOG_PARAMETERS}
        path = "/containerLogs/{}/{}/{}".format(
            *(urllib.parse.quote(p, safe="") for p in (namespace, name, container))
        )
        suffix = f"?{urllib.parse.urlencode(params)}" if params else ""
        host = f"[{address}]" if ":" in str(address) else str(address)
        follow = query.get("follow") in _TRUE
        response = _open_kubelet(f"{host}:{port}{path}{suffix}", follow)
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


def _open_kubelet(location: str, follow: bool) -> Any:
    """Open the kubelet's containerLogs endpoint: https (unverified) first, then plain http."""
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    timeout = None if follow else 30.0
    failure: Exception | None = None
    for scheme in ("https", "http"):
        try:
            return urllib.request.urlopen(
                f"{scheme}://{location}",
                context=insecure if scheme == "https" else None,
                timeout=timeout if timeout else 10.0,
            )
        except urllib.error.HTTPError as error:
            text = error.read().decode(errors="replace").strip()
            raise errors.ApiError(
                error.code,
                HTTPStatus(error.code).phrase.replace(" ", "")
                if error.code in HTTPStatus._value2member_map_
                else "Unknown",
                text or f"the kubelet answered {error.code}",
            ) from error
        except (
            urllib.error.URLError,
            ssl.SSLError,
            ConnectionError,
            TimeoutError,
            OSError,
        ) as error:
            failure = error
    raise errors.internal_error(f'Get "{location}": {failure}')


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
    ) -> None:
        self.resource = resource
        self.namespace = namespace if resource.namespaced else None
        self.labels = labels
        self.fields = fields

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
                return _event_line("ADDED", event.object)
            if was_selected and not now_selected:
                return _event_line("DELETED", event.object)
            if not now_selected:
                return None
        elif not now_selected:
            return None
        if event.encoded is None:
            event.encoded = _event_line(event.type, event.object)  # shared by every watcher
        return event.encoded

    def bookmark(self, resource_version: int) -> JsonObject:
        return {
            "kind": self.resource.kind,
            "apiVersion": self.resource.api_version,
            "metadata": {"resourceVersion": str(resource_version)},
        }
