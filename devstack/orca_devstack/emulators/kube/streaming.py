"""`pods/exec`, `pods/attach` and `pods/portforward`: relayed to the node's kubelet as
kube-apiserver relays them.

kubectl opens an upgrade request (WebSocket `v5.channel.k8s.io` and predecessors; SPDY/3.1 as
its fallback) to the API server; the API server opens the same upgrade to the kubelet's
`/exec/{ns}/{pod}/{container}`, `/attach/...` or `/portForward/{ns}/{pod}` with the query
parameters, over HTTPS with its kubelet client certificate, and once the kubelet answers
`101 Switching Protocols` passes the kubelet's answer back and copies bytes both ways until
either side closes (its UpgradeAwareHandler). A kubelet that refuses answers with a status
code and a message, which the client gets as a Status.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
import urllib.parse
from http import HTTPStatus
from typing import Any

from orca_devstack.emulators.kube import errors
from orca_devstack.emulators.kube.store import JsonObject

OPTIONS_KINDS = {
    "exec": "PodExecOptions",
    "attach": "PodAttachOptions",
    "portforward": "PodPortForwardOptions",
}
_KUBELET_PATHS = {"exec": "exec", "attach": "attach", "portforward": "portForward"}
_STREAM_FLAGS = (("stdin", "input"), ("stdout", "output"), ("stderr", "error"), ("tty", "tty"))
_FORWARDED_HEADERS = (
    "Upgrade",
    "Connection",
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Version",
    "Sec-WebSocket-Protocol",
    "X-Stream-Protocol-Version",
)
_MAX_HEAD_BYTES = 64 * 1024


def kubelet_path(pod: JsonObject, subresource: str, query: dict[str, str], raw_query: str) -> str:
    """The kubelet path and query for a pod's exec / attach / portforward request."""
    metadata = pod.get("metadata") or {}
    namespace, name = str(metadata.get("namespace")), str(metadata.get("name"))
    quote = urllib.parse.quote
    if subresource == "portforward":
        base = f"/portForward/{quote(namespace, safe='')}/{quote(name, safe='')}"
        ports = kubelet_query(subresource, raw_query)
        return f"{base}?{urllib.parse.urlencode(ports)}" if ports else base
    containers = [str(c.get("name")) for c in (pod.get("spec") or {}).get("containers") or []]
    container = query.get("container") or ""
    if not container:
        if len(containers) != 1:
            raise errors.bad_request(
                f"a container name must be specified for pod {name}, "
                f"choose one of: [{' '.join(containers)}]"
            )
        container = containers[0]
    elif container not in containers:
        raise errors.bad_request(f"container {container} is not valid for pod {name}")
    base = "/{}/{}/{}/{}".format(
        _KUBELET_PATHS[subresource], *(quote(p, safe="") for p in (namespace, name, container))
    )
    params = kubelet_query(subresource, raw_query)
    return f"{base}?{urllib.parse.urlencode(params)}" if params else base


def kubelet_query(subresource: str, raw_query: str) -> list[tuple[str, str]]:
    """The kubelet's query parameters for the API's `Pod{Exec,Attach,PortForward}Options`, as
    kube-apiserver's `streamParams` writes them: `input`, `output`, `error`, `tty` as `1`, each
    `command`, each `port`."""
    values = urllib.parse.parse_qs(raw_query, keep_blank_values=True)
    params: list[tuple[str, str]] = []
    if subresource == "portforward":
        return [("port", port) for port in values.get("ports", [])]
    for option, parameter in _STREAM_FLAGS:
        if (values.get(option) or [""])[-1] in ("true", "True", "1"):
            params.append((parameter, "1"))
    if subresource == "exec":
        params.extend(("command", command) for command in values.get("command", []))
    return params


def relay(handler: Any, location: str, path: str, context: ssl.SSLContext) -> None:
    """Open the upgrade to the kubelet at `location` and, once it switches protocols, copy bytes
    between it and the client on `handler` (a BaseHTTPRequestHandler) until one side closes."""
    if not handler.headers.get("Upgrade"):
        raise errors.bad_request("Upgrade request required")
    host, _, port = location.rpartition(":")
    try:
        raw = socket.create_connection((host.strip("[]"), int(port)), timeout=30.0)
        kubelet = context.wrap_socket(raw)
    except (OSError, ssl.SSLError) as error:
        raise errors.internal_error(
            f'error dialing backend: dial "https://{location}{path}": {error}'
        ) from error
    try:
        kubelet.sendall(_request_head(handler, location, path))
        reader = kubelet.makefile("rb")
        code, head, body = _read_response(reader)
        if code != 101:
            raise _refusal(code, body)
        kubelet.settimeout(None)
        handler.wfile.write(head)
        handler.wfile.flush()
        _copy_both_ways(handler, kubelet, reader)
    except (OSError, ssl.SSLError) as error:
        raise errors.internal_error(f"the kubelet connection failed: {error}") from error
    finally:
        with contextlib.suppress(OSError):
            kubelet.close()


def _request_head(handler: Any, location: str, path: str) -> bytes:
    lines = [f"{handler.command} {path} HTTP/1.1", f"Host: {location}"]
    for name in _FORWARDED_HEADERS:
        for value in handler.headers.get_all(name) or ():
            lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _read_response(reader: Any) -> tuple[int, bytes, bytes]:
    """(status code, the raw head, the body when there is a Content-Length)."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        line = reader.readline(_MAX_HEAD_BYTES)
        if not line:
            raise OSError("the kubelet closed the connection before answering")
        head += line
        if len(head) > _MAX_HEAD_BYTES:
            raise OSError("the kubelet's response head is too large")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    try:
        code = int(status_line.split(" ")[1])
    except (IndexError, ValueError) as error:
        raise OSError(f"the kubelet answered {status_line!r}") from error
    length = 0
    for line in header_lines:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip() or 0)
    body = reader.read(length) if code != 101 and length > 0 else b""
    return code, head, body


def _refusal(code: int, body: bytes) -> errors.ApiError:
    text = body.decode(errors="replace").strip()
    with contextlib.suppress(ValueError, TypeError, KeyError):
        text = str(json.loads(text)["message"])  # the kubelet's Status
    reason = (
        HTTPStatus(code).phrase.replace(" ", "")
        if code in HTTPStatus._value2member_map_
        else "Unknown"
    )
    return errors.ApiError(code, reason, text or f"the kubelet answered {code}")


def _copy_both_ways(handler: Any, kubelet: ssl.SSLSocket, reader: Any) -> None:
    client: socket.socket = handler.connection

    def upstream() -> None:
        try:
            while True:
                data = handler.rfile.read1(65536)
                if not data:
                    break
                kubelet.sendall(data)
        except (OSError, ValueError):
            pass
        finally:
            with contextlib.suppress(OSError):
                kubelet.shutdown(socket.SHUT_RDWR)

    thread = threading.Thread(target=upstream, name="kube-emulator-stream", daemon=True)
    thread.start()
    try:
        while True:
            data = reader.read1(65536)
            if not data:
                break
            client.sendall(data)
    except (OSError, ValueError):
        pass
    finally:
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_RDWR)
        thread.join(timeout=5.0)
