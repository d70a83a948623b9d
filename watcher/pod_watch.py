"""List and watch the pods bound to the virtual node, surviving the real API server.

After kopf's `continuous_watch`: list (in pages), then watch from the list's resourceVersion;
remember the resourceVersion of every event, bookmarks included, so a watch that ends (the server's
timeout) or drops (a proxy, a restart) resumes where it stopped without replaying or missing
anything; `410 Gone` (the server no longer retains that far back) means list again. A relist also
reports pods that vanished while nobody watched as DELETED, which a plain kopf-style relist would
miss and a workflow waiting on its pod must be told.

Every pod state goes to `PodQueues`; this stream itself never waits on Temporal. The kubernetes
client is synchronous, so requests run in threads and one reader thread per watch connection hands
lines to the event loop; stopping shuts the socket down so that thread returns at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from typing import Any

import urllib3
from kubernetes import client as k8s

from orca.logging import get_logger
from orca.metrics import PODS_BY_PHASE, WATCH_RESTARTS
from orca.pod_phase import PodPhase
from orca.watcher.kube_json import read_json
from orca.watcher.pod_queues import RELIST, PodEvent, PodQueues

log = get_logger(__name__)

_END = object()


class WatchExpired(Exception):  # noqa: N818 - the API's own name for the 410 reason
    """The resourceVersion is older than the server retains: list again."""


class WatchError(Exception):
    """The server reported an error other than 410 inside the stream."""


class PodWatch:
    def __init__(
        self,
        core: k8s.CoreV1Api,
        node_name: str,
        queues: PodQueues,
        *,
        watch_timeout_seconds: int = 300,
        page_size: int = 500,
        backoff_initial: float = 0.2,
        backoff_max: float = 10.0,
    ) -> None:
        self.core = core
        self.node_name = node_name
        self.queues = queues
        self.field_selector = f"spec.nodeName={node_name}"
        self.watch_timeout_seconds = watch_timeout_seconds
        self.page_size = page_size
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.resource_version: str | None = None
        self.pods: dict[str, dict[str, Any]] = {}
        """The latest state of every pod on the node, by UID."""
        self.live = False
        """True while a watch stream is open on top of a complete list."""
        self._response: urllib3.HTTPResponse | None = None

    async def run(self) -> None:
        """Watch until cancelled; every failure is a restart, never an exit."""
        delay = self.backoff_initial
        try:
            while True:
                try:
                    if self.resource_version is None:
                        await self.relist()
                    await self._watch_once()
                    delay = self.backoff_initial
                except WatchExpired:
                    self._expired()
                except k8s.ApiException as error:
                    if error.status == 410:  # a server may refuse the watch itself with 410
                        self._expired()
                        continue
                    self.live = False
                    WATCH_RESTARTS.labels(reason="error").inc()
                    log.warning("pod watch failed", status=error.status, reason=error.reason)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.backoff_max)
                except (urllib3.exceptions.HTTPError, OSError, WatchError, ValueError) as error:
                    self.live = False
                    WATCH_RESTARTS.labels(reason="dropped").inc()
                    reason = f"{type(error).__name__}: {error}"
                    log.info("pod watch dropped; resuming", error=reason)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.backoff_max)
        finally:
            self.live = False
            self._close_response()

    def _expired(self) -> None:
        """The server no longer has events since our resourceVersion: list again."""
        WATCH_RESTARTS.labels(reason="expired").inc()
        log.info("pod watch expired (410); relisting")
        self.resource_version = None
        self.live = False

    async def relist(self) -> None:
        """List every pod on the node; report vanished pods as DELETED, the rest as RELIST."""
        listed, resource_version = await asyncio.to_thread(
            list_node_pods, self.core, self.node_name, self.page_size
        )
        vanished = [pod for uid, pod in self.pods.items() if uid not in listed]
        self.pods = listed
        self.resource_version = resource_version
        self._count_phases()
        for pod in vanished:
            self.queues.put(PodEvent("DELETED", pod))
        for pod in listed.values():
            self.queues.put(PodEvent(RELIST, pod))
        log.info("pods listed", count=len(listed), vanished=len(vanished))

    async def _watch_once(self) -> None:
        response = await asyncio.to_thread(self._open_watch, self.resource_version)
        self._response = response
        self.live = True
        lines: asyncio.Queue[object] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        reader = threading.Thread(
            target=_read_lines, args=(response, loop, lines), name="pod-watch", daemon=True
        )
        reader.start()
        try:
            while True:
                item = await lines.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, bytes)
                self._on_line(item)
        finally:
            self._close_response()

    def _open_watch(self, resource_version: str | None) -> urllib3.HTTPResponse:
        response: Any = self.core.list_pod_for_all_namespaces(
            field_selector=self.field_selector,
            watch=True,
            allow_watch_bookmarks=True,
            resource_version=resource_version,
            timeout_seconds=self.watch_timeout_seconds,
            _preload_content=False,
            _request_timeout=(10, self.watch_timeout_seconds + 30),
        )
        assert isinstance(response, urllib3.HTTPResponse)
        return response

    def _on_line(self, line: bytes) -> None:
        event = json.loads(line)
        event_type = event.get("type")
        obj = event.get("object") or {}
        if event_type == "ERROR":
            if obj.get("code") == 410:
                raise WatchExpired(obj.get("message", "resource version expired"))
            raise WatchError(f"{obj.get('code')} {obj.get('reason')}: {obj.get('message')}")
        metadata = obj.get("metadata") or {}
        if metadata.get("resourceVersion"):
            self.resource_version = str(metadata["resourceVersion"])
        if event_type == "BOOKMARK":
            return
        if event_type not in ("ADDED", "MODIFIED", "DELETED") or not metadata.get("uid"):
            log.warning("unexpected pod watch event ignored", type=event_type)
            return
        pod = _with_kind(obj)
        if event_type == "DELETED":
            self.pods.pop(metadata["uid"], None)
        else:
            self.pods[metadata["uid"]] = pod
        self._count_phases()
        self.queues.put(PodEvent(str(event_type), pod))

    def _count_phases(self) -> None:
        counts: dict[str, int] = {}
        for pod in self.pods.values():
            phase = (pod.get("status") or {}).get("phase") or PodPhase.UNKNOWN
            counts[phase] = counts.get(phase, 0) + 1
        for phase in PodPhase:
            PODS_BY_PHASE.labels(phase=phase).set(counts.get(phase, 0))

    def _close_response(self) -> None:
        response, self._response = self._response, None
        if response is None:
            return
        try:
            response.shutdown()
            response.release_conn()
        except Exception as error:  # closing a broken socket must not mask why it broke
            log.debug("closing the watch connection failed", error=str(error))


def list_node_pods(
    core: k8s.CoreV1Api, node_name: str, page_size: int = 500
) -> tuple[dict[str, dict[str, Any]], str]:
    """Every pod bound to `node_name` (by UID, camelCase JSON) and the list's resourceVersion."""
    listed: dict[str, dict[str, Any]] = {}
    token: str | None = None
    resource_version = ""
    while True:
        kwargs: dict[str, Any] = {
            "field_selector": f"spec.nodeName={node_name}",
            "limit": page_size,
        }
        if token:
            kwargs["_continue"] = token
        page = read_json(core.list_pod_for_all_namespaces, _request_timeout=(10, 60), **kwargs)
        for pod in page.get("items") or []:
            listed[pod["metadata"]["uid"]] = _with_kind(pod)
        metadata = page.get("metadata") or {}
        resource_version = str(metadata.get("resourceVersion") or resource_version)
        token = metadata.get("continue") or None
        if token is None:
            return listed, resource_version


def _with_kind(pod: dict[str, Any]) -> dict[str, Any]:
    """List items carry no kind; the workflow receives the same shape as from a watch."""
    if "kind" not in pod:
        return {"apiVersion": "v1", "kind": "Pod", **pod}
    return pod


def _read_lines(
    response: urllib3.HTTPResponse, loop: asyncio.AbstractEventLoop, lines: asyncio.Queue[object]
) -> None:
    """Reader thread: split the chunked stream into lines and hand them to the event loop."""
    buffer = b""
    try:
        for chunk in response.stream(amt=None, decode_content=False):
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if line.strip():
                    loop.call_soon_threadsafe(lines.put_nowait, line)
        if buffer.strip():
            loop.call_soon_threadsafe(lines.put_nowait, buffer)
        item: object = _END
    except BaseException as error:
        item = error
    with contextlib.suppress(RuntimeError):  # a closed loop: the watcher is gone
        loop.call_soon_threadsafe(lines.put_nowait, item)
