"""EC2 instance states: one enum, and the two questions ORCA asks of a state.

- *live*: the instance exists and is not on its way out (`pending`, `running`, `stopping`,
  `stopped`; a stopped instance keeps its volumes and can be started again), so it is the pod's
  to end: the cluster listing, launch reuse and the orphan sweep count these.
- *lost*: the instance can no longer run the pod (stopping, stopped, shutting down, terminated,
  or unknown to DescribeInstances): the workflow fails the pod with `InstanceLost`.

`ENDING_STATES` are the lost states EC2 reports in its state-change events (the EventBridge rule
in `deploy/` forwards exactly these). The values are EC2's own words (recorded in histories).
"""

from __future__ import annotations

from enum import StrEnum


class InstanceState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SHUTTING_DOWN = "shutting-down"
    TERMINATED = "terminated"
    STOPPING = "stopping"
    STOPPED = "stopped"
    MISSING = "missing"
    """DescribeInstances no longer knows the instance."""


LIVE_STATES = frozenset(
    {InstanceState.PENDING, InstanceState.RUNNING, InstanceState.STOPPING, InstanceState.STOPPED}
)
"""States of an instance that exists and is not on its way out."""
LOST_STATES = frozenset(
    {
        InstanceState.STOPPING,
        InstanceState.STOPPED,
        InstanceState.SHUTTING_DOWN,
        InstanceState.TERMINATED,
        InstanceState.MISSING,
    }
)
"""States in which an instance can no longer run the pod."""
ENDING_STATES = LOST_STATES - {InstanceState.MISSING}
"""The lost states EC2 itself reports (state-change events)."""


def is_live(state: str | None) -> bool:
    """Whether an instance in `state` (an `InstanceState`, or EC2's word) exists, not ending."""
    return state in LIVE_STATES


def is_lost(state: str | None) -> bool:
    """Whether an instance in `state` can no longer run the pod."""
    return state in LOST_STATES
