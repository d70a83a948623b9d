"""`worker_kill_stalls`: which activities were in flight at a kill, and how long they stalled."""

from __future__ import annotations

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent

from tests.chaos.runner import Stall, worker_kill_stalls


def scheduled(event_id: int, name: str, at: float) -> HistoryEvent:
    event = HistoryEvent(event_id=event_id, event_type=EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
    event.activity_task_scheduled_event_attributes.activity_type.name = name
    event.event_time.FromNanoseconds(int(at * 1e9))
    return event


def started(event_id: int, scheduled_id: int, at: float) -> HistoryEvent:
    event = HistoryEvent(event_id=event_id, event_type=EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED)
    event.activity_task_started_event_attributes.scheduled_event_id = scheduled_id
    event.event_time.FromNanoseconds(int(at * 1e9))
    return event


def completed(event_id: int, scheduled_id: int, at: float) -> HistoryEvent:
    event = HistoryEvent(event_id=event_id, event_type=EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
    event.activity_task_completed_event_attributes.scheduled_event_id = scheduled_id
    event.event_time.FromNanoseconds(int(at * 1e9))
    return event


def test_only_activities_open_across_a_kill_count_from_the_kill() -> None:
    history = [
        scheduled(5, "plan_launch", 100.0),
        started(6, 5, 100.0),
        completed(7, 5, 101.0),  # done before the kill at 105
        scheduled(9, "launch_instance", 104.0),
        started(10, 9, 115.0),  # its retry started 10 s after the kill (the last attempt's start)
        completed(11, 9, 117.0),
        scheduled(12, "start_containers", 104.5),
        started(13, 12, 104.6),  # the attempt that was running at the kill finished anyway
        completed(14, 12, 106.0),
        scheduled(15, "wait_until_running", 118.0),
        completed(16, 15, 119.0),  # scheduled after it
    ]
    assert worker_kill_stalls([history], [105.0]) == [
        Stall("launch_instance", resumed_s=10.0, closed_s=12.0),
        Stall("start_containers", resumed_s=1.0, closed_s=1.0),
    ]


def test_no_kill_no_stall() -> None:
    assert worker_kill_stalls([[scheduled(5, "plan_launch", 1.0), completed(6, 5, 2.0)]], []) == []
