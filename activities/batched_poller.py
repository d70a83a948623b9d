"""One poll round per interval for every resource the worker is waiting on.

EC2's and SSM's Describe calls share per-account token buckets (EC2: about 100 tokens refilled at
20 per second), so 1000 pods each polling their own instance would throttle the whole account.
Every waiting activity in the worker asks `next(resource_id)`; one loop collects the IDs once per
interval, hands all of them to one `describe` call, and gives each waiter its resource's state, or
`missing(id)` when the round did not return it.

How many API calls a round costs is the describe function's business: the EC2 poller lists the
cluster's ORCA instances (one paginated DescribeInstances, 1000 per page, so ceil(N/1000) calls
for N instances; see `orca.activities.ec2_instances.Ec2Instances.describe_cluster`), the SSM agent
poller asks 50 IDs per call. Rounds are counted in `orca_poll_rounds_total{poller}`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Generic, TypeVar

import structlog

from orca.metrics import POLL_ROUNDS, POLL_WAITERS

log = structlog.get_logger(__name__)

T = TypeVar("T")


class BatchedPoller(Generic[T]):
    def __init__(
        self,
        describe: Callable[[Sequence[str]], Mapping[str, T]],
        missing: Callable[[str], T],
        *,
        interval_seconds: float,
        name: str,
    ) -> None:
        self._describe = describe
        self._missing = missing
        self._interval = interval_seconds
        self._name = name
        self._waiters: dict[str, list[asyncio.Future[T]]] = {}
        self._round_waiters: list[asyncio.Future[Mapping[str, T]]] = []
        self._task: asyncio.Task[None] | None = None
        self.rounds = 0
        """Poll rounds completed so far (tests read it; `orca_poll_rounds_total` exports it)."""

    async def next(self, resource_id: str) -> T:
        """The resource's state from the next poll round."""
        self._ensure_running()
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(resource_id, []).append(future)
        return await future

    async def next_round(self) -> Mapping[str, T]:
        """Everything the next poll round's describe call returned (for lookups by something
        other than the resource ID, e.g. a tag)."""
        self._ensure_running()
        future: asyncio.Future[Mapping[str, T]] = asyncio.get_running_loop().create_future()
        self._round_waiters.append(future)
        return await future

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            if self._waiters or self._round_waiters:
                waiters, self._waiters = self._waiters, {}
                round_waiters, self._round_waiters = self._round_waiters, []
                await self._poll(waiters, round_waiters)

    async def _poll(
        self,
        waiters: dict[str, list[asyncio.Future[T]]],
        round_waiters: list[asyncio.Future[Mapping[str, T]]],
    ) -> None:
        POLL_WAITERS.labels(self._name).set(len(waiters))
        try:
            found = await asyncio.to_thread(self._describe, sorted(waiters))
        except Exception as error:
            self._count_round()
            log.warning(
                "batched describe failed; waiters retry", poller=self._name, error=str(error)
            )
            everyone = [f for futures in waiters.values() for f in futures] + round_waiters
            for future in everyone:
                if not future.done():
                    future.set_exception(error)
            return
        self._count_round()
        for round_waiter in round_waiters:
            if not round_waiter.done():
                round_waiter.set_result(found)
        for resource_id, futures in waiters.items():
            state = found[resource_id] if resource_id in found else self._missing(resource_id)
            for future in futures:
                if not future.done():
                    future.set_result(state)

    def _count_round(self) -> None:
        """Counted when the round's calls are done, so that a reader of the metrics sees a
        round's API calls and the round itself together."""
        self.rounds += 1
        POLL_ROUNDS.labels(self._name).inc()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
