"""Container state events for every monitored pod from one FilterLogEvents call per interval.

The instance's runner writes each container state change as a JSON event to the status log
group, one stream per pod UID (`orca.instance_contract`: `ContainerStateEvent`,
`parse_status_line`; docs/instance-contract.md). Monitoring N pods must cost O(1)
calls per poll interval, so one loop reads the whole group since its last position (paginated)
and files the events by pod UID — for every pod, kept a while, so that a pod that starts being
monitored finds the events written since its containers started without another call. A pod
whose start command this worker sent (`expect`) is covered by construction; any other pod is
covered when its containers started after this feed began reading. Only a pod that is neither
(its containers started before a worker restart) is backfilled once from its own stream.

Reports are signed (docs/instance-contract.md): an event counts only when its line carries the
HMAC of the pod's own status key and sits in the pod's own stream. The key is handed over by
`expect` (the worker that generated it) or read once from the pod's SSM parameter by `subscribe`
(another worker, after a restart). Lines of a pod whose key is not known yet wait in `_pending`
and are checked when it is; a pod with no key parameter (started before ORCA signed reports) has
its unsigned reports accepted. Every rejected line is counted in
`orca_forged_status_reports_total` and logged without its content. The keys stay in memory only,
held by the log redaction (`orca.logging.SECRET_VALUES`) while the feed knows them.

The loop outlives any one activity, so it cannot raise; a permanent error (Logs access denied)
is kept in `permanent_error` and raised by every monitor round (`raise_if_failing`), which fails
the pods and terminates their instances instead of watching them blind for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import structlog

from orca.aws_clients import AwsClients
from orca.aws_errors import Disposition, disposition, is_not_found
from orca.instance_contract import (
    ContainerStateEvent,
    StatusLine,
    parse_status_line,
    split_status_line,
    status_key_parameter,
    status_log_stream,
    verify_status_line,
)
from orca.logging import SECRET_VALUES
from orca.metrics import FORGED_STATUS_REPORTS

log = structlog.get_logger(__name__)

OVERLAP_MS = 5_000
"""Re-read this much before the last position: CloudWatch Logs ingests slightly out of order."""
COVERAGE_MARGIN_MS = 60_000
KEEP_UNWATCHED_MS = 15 * 60_000
"""How long events of a pod nobody monitors are kept for a monitor that may still come."""


class ContainerStatusFeed:
    def __init__(self, aws: AwsClients, log_group: str, interval_seconds: float) -> None:
        self._aws = aws
        self._log_group = log_group
        self._interval = interval_seconds
        self._events: dict[str, dict[str, ContainerStateEvent]] = {}
        self._last_event_ms: dict[str, int] = {}
        self._subscribers: dict[str, int] = {}
        self._expected: set[str] = set()
        self._keys: dict[str, str | None] = {}
        """Pod UID -> its status key (None: the pod has none, its reports are unsigned)."""
        self._pending: dict[str, list[tuple[str, str, str]]] = {}
        """Lines of pods whose key is not known yet: (event ID, stream, message)."""
        self.forged = 0
        self._position_ms = int(time.time() * 1000) - OVERLAP_MS
        self._covered_since_ms: int | None = None
        self._task: asyncio.Task[None] | None = None
        self.calls = 0
        self.backfill_calls = 0
        """FilterLogEvents calls (all of them; those of backfills)."""
        self.permanent_error: BaseException | None = None
        """The last read's error, when retrying cannot fix it; cleared by a read that works."""

    def expect(self, pod_uid: str, status_key: str) -> None:
        """Start reading before the pod's containers can start (call before SendCommand): the
        feed then sees every event they write, and monitoring the pod needs no backfill.
        `status_key` is the key the pod's reports are signed with."""
        self._ensure_running()
        self._expected.add(pod_uid)
        self._set_key(pod_uid, status_key)

    def _set_key(self, pod_uid: str, key: str | None) -> None:
        if key is not None and self._keys.get(pod_uid) != key:
            self._forget_key(pod_uid)
            SECRET_VALUES.hold([key])  # while the feed knows it, no log line shows it
        self._keys[pod_uid] = key
        self._file(self._pending.pop(pod_uid, []))

    def _read_key(self, pod_uid: str) -> str | None:
        try:
            response = self._aws.ssm.get_parameter(
                Name=status_key_parameter(pod_uid), WithDecryption=True
            )
        except Exception as error:
            if is_not_found(error):
                return None
            raise
        return str(response["Parameter"]["Value"])

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            if self._covered_since_ms is None:
                self._covered_since_ms = self._position_ms
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def subscribe(self, pod_uid: str, containers_started_at: datetime | None) -> None:
        """Follow a pod; backfill from its stream only if the feed may have missed events."""
        self._ensure_running()
        self._subscribers[pod_uid] = self._subscribers.get(pod_uid, 0) + 1
        covered = self._covered_since_ms
        started_ms = (
            int(containers_started_at.timestamp() * 1000) - COVERAGE_MARGIN_MS
            if containers_started_at is not None
            else None
        )
        backfill = pod_uid not in self._expected and (
            covered is None or started_ms is None or started_ms < covered
        )
        if pod_uid in self._keys and not backfill:
            return
        key, lines = await asyncio.to_thread(self._key_and_backfill, pod_uid, backfill)
        if pod_uid not in self._keys:
            self._set_key(pod_uid, key)
        self._file(lines)

    def _key_and_backfill(
        self, pod_uid: str, backfill: bool
    ) -> tuple[str | None, list[tuple[str, str, str]]]:
        """One thread hop for what `subscribe` reads: the pod's key (unless known) and, when the
        feed may have missed its events, its stream."""
        key = self._keys[pod_uid] if pod_uid in self._keys else self._read_key(pod_uid)
        if not backfill:
            return key, []
        return key, self._read([pod_uid], None)

    def unsubscribe(self, pod_uid: str) -> None:
        left = self._subscribers.get(pod_uid, 0) - 1
        if left <= 0:
            self._subscribers.pop(pod_uid, None)
        else:
            self._subscribers[pod_uid] = left

    def raise_if_failing(self) -> None:
        """Raise the shared loop's permanent error in the calling activity, if there is one."""
        if self.permanent_error is not None:
            raise self.permanent_error

    def events(self, pod_uid: str) -> list[ContainerStateEvent]:
        return sorted(self._events.get(pod_uid, {}).values(), key=lambda e: e.at)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            start = self._position_ms - OVERLAP_MS
            now_ms = int(time.time() * 1000)
            try:
                self._file(await asyncio.to_thread(self._read, None, start))
            except Exception as error:
                log.warning("reading container status events failed", error=str(error))
                if disposition(error) is Disposition.FAIL:
                    self.permanent_error = error
                continue
            self.permanent_error = None
            self._position_ms = now_ms
            self._forget_unwatched(now_ms)

    def _forget_unwatched(self, now_ms: int) -> None:
        for pod_uid, last in list(self._last_event_ms.items()):
            if pod_uid not in self._subscribers and now_ms - last > KEEP_UNWATCHED_MS:
                self._expected.discard(pod_uid)
                self._events.pop(pod_uid, None)
                self._pending.pop(pod_uid, None)
                self._forget_key(pod_uid)
                self._last_event_ms.pop(pod_uid, None)

    def _read(self, streams: list[str] | None, start_ms: int | None) -> list[tuple[str, str, str]]:
        kwargs: dict[str, Any] = {"logGroupName": self._log_group}
        if streams is not None:
            kwargs["logStreamNames"] = streams
        if start_ms is not None:
            kwargs["startTime"] = start_ms
        found: list[tuple[str, str, str]] = []
        try:
            while True:
                self.calls += 1
                if streams is not None:  # counted here: the shared loop reads meanwhile
                    self.backfill_calls += 1
                page = self._aws.logs.filter_log_events(**kwargs)
                found += [
                    (e.get("eventId", ""), e.get("logStreamName", ""), e.get("message", ""))
                    for e in page["events"]
                ]
                if not page.get("nextToken"):
                    return found
                kwargs["nextToken"] = page["nextToken"]
        except Exception as error:
            if is_not_found(error):  # no instance has written yet: the group or stream is absent
                return found
            raise

    def _file(self, raw: Iterable[tuple[str, str, str]]) -> None:
        for event_id, stream, message in raw:
            line = split_status_line(message)
            event = self._accept(event_id, stream, line, message)
            if event is not None:
                key = event_id or f"{event.container}/{event.state}/{event.at.isoformat()}"
                self._events.setdefault(event.pod_uid, {})[key] = event
                self._last_event_ms[event.pod_uid] = int(time.time() * 1000)

    def _accept(
        self, event_id: str, stream: str, line: StatusLine, message: str
    ) -> ContainerStateEvent | None:
        """The line's event if it is the stream's pod's own signed report; None otherwise (a
        line whose pod's key is not known yet is kept for later)."""
        if stream not in self._keys:
            if parse_status_line(line.report) is not None or line.signature is not None:
                self._pending.setdefault(stream, []).append((event_id, stream, message))
                self._last_event_ms.setdefault(stream, int(time.time() * 1000))
            return None
        key = self._keys[stream]
        if key is None:  # a pod started before reports were signed
            event = parse_status_line(line.report)
            if event is not None and status_log_stream(event.pod_uid) == stream:
                return event
        else:
            event = verify_status_line(line, key, stream)
            if event is not None:
                return event
        if parse_status_line(line.report) is None and line.signature is None:
            return None  # not a report at all
        self.forged += 1
        FORGED_STATUS_REPORTS.inc()
        log.warning("ignored a status report that is not signed by its pod", stream=stream)
        return None

    def _forget_key(self, pod_uid: str) -> None:
        key = self._keys.pop(pod_uid, None)
        if key is not None:
            SECRET_VALUES.release([key])

    async def close(self) -> None:
        for pod_uid in list(self._keys):
            self._forget_key(pod_uid)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
