"""Heartbeats for activities that do short work in several steps (plan, launch, terminate).

Their calls usually take well under a second, but a throttled or slow AWS can stretch one to
minutes, so a start-to-close timeout short enough to notice a dead worker quickly would also cut
off a healthy launch. Instead they heartbeat while they work and the workflow gives them a short
heartbeat timeout: a worker killed mid-activity is noticed within that timeout (not the
two-minute start-to-close one), and the retry runs on another worker.

`heartbeating()` beats from a background task at a third of the activity's heartbeat timeout
(the SDK batches beats anyway), so a blocking call in a thread does not starve it; without a
heartbeat timeout it does nothing. It is a plain context manager (the task is created on the
running loop and cancelled on exit), so it joins an activity's existing `with` line.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from temporalio import activity


@contextlib.contextmanager
def heartbeating() -> Iterator[None]:
    timeout = activity.info().heartbeat_timeout
    if not timeout:
        yield
        return
    period = max(timeout.total_seconds() / 3, 0.1)

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(period)

    task = asyncio.get_running_loop().create_task(beat())
    try:
        yield
    finally:
        task.cancel()
