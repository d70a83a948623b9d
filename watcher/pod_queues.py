"""Per-pod queues: one pod's events in order, different pods in parallel.

After kopf's `queueing.py`. The watch stream is one sequence for all pods, but what the watcher
does for a pod (start a workflow, signal it, remove the pod object) is a network call that may be
slow or retried. Handling the stream in line would make a burst of new pods queue behind one slow
call; handling every event concurrently would let a deletion overtake the start it follows.

So each event goes to the queue of its pod (keyed by UID: a StatefulSet pod reusing a name is a
different pod) and one task per pod works through it. When several events for a pod wait, only the
newest matters (causes are derived from the object's latest state), so the task skips to it, as
kopf's batching window does. A failed handling is retried with backoff, again with the newest
state. A task ends when its queue is empty; the next event starts a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from orca.launch_spec import PodRef, pod_ref_from_pod
from orca.logging import bind_work_context, get_logger
from orca.workflow_ids import pod_workflow_id

log = get_logger(__name__)

RELIST = "RELIST"
"""Event type for a pod seen in a list (watch start, relist or convergence), not a watch event."""


@dataclass(frozen=True)
class PodEvent:
    type: str
    """ADDED, MODIFIED, DELETED (watch), or RELIST."""
    pod: dict[str, Any]
    """The pod as camelCase JSON, as the API returns it."""

    @property
    def ref(self) -> PodRef:
        return pod_ref_from_pod(self.pod)


PodEventHandler = Callable[[PodEvent], Awaitable[None]]


class PodQueues:
    def __init__(
        self,
        handler: PodEventHandler,
        *,
        max_concurrency: int = 64,
        retry_initial: float = 0.5,
        retry_max: float = 30.0,
    ) -> None:
        self._handler = handler
        self._pending: dict[str, PodEvent] = {}
        self._wakeups: dict[str, asyncio.Event] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(max_concurrency)
        self._retry_initial = retry_initial
        self._retry_max = retry_max

    def put(self, event: PodEvent) -> None:
        """Queue `event` for its pod; never blocks the watch stream."""
        uid = event.ref.uid
        self._pending[uid] = event  # the newest state replaces older ones not yet handled
        wakeup = self._wakeups.get(uid)
        if wakeup is not None:
            wakeup.set()
        if uid not in self._tasks:
            self._tasks[uid] = asyncio.create_task(self._work(uid), name=f"pod-{uid}")

    @property
    def busy(self) -> int:
        return len(self._tasks)

    async def idle(self) -> None:
        """Wait until every queued event has been handled (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._pending.clear()

    async def _work(self, uid: str) -> None:
        delay = self._retry_initial
        try:
            while uid in self._pending:
                event = self._pending.pop(uid)
                try:
                    async with self._slots:
                        await self._handle(event)
                    delay = self._retry_initial
                except asyncio.CancelledError:
                    raise
                except Exception as error:
                    # Keep the newer state if one arrived meanwhile; retry this one otherwise.
                    self._pending.setdefault(uid, event)
                    ref = event.ref
                    with bind_work_context(pod=ref.key, workflow_id=pod_workflow_id(ref)):
                        log.warning(
                            "pod event handling failed; retrying",
                            event_type=event.type,
                            error=f"{type(error).__name__}: {error}",
                            retry_in=delay,
                        )
                    wakeup = self._wakeups.setdefault(uid, asyncio.Event())
                    wakeup.clear()
                    # A newer event for this pod cuts the wait short.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wakeup.wait(), timeout=delay)
                    delay = min(delay * 2, self._retry_max)
        finally:
            self._wakeups.pop(uid, None)
            if self._tasks.get(uid) is asyncio.current_task():
                del self._tasks[uid]

    async def _handle(self, event: PodEvent) -> None:
        ref = event.ref
        with bind_work_context(pod=ref.key, workflow_id=pod_workflow_id(ref)):
            await self._handler(event)
