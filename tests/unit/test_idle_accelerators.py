"""When accelerators count as idle: the warning, the stop, and what never stops a pod (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orca.launch_spec import PodRef, parse_idle_timeout
from orca.usage_queries import Sample
from orca.watcher.idle_accelerators import (
    IdleVerdict,
    idle_decision,
    idle_span,
    idle_timeout_of,
    warning_event,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def per_minute(values: list[float], newest_age: timedelta = MINUTE) -> Sample:
    """Maximum per one-minute period, newest first."""
    return Sample(
        values=tuple(values),
        timestamps=tuple(NOW - newest_age - i * MINUTE for i in range(len(values))),
    )


def decide(*samples: Sample, timeout: timedelta = 30 * MINUTE) -> IdleVerdict:
    return idle_decision(list(samples), NOW, period=MINUTE, timeout=timeout, threshold=5.0).verdict


def test_idle_for_the_whole_timeout_stops_half_of_it_warns() -> None:
    assert decide(per_minute([1.0] * 31)) is IdleVerdict.STOP
    assert decide(per_minute([1.0] * 16 + [90.0] * 15)) is IdleVerdict.WARN
    assert decide(per_minute([1.0] * 5 + [90.0] * 26)) is IdleVerdict.BUSY


def test_one_busy_period_resets_the_idle_span() -> None:
    values = [1.0] * 31
    values[3] = 40.0
    assert idle_span(per_minute(values), NOW, MINUTE, 5.0) == 3 * MINUTE
    assert decide(per_minute(values)) is IdleVerdict.BUSY


def test_missing_or_late_data_never_stops_a_pod() -> None:
    assert decide() is IdleVerdict.BUSY  # no accelerator figures at all (a CPU pod)
    assert decide(Sample()) is IdleVerdict.BUSY
    assert decide(per_minute([1.0] * 31, newest_age=10 * MINUTE)) is IdleVerdict.BUSY
    gap = Sample(
        values=(1.0,) * 20,
        timestamps=tuple(
            NOW - MINUTE - i * MINUTE - (5 * MINUTE if i >= 10 else timedelta()) for i in range(20)
        ),
    )
    assert idle_span(gap, NOW, MINUTE, 5.0) == 10 * MINUTE, "a 5-minute gap ends the span"


def test_the_busiest_accelerator_kind_decides() -> None:
    assert decide(per_minute([1.0] * 31), per_minute([80.0] * 31)) is IdleVerdict.BUSY


def test_the_timeout_annotation_is_strict() -> None:
    assert parse_idle_timeout({"orca.research/idle-timeout": "30m"}) == 30 * MINUTE
    assert parse_idle_timeout({}) is None
    pod = {"metadata": {"annotations": {"orca.research/idle-timeout": "soon"}}}
    assert idle_timeout_of(pod) is None, "an invalid one was refused at launch already"


def test_the_warning_event_is_one_per_pod() -> None:
    ref = PodRef(namespace="ml", name="train", uid="uid-1")
    first = warning_event(ref, "idle", "node", NOW)
    again = warning_event(ref, "idle", "node", NOW + MINUTE)
    assert first["metadata"]["name"] == again["metadata"]["name"]
    assert (first["type"], first["reason"]) == ("Warning", "AcceleratorsIdle")
