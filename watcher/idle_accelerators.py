"""Idle accelerators: pods whose GPUs or Neuron cores stay unused are warned, then stopped.

A pod annotated `orca.research/idle-timeout: 30m` is checked every `node.statsInterval` with the
other running annotated pods in one batched read (`orca.usage_reader`): the Maximum GPU and
Neuron core utilization per period over the last timeout. The check keeps no state of its own:

- a pod with complete data (a datapoint in every period, the newest at most
  `LATE_PERIODS` old) whose utilization stayed below `limits.idleUtilizationPercent` for half its
  timeout gets one Warning event `AcceleratorsIdle` (its name derives from the pod's UID, so a
  second one meets 409 AlreadyExists);
- one idle for its whole timeout is signalled `accelerators_idle`, and its workflow stops it with
  reason `Idle` (`workflows/pod_lifecycle.py`).

A pod without accelerator figures (no GPU, no Neuron device, or an instance that publishes
nothing) is never idle: missing data never stops anything.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from orca.launch_spec import InvalidPodSpec, PodRef, parse_idle_timeout
from orca.logging import get_logger
from orca.pod_api import PodApi
from orca.units import format_duration
from orca.usage_metrics import ACCELERATOR_UTILIZATION
from orca.usage_queries import PodKey, Sample, Statistic
from orca.usage_reader import UsageReader
from orca.watcher.pod_events import once_per_pod_warning
from orca.watcher.pod_stats import running_pod_keys

log = get_logger(__name__)

LATE_PERIODS = 3
"""How many periods the newest datapoint may lag (the agent publishes once a minute)."""
WARNING_REASON = "AcceleratorsIdle"


class IdleVerdict(StrEnum):
    BUSY = "busy"
    """Used, or not enough data to say otherwise."""
    WARN = "warn"
    STOP = "stop"


class IdleDecision(BaseModel):
    model_config = ConfigDict(frozen=True)

    verdict: IdleVerdict
    idle_for: timedelta = timedelta()


def idle_span(sample: Sample, now: datetime, period: timedelta, threshold: float) -> timedelta:
    """How long, back from now, every period had a datapoint below `threshold` (zero when the
    newest datapoint is late, at or above it, or missing)."""
    points = sorted(zip(sample.timestamps, sample.values, strict=True), reverse=True)
    if not points or now - points[0][0] > LATE_PERIODS * period:
        return timedelta()
    oldest: datetime | None = None
    previous = points[0][0]
    for at, value in points:
        if value >= threshold or previous - at > 2 * period:
            break
        oldest, previous = at, at
    return timedelta() if oldest is None else now - oldest


def idle_decision(
    samples: Sequence[Sample],
    now: datetime,
    *,
    period: timedelta,
    timeout: timedelta,
    threshold: float,
) -> IdleDecision:
    """The verdict for one pod from its accelerator metrics' Maximum per period (pure): the
    shortest idle span of its accelerators decides."""
    spans = [idle_span(s, now, period, threshold) for s in samples if s.values]
    if not spans:
        return IdleDecision(verdict=IdleVerdict.BUSY)
    idle_for = min(spans)
    if idle_for >= timeout:
        return IdleDecision(verdict=IdleVerdict.STOP, idle_for=idle_for)
    if idle_for >= timeout / 2:
        return IdleDecision(verdict=IdleVerdict.WARN, idle_for=idle_for)
    return IdleDecision(verdict=IdleVerdict.BUSY, idle_for=idle_for)


def idle_timeout_of(pod: dict[str, Any]) -> timedelta | None:
    """The pod's idle timeout; None without one or with an invalid one (which the launch has
    already refused with InvalidPodSpec)."""
    try:
        return parse_idle_timeout((pod.get("metadata") or {}).get("annotations") or {})
    except InvalidPodSpec:
        return None


def warning_event(ref: PodRef, message: str, node_name: str, now: datetime) -> dict[str, Any]:
    return once_per_pod_warning(ref, WARNING_REASON, message, node_name, now)


class IdleAccelerators:
    def __init__(
        self,
        reader: UsageReader,
        pods: Callable[[], list[dict[str, Any]]],
        pod_api: PodApi,
        signal: Callable[[PodRef, str], Awaitable[bool]],
        *,
        node_name: str,
        interval: timedelta,
        threshold: float,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """`signal(ref, message)` signals `accelerators_idle` to the pod's workflow."""
        self.reader = reader
        self.pods = pods
        self.pod_api = pod_api
        self.signal = signal
        self.node_name = node_name
        self.interval = interval
        self.threshold = threshold
        self._now = now
        self._signalled: set[str] = set()

    async def run(self) -> None:
        while True:
            try:
                await self.check()
            except Exception as error:
                log.warning("idle accelerator check failed", error=str(error))
            await asyncio.sleep(self.interval.total_seconds())

    async def check(self) -> dict[str, IdleVerdict]:
        """One round for every running pod with an idle timeout; the verdict per pod UID."""
        pods = self.pods()
        timeouts: dict[str, timedelta] = {}
        for pod in pods:
            timeout = idle_timeout_of(pod)
            if timeout is not None:
                timeouts[str(pod["metadata"]["uid"])] = timeout
        keys = [key for key in running_pod_keys(pods) if key.uid in timeouts]
        if not keys:
            return {}
        now = self._now()
        period = self.interval
        longest = max(timeouts[key.uid] for key in keys)
        figures = await asyncio.to_thread(
            self.reader.read,
            keys,
            list(ACCELERATOR_UTILIZATION),
            statistic=Statistic.MAXIMUM,
            period_seconds=int(period.total_seconds()),
            start=now - longest - LATE_PERIODS * period,
            end=now,
        )
        verdicts = {}
        for key in keys:
            timeout = timeouts[key.uid]
            decision = idle_decision(
                list(figures.get(key, {}).values()),
                now,
                period=period,
                timeout=timeout,
                threshold=self.threshold,
            )
            verdicts[key.uid] = decision.verdict
            await self._act(key, decision, timeout, now)
        return verdicts

    async def _act(
        self, key: PodKey, decision: IdleDecision, idle_timeout: timedelta, now: datetime
    ) -> None:
        ref = PodRef(namespace=key.namespace, name=key.name, uid=key.uid)
        below = f"below {self.threshold:g}% utilization"
        if decision.verdict is IdleVerdict.WARN:
            message = (
                f"The pod's accelerators have been {below} for "
                f"{format_duration(_whole(decision.idle_for))}; it is stopped (reason Idle) "
                "once they stay idle for its orca.research/idle-timeout "
                f"{format_duration(idle_timeout)}."
            )
            event = warning_event(ref, message, self.node_name, now)
            if await asyncio.to_thread(self.pod_api.post_event, key.namespace, event):
                log.info("idle accelerators warned", pod=ref.key)
        elif decision.verdict is IdleVerdict.STOP and key.uid not in self._signalled:
            message = (
                f"The pod's accelerators stayed {below} for its orca.research/idle-timeout "
                f"{format_duration(idle_timeout)}; it was stopped."
            )
            if await self.signal(ref, message):
                self._signalled.add(key.uid)
            log.info("idle accelerators: pod stopped", pod=ref.key)


def _whole(span: timedelta) -> timedelta:
    return timedelta(seconds=int(span.total_seconds()))
