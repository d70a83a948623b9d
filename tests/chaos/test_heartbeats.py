"""`orca.activities.heartbeats.heartbeating`: beats while the activity works, at a third of its
heartbeat timeout, and stops when the work ends; nothing without a heartbeat timeout. (The chaos
run shows the effect across processes: a launch in flight at a worker kill is retried after the
heartbeat timeout, not the start-to-close one.)"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import timedelta

from temporalio.testing import ActivityEnvironment

from orca.activities.heartbeats import heartbeating


async def slow_work(seconds: float) -> None:
    with heartbeating():
        await asyncio.to_thread(time.sleep, seconds)  # a blocking call, as boto3 makes


async def test_beats_during_a_blocking_call_and_stops_after_it() -> None:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, heartbeat_timeout=timedelta(seconds=0.3))
    beats: list[tuple[object, ...]] = []
    env.on_heartbeat = lambda *details: beats.append(details)

    await env.run(slow_work, 0.55)
    during = len(beats)
    await asyncio.sleep(0.3)

    assert during >= 2  # the first at once, then every 0.1 s while the call blocks
    assert len(beats) == during


async def test_no_heartbeat_timeout_no_beats() -> None:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, heartbeat_timeout=None)
    beats: list[tuple[object, ...]] = []
    env.on_heartbeat = lambda *details: beats.append(details)

    await env.run(slow_work, 0.2)

    assert beats == []
