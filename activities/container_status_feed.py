"""Container state events for every monitored pod from one FilterLogEvents call per interval.

The instance's bootstrap script writes each container state change as a JSON event to the status
log group, one stream per pod UID (docs/instance-contract.md). Monitoring N pods must cost O(1)
calls per poll interval, so one loop reads the whole group since its last position (paginated)
and files the events by pod UID. A pod that starts being monitored (a new pod, or a retried
monitor activity after a worker restart) is backfilled once from its own stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterable
from typing import Any

import structlog
from pydantic import ValidationError

from activities.status_mapping import ContainerStateEvent
from orca.aws_clients import AwsClients
from orca.aws_errors import is_not_found

log = structlog.get_logger(__name__)

OVERLAP_MS = 5_000
"""Re-read this much before the last position: CloudWatch Logs ingests slightly out of order."""


class ContainerStatusFeed:
    def __init__(self, aws: AwsClients, log_group: str, interval_seconds: float) -> None:
        self._aws = aws
        self._log_group = log_group
        self._interval = interval_seconds
        self._events: dict[str, dict[str, ContainerStateEvent]] = {}
        self._subscribers: dict[str, int] = {}
        self._position_ms = int(time.time() * 1000) - OVERLAP_MS
        self._task: asyncio.Task[None] | None = None
        self.calls = 0

    async def subscribe(self, pod_uid: str) -> None:
        self._subscribers[pod_uid] = self._subscribers.get(pod_uid, 0) + 1
        if pod_uid not in self._events:
            self._events[pod_uid] = {}
            backfill = await asyncio.to_thread(self._read, [pod_uid], None)
            self._file(backfill)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop())

    def unsubscribe(self, pod_uid: str) -> None:
        left = self._subscribers.get(pod_uid, 0) - 1
        if left <= 0:
            self._subscribers.pop(pod_uid, None)
            self._events.pop(pod_uid, None)
        else:
            self._subscribers[pod_uid] = left

    def events(self, pod_uid: str) -> list[ContainerStateEvent]:
        return sorted(self._events.get(pod_uid, {}).values(), key=lambda e: e.at)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            if self._subscribers:
                start = self._position_ms - OVERLAP_MS
                self._position_ms = int(time.time() * 1000)
                try:
                    self._file(await asyncio.to_thread(self._read, None, start))
                except Exception as error:
                    log.warning("reading container status events failed", error=str(error))

    def _read(self, streams: list[str] | None, start_ms: int | None) -> list[tuple[str, str]]:
        kwargs: dict[str, Any] = {"logGroupName": self._log_group}
        if streams is not None:
            kwargs["logStreamNames"] = streams
        if start_ms is not None:
            kwargs["startTime"] = start_ms
        found: list[tuple[str, str]] = []
        try:
            while True:
                self.calls += 1
                page = self._aws.logs.filter_log_events(**kwargs)
                found += [(e.get("eventId", ""), e.get("message", "")) for e in page["events"]]
                if not page.get("nextToken"):
                    return found
                kwargs["nextToken"] = page["nextToken"]
        except Exception as error:
            if is_not_found(error):  # no instance has written yet: the group or stream is absent
                return found
            raise

    def _file(self, raw: Iterable[tuple[str, str]]) -> None:
        for event_id, message in raw:
            with contextlib.suppress(ValueError, ValidationError):
                event = ContainerStateEvent.model_validate(json.loads(message))
                if event.pod_uid in self._events:
                    key = event_id or f"{event.container}/{event.state}/{event.at.isoformat()}"
                    self._events[event.pod_uid][key] = event
