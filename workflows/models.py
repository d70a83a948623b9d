"""Workflow input, carried state, signals and query results of `PodLifecycle`.

Imported through the workflow sandbox: pure pydantic models, no side effects.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from orca.activities.models import InstanceStatus, LaunchPlan
from orca.launch_spec import PodRef

ACCELERATORS_IDLE_SIGNAL = "accelerators_idle"
"""The watcher to a running pod's workflow: its accelerators stayed idle for its idle-timeout."""


class Stage(StrEnum):
    """Where a pod's lifecycle is; also the `OrcaPhase` search attribute's vocabulary."""

    PLANNING = "Planning"
    LAUNCHING = "Launching"
    WAITING_FOR_CAPACITY = "WaitingForCapacity"
    WAITING_FOR_BUDGET = "WaitingForBudget"
    STARTING = "Starting"
    RUNNING = "Running"
    STOPPING = "Stopping"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    DELETED = "Deleted"


class InterruptionKind(StrEnum):
    """The closed set of EC2 events the watcher turns into signals."""

    SPOT_INTERRUPTION = "spot-interruption"
    REBALANCE_RECOMMENDATION = "rebalance-recommendation"
    SCHEDULED_CHANGE = "scheduled-change"
    STATE_CHANGE = "state-change"


class PodDeleted(BaseModel):
    """Signal: the pod has a deletionTimestamp; stop within the grace period, then release it."""

    grace_period_seconds: int = 30


class InterruptionNotice(BaseModel):
    """Signal: EC2 announced the instance's end (or a state change)."""

    kind: InterruptionKind
    instance_id: str
    time: datetime | None = None
    state: str | None = None
    """For state-change notices: the new instance state."""
    detail: str = ""


class LaunchAttempt(BaseModel):
    """One try of one offering, as `orca status POD` and the UI's history show it."""

    instance_type: str
    zone: str
    capacity_type: str
    outcome: str
    """`launched i-…`, `InsufficientInstanceCapacity: …`, `timed out`, `interrupted`…"""
    at: datetime


class LifecycleState(BaseModel):
    """Everything the workflow knows; carried across continue-as-new."""

    pod: PodRef
    manifest: dict[str, Any]
    stage: Stage = Stage.PLANNING
    plan: LaunchPlan | None = None
    attempts: list[LaunchAttempt] = Field(default_factory=list)
    instance: InstanceStatus | None = None
    command_id: str | None = None
    started_running_at: datetime | None = None
    lifetime_started_at: datetime | None = None
    """When the pod's containers first started: `orca.research/max-lifetime` counts from it,
    across incarnations (`relaunch-continues-pod`; before it, from each incarnation's start)."""
    deletion: PodDeleted | None = None
    gone: bool = False
    interruption: InterruptionNotice | None = None
    limit_reason: str | None = None
    """Set while a configured instance limit holds the launch."""
    budget_stop: str | None = None
    """Set when the budget ledger stops the running pod (`limits.enforcement: stop`)."""
    idle_stop: str | None = None
    """Set when the watcher found the pod's accelerators idle for its `idle-timeout`."""
    final_reason: str | None = None
    final_message: str | None = None
    monitor_rounds: int = 0
    volumes_attached_to: str | None = None
    """The instance the plan's EBS volumes were (being) attached to, until they are detached
    (`pod-volumes` patch)."""
    incarnation: int = 1
    """Which instance of the pod this is: 1, then one more per spot recovery (`spot-recovery`)."""
    restart_base: dict[str, int] = Field(default_factory=dict)
    """Container name → restarts before this incarnation; the runner on the new instance counts
    from 0, the status shows base + its count."""
    last_terminated: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Container name → the `lastState.terminated` the last interruption left, shown until a
    newer termination replaces it."""
    incarnation_started_at: datetime | None = None
    """When the current incarnation began (the last one's instance was gone by then): its
    containers' status comes only from events after it, not from the earlier instance's, which
    share the pod's status stream."""
    interrupted_offerings: list[str] = Field(default_factory=list)
    """`type/zone/capacity` of the offerings whose instance was interrupted or lost, in order:
    each relaunch skips the last one."""


class PodLifecycleInput(BaseModel):
    pod: dict[str, Any]
    """The pod manifest when the watcher first saw it bound to the virtual node."""
    carried: LifecycleState | None = None
    """Set only by continue-as-new."""


class PodLifecycleResult(BaseModel):
    stage: Stage
    instance_id: str | None = None
    reason: str | None = None
    message: str | None = None


class LifecycleView(BaseModel):
    """Query result for `orca status`."""

    pod: PodRef
    stage: Stage
    instance: InstanceStatus | None
    attempts: list[LaunchAttempt]
    candidates: list[str]
    reason: str | None = None
    message: str | None = None
