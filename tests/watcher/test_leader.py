"""Two watcher replicas: only the leader acts; the other takes over within one lease duration."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.watcher.conftest import (
    WatcherParts,
    create_pod,
    eventually,
    executions,
    free_port,
    running,
    running_watcher,
)


@pytest.mark.parametrize("how", ["clean-stop", "crash"])
async def test_the_follower_takes_over_within_one_lease_duration(
    how: str, parts: WatcherParts
) -> None:
    settings = parts.settings()
    lease_duration = settings.watcher.leader_election.lease_duration.total_seconds()
    renew = settings.watcher.leader_election.renew_interval.total_seconds()
    # Replicas run in different pods; here on one host, each needs its own kubelet port.
    other = settings.model_copy(
        update={"node": settings.node.model_copy(update={"kubelet_port": free_port()})}
    )
    async with (
        running_watcher(settings, parts.temporal, identity="replica-a") as first,
        running_watcher(other, parts.temporal, identity="replica-b") as second,
    ):
        electors = (first.watcher.elector, second.watcher.elector)
        await eventually(lambda: any(e.is_leader for e in electors))
        leader, follower = (first, second) if first.watcher.elector.is_leader else (second, first)
        assert not follower.watcher.elector.is_leader
        await eventually(leader.watcher.ready)
        assert follower.watcher.watch is None  # a follower does not watch pods

        before = create_pod(parts.core, "before-failover", settings.node.name)
        await eventually(lambda: running(parts.temporal, before))

        stopped_at = time.monotonic()
        if how == "crash":
            await leader.crash()
        else:
            await leader.shutdown()
        await eventually(lambda: follower.watcher.elector.is_leader, within=lease_duration * 3)
        # The lease is judged expired by the local clock since the record last changed, so a
        # crashed leader is replaced after one lease duration plus at most one renew interval.
        assert time.monotonic() - stopped_at <= lease_duration + 2 * renew + 1.0
        after = create_pod(parts.core, "after-failover", settings.node.name)
        await eventually(lambda: running(parts.temporal, after))
        assert len(await executions(parts.temporal, before)) == 1


LEADER_PARTS = {"node-heartbeat", "pod-watch", "reconcile", "interruptions"}


def live_leader_parts() -> list[str]:
    return sorted(
        t.get_name() for t in asyncio.all_tasks() if t.get_name() in LEADER_PARTS and not t.done()
    )


async def test_a_cancelled_watcher_leaves_no_part_running(parts: WatcherParts) -> None:
    """Cancelling the watcher's task (as a crash test does, or a caller that owns it) stops its
    heartbeat, pod watch, resync and interruption consumer with it."""
    settings = parts.settings()
    before = live_leader_parts()
    async with running_watcher(settings, parts.temporal) as watcher:
        await eventually(lambda: len(live_leader_parts()) > len(before))
        await watcher.crash()
        assert live_leader_parts() == before
