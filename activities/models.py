"""Inputs and outputs of every activity: the serialisable contract between workflow and worker.

Each activity takes one model and returns one model, so fields can be added compatibly. These
modules are imported by workflow code through the sandbox, so they import nothing with side
effects (no boto3, no kubernetes).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from orca.ebs_volumes import PodVolume
from orca.instance_state import InstanceState
from orca.launch_spec import LaunchSpec, PodRef
from orca.pod_phase import PodPhase
from orca.selection import CandidateOffering


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


# -- plan ---------------------------------------------------------------------------------------
class PlanLaunchInput(_Model):
    pod: dict[str, Any]
    """The pod manifest as the API server returned it (camelCase JSON)."""
    records_events: bool = False
    """Post the plan's `OfferingsSelected` and undersized-type events (`pod-lifecycle-2`, the
    pod's first plan; activities/lifecycle_events.py)."""


class LaunchPlan(_Model):
    """What will be launched and how: recorded in history, so a replay never re-plans."""

    spec: LaunchSpec
    candidates: tuple[CandidateOffering, ...]
    launch_timeout: timedelta
    capacity_retry_interval: timedelta
    capacity_give_up_after: timedelta
    dry_run: bool = False
    waiting_reason: str | None = None
    """Why there is nothing to try right now (no candidates); the workflow waits and re-plans."""
    volumes: tuple[PodVolume, ...] = ()
    """The EBS volumes of the pod's claims; when any, every candidate is in their zone."""
    warnings: tuple[str, ...] = ()
    """Things the pod asked for that its plan will not give it (an explicitly named type
    smaller than its requests); the workflow posts each as a Warning event."""


# -- launch -------------------------------------------------------------------------------------
class LaunchRequest(_Model):
    """What one launch needs. (Launches recorded before carried the pod manifest as `pod` too;
    nothing read it, and pydantic ignores that extra field, so those inputs still load.)"""

    spec: LaunchSpec
    candidate: CandidateOffering
    client_token: str
    """Idempotency token: the same token never launches a second instance."""
    requested_at: datetime
    """When the workflow asked (the `created-at` tag): fixed across retries, because EC2
    rejects a reused ClientToken whose request differs (IdempotentParameterMismatch)."""
    fallback: bool = False
    """True when an earlier candidate was tried first (counted in `orca_fallbacks_total`)."""
    records_events: bool = False
    """Post `Launched` or `LaunchFailed` about the pod (`pod-lifecycle-2`)."""


class LaunchOutcome(_Model):
    instance_id: str | None = None
    capacity_error: str | None = None
    """An EC2 capacity-class error code: this offering is out, try the next one."""
    message: str = ""
    limit_reached: str | None = None
    """A configured instance limit forbids launching now; the workflow waits and retries."""
    reused_existing: bool = False
    """True when an instance tagged with this pod was already there (a retried launch)."""


class InstanceStatus(_Model):
    instance_id: str
    state: InstanceState
    instance_type: str | None = None
    zone: str | None = None
    private_ip: str | None = None
    public_ip: str | None = None
    state_reason: str | None = None
    launch_time: datetime | None = None
    spot: bool = False


class WaitForInstanceInput(_Model):
    instance_id: str
    timeout: timedelta


class WaitForInstanceOutcome(_Model):
    status: InstanceStatus
    timed_out: bool = False


# -- bootstrap ----------------------------------------------------------------------------------
class StartContainersInput(_Model):
    pod: dict[str, Any]
    spec: LaunchSpec
    instance: InstanceStatus
    agent_timeout: timedelta = timedelta(minutes=10)
    volumes: tuple[PodVolume, ...] = ()
    """The plan's EBS volumes (attached by now): the runner mounts them."""
    records_events: bool = False
    """Post `Started` about the pod once the containers are started (`pod-lifecycle-2`)."""


class StartContainersOutcome(_Model):
    command_id: str


class StopContainersInput(_Model):
    pod: PodRef
    instance_id: str
    grace_seconds: int


# -- monitor ------------------------------------------------------------------------------------
class MonitorEnd(StrEnum):
    FINISHED = "finished"
    """Every container ended as the restart policy says the pod ends."""
    INSTANCE_LOST = "instance-lost"
    """The instance stopped, terminated or vanished underneath the pod."""
    ROUND_OVER = "round-over"
    """The round's time is up with the pod still running: the workflow starts another round."""


class MonitorInput(_Model):
    pod: dict[str, Any]
    """`status_mapping.status_inputs` of the manifest (activities scheduled by older workflow
    code: the whole manifest, which reads the same)."""
    instance_id: str
    round_duration: timedelta
    containers_started_at: datetime | None = None
    restart_base: dict[str, int] = Field(default_factory=dict)
    """Container name → restarts of earlier incarnations (spot recovery), added to the runner's."""
    last_terminated: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Container name → `lastState.terminated` from the last interruption."""
    events_after: datetime | None = None
    """Only container events after this second count (the incarnation's start; the earlier
    instances of the pod reported to the same stream)."""


class MonitorOutcome(_Model):
    end: MonitorEnd
    phase: PodPhase
    reason: str | None = None
    message: str | None = None
    exit_codes: dict[str, int] = Field(default_factory=dict)


# -- terminate ----------------------------------------------------------------------------------
class VolumeAttachmentsInput(_Model):
    """Attach (or detach) the pod's EBS volumes to (from) its instance."""

    pod: PodRef
    instance_id: str
    volumes: tuple[PodVolume, ...]
    poll_interval: timedelta = timedelta(seconds=2)
    """How often the attachment states are read while waiting."""


class VolumeAttachmentsOutcome(_Model):
    volume_ids: tuple[str, ...] = ()
    """The volumes now attached (attach) or detached (detach) by this call or an earlier try."""
    waited_for: tuple[str, ...] = ()
    """Volumes that were attached to another instance first and had to be waited for."""


class TerminateInput(_Model):
    pod: PodRef
    instance_ids: tuple[str, ...] = ()
    """Known instances; every instance tagged with the pod's UID is terminated too."""


class TerminateOutcome(_Model):
    terminated: tuple[str, ...]
    cost: Decimal = Decimal(0)
    """What the pod's instance cost, as the budget ledger accrued it (0 without a ledger)."""


# -- Kubernetes ---------------------------------------------------------------------------------
class PodCondition(_Model):
    type: str
    status: str
    reason: str | None = None
    message: str | None = None


class EventType(StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


class PodEventReport(_Model):
    pod: PodRef
    type: EventType
    reason: str
    message: str


class PodStatusReport(_Model):
    """A partial status write: only the fields set here change; conditions merge by type."""

    pod: PodRef
    phase: PodPhase | None = None
    reason: str | None = None
    message: str | None = None
    conditions: tuple[PodCondition, ...] = ()
    host_ip: str | None = None
    pod_ip: str | None = None
    container_statuses: tuple[dict[str, Any], ...] | None = None
    """Kubernetes-shaped container statuses, written as given."""
    event: PodEventReport | None = None
    """An event recorded right after the status write, in the same activity (`pod-lifecycle-2`)."""


class DeletePodInput(_Model):
    pod: PodRef
