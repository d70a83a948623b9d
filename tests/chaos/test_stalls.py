"""`worker_kill_stalls`: which activities were in flight at a kill, and how long they stalled."""

from __future__ import annotations

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent

from tests.chaos.runner import worker_kill_stalls


def scheduled(event_id: int, name: str, at: float) -> HistoryEvent:
    event = HistoryEvent(event_id=event_id, event_type=EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
    event.activity_task_scheduled_event_attributes.activity_type.name = name
    event.event_time.FromNanoseconds(int(at * 1e9))
    return event


def completed(event_id: int, scheduled_id: int, at: float) -> HistoryEvent:
    event = HistoryEvent(event_id=event_id, event_type=EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
    event.activity_task_completed_event_attributes.scheduled_event_id = scheduled_id
    event.event_time.FromNanoseconds(int(at * 1e9))
    return event


def test_only_activities_open_across_a_kill_count_from_the_kill_to_their_close() -> None:
    history = [
        scheduled(5, "plan_launch", 100.0),
        completed(7, 5, 101.0),  # done before the kill
        scheduled(9, "launch_instance", 104.0),
        completed(11, 9, 117.0),  # in flight at the kill (105): stalled 12 s
        scheduled(13, "wait_until_running", 118.0),
        completed(15, 13, 119.0),  # started after it
    ]
    assert worker_kill_stalls([history], [105.0]) == {"launch_instance": [12.0]}


def test_no_kill_no_stall() -> None:
    assert worker_kill_stalls([[scheduled(5, "plan_launch", 1.0), completed(6, 5, 2.0)]], []) == {}
