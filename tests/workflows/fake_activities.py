"""Small fakes for PodLifecycle's activities: one per activity class the workflow calls.

Each fake implements only the activities of its real class, under the same registered names
(`FakePlanning` → `PlanningActivities`, `FakeInstances` → `InstanceActivities`,
`FakeContainers` → `ContainerActivities`, `FakePodStatus` → `PodStatusActivities`), so a worker
built from the four runs the real workflow code against scripted answers. The fakes are scripted
per test through their fields (which offerings have capacity, how the containers end), record
every input, and can be told the next errors an activity raises (`fail_next`): the AWS-facing
ones raise them through the same `fails_on_aws_errors` boundary as the real activities, so a
botocore `ClientError` reaches the workflow classified exactly as in production.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from orca.activities import lifecycle_events
from orca.activities.aws_failures import fails_on_aws_errors
from orca.activities.models import (
    DeletePodInput,
    InstanceStatus,
    LaunchOutcome,
    LaunchPlan,
    LaunchRequest,
    MonitorEnd,
    MonitorInput,
    MonitorOutcome,
    PlanLaunchInput,
    PodEventReport,
    PodStatusReport,
    StartContainersInput,
    StartContainersOutcome,
    StopContainersInput,
    TerminateInput,
    TerminateOutcome,
    VolumeAttachmentsInput,
    VolumeAttachmentsOutcome,
    WaitForInstanceInput,
    WaitForInstanceOutcome,
)
from orca.ebs_volumes import PodVolume
from orca.failure_types import FailureType
from orca.instance_state import InstanceState
from orca.launch_spec import LaunchSpec, PodRef, SelectionMethod, pod_ref_from_pod
from orca.selection import CandidateOffering
from orca.settings import LaunchType


def candidate(
    instance_type: str, zone: str = "us-west-2a", spot: bool = False
) -> CandidateOffering:
    capacity = LaunchType.SPOT if spot else LaunchType.ON_DEMAND
    return CandidateOffering(
        instance_type=instance_type,
        zone=zone,
        subnet_id=f"subnet-{zone[-1]}",
        capacity_type=capacity,
        hourly_price=Decimal("1.00"),
        max_spot_price=None,
        reason=f"test offering {instance_type} {capacity} in {zone}",
    )


def instance_id_of(launch_number: int) -> str:
    """The ID `FakeInstances` gives its n-th launch (1-based)."""
    return f"i-{launch_number:08x}"


@dataclass(eq=False)
class Gate:
    """A step that, while closed, heartbeats until the activity is cancelled or the gate opens."""

    closed: bool = False
    entered: bool = False
    opened: asyncio.Event = field(default_factory=asyncio.Event)

    async def pass_through(self) -> None:
        self.entered = True
        if not self.closed:
            return
        while not self.opened.is_set():
            activity.heartbeat()
            await asyncio.sleep(0.05)

    def open(self) -> None:
        self.opened.set()


@dataclass(eq=False)
class Scripted:
    """What every fake shares: the attempts of each activity, and the errors it is told to raise."""

    attempts: dict[str, list[int]] = field(default_factory=dict)
    """Activity name → the attempt numbers it was called with, in order."""
    next_errors: dict[str, list[BaseException]] = field(default_factory=dict)
    told: list[PodEventReport] = field(default_factory=list)
    """The pod events this fake's activities post themselves (`records_events`); the harness
    points it at `FakePodStatus.events`, so a test reads every event in one list."""

    def tell(self, reports: Iterable[PodEventReport]) -> None:
        self.told.extend(reports)

    def fail_next(self, activity_name: str, *errors: BaseException) -> None:
        """The next calls of this activity raise these errors, one per call, then it answers."""
        self.next_errors.setdefault(activity_name, []).extend(errors)

    def called(self) -> None:
        """Record the running activity's attempt; raise its next scripted error, if any."""
        info = activity.info()
        self.attempts.setdefault(info.activity_type, []).append(info.attempt)
        pending = self.next_errors.get(info.activity_type)
        if pending:
            raise pending.pop(0)


@dataclass(eq=False)
class FakePlanning(Scripted):
    """`PlanningActivities`: the launch plan, from the scripted candidates and limits."""

    candidates: list[CandidateOffering] = field(
        default_factory=lambda: [candidate("g5.xlarge"), candidate("g6.xlarge")]
    )
    retry_interval: timedelta = timedelta(minutes=2)
    give_up_after: timedelta = timedelta(hours=1)
    max_lifetime: timedelta | None = None
    plan_warnings: tuple[str, ...] = ()
    volumes: tuple[PodVolume, ...] = ()
    restart_policy: str = "Never"
    invalid_spec: str | None = None
    """The message of an invalid-pod-spec failure, instead of a plan."""
    gate: Gate = field(default_factory=Gate)
    plans: list[PlanLaunchInput] = field(default_factory=list)

    def activities(self) -> list[Callable[..., Any]]:
        return [self.plan_launch]

    @activity.defn(name="plan_launch")
    @fails_on_aws_errors()
    async def plan_launch(self, input: PlanLaunchInput) -> LaunchPlan:
        self.plans.append(input)
        self.called()
        await self.gate.pass_through()
        if self.invalid_spec:
            raise ApplicationError(
                self.invalid_spec, type=FailureType.INVALID_POD_SPEC, non_retryable=True
            )
        plan = LaunchPlan(
            spec=LaunchSpec(
                pod=pod_ref_from_pod(input.pod),
                selection=SelectionMethod.EXPLICIT,
                instance_types=tuple(c.instance_type for c in self.candidates),
                budget_namespace="research",
                max_lifetime=self.max_lifetime,
                termination_grace_period_seconds=20,
                restart_policy=self.restart_policy,
            ),
            candidates=tuple(self.candidates),
            launch_timeout=timedelta(minutes=5),
            capacity_retry_interval=self.retry_interval,
            capacity_give_up_after=self.give_up_after,
            warnings=self.plan_warnings,
            volumes=self.volumes,
        )
        if input.records_events:
            pod = plan.spec.pod
            self.tell(lifecycle_events.undersized_instance_types(pod, plan.warnings))
            self.tell([lifecycle_events.offerings_selected(pod, plan.candidates)])
        return plan


@dataclass(eq=False)
class FakeInstances(Scripted):
    """`InstanceActivities`: launches answered from the scripted capacity, instant terminations."""

    no_capacity: set[str] = field(default_factory=set)
    """Instance types that answer InsufficientInstanceCapacity."""
    capacity_returns_after_calls: int | None = None
    never_running: set[str] = field(default_factory=set)
    """Instance types whose instance never runs (its zone `timeout-now` makes the wait time out)."""
    held_by_limit_calls: int = 0
    """The first calls answer that an instance limit holds the launch."""
    instance_cost: Decimal = Decimal(0)
    """What terminate answers the instance cost (the budget ledger's accrual)."""
    launches: list[LaunchRequest] = field(default_factory=list)
    terminated: list[str] = field(default_factory=list)
    started_waits: asyncio.Event = field(default_factory=asyncio.Event)

    def activities(self) -> list[Callable[..., Any]]:
        return [self.launch_instance, self.wait_until_running, self.terminate_instances]

    @activity.defn(name="launch_instance")
    @fails_on_aws_errors()
    async def launch_instance(self, request: LaunchRequest) -> LaunchOutcome:
        self.launches.append(request)
        self.called()
        outcome = self._outcome(request)
        if request.records_events:
            self.tell(lifecycle_events.launch_events(request, outcome))
        return outcome

    def _outcome(self, request: LaunchRequest) -> LaunchOutcome:
        if len(self.launches) <= self.held_by_limit_calls:
            limit = "limits.maxConcurrentInstances (1) reached: 1 ORCA instances are running"
            return LaunchOutcome(limit_reached=limit, message=limit)
        allowed = (
            self.capacity_returns_after_calls is not None
            and len(self.launches) > self.capacity_returns_after_calls
        )
        if request.candidate.instance_type in self.no_capacity and not allowed:
            return LaunchOutcome(
                capacity_error="InsufficientInstanceCapacity", message="no capacity"
            )
        return LaunchOutcome(instance_id=instance_id_of(len(self.launches)))

    @activity.defn(name="wait_until_running")
    @fails_on_aws_errors()
    async def wait_until_running(self, input: WaitForInstanceInput) -> WaitForInstanceOutcome:
        self.started_waits.set()
        self.called()
        launched = next(
            r
            for number, r in enumerate(self.launches, start=1)
            if instance_id_of(number) == input.instance_id
        )
        if launched.candidate.instance_type in self.never_running:
            # A real wait heartbeats until its timeout; here it waits to be cancelled, or
            # reports the timeout once the test says the time is up.
            while True:
                activity.heartbeat()
                await asyncio.sleep(0.05)
                if activity.is_cancelled():
                    raise asyncio.CancelledError
                if launched.candidate.zone == "timeout-now":
                    break
            return WaitForInstanceOutcome(
                status=InstanceStatus(instance_id=input.instance_id, state="pending"),
                timed_out=True,
            )
        return WaitForInstanceOutcome(
            status=InstanceStatus(
                instance_id=input.instance_id,
                state=InstanceState.RUNNING,
                instance_type=launched.candidate.instance_type,
                zone=launched.candidate.zone,
                private_ip="10.0.0.7",
            )
        )

    @activity.defn(name="terminate_instances")
    @fails_on_aws_errors(permanent=False)
    async def terminate_instances(self, input: TerminateInput) -> TerminateOutcome:
        self.called()
        self.terminated.extend(input.instance_ids)
        return TerminateOutcome(terminated=input.instance_ids, cost=self.instance_cost)


@dataclass(eq=False)
class FakeContainers(Scripted):
    """`ContainerActivities`: containers that end as scripted, stops that return at once."""

    exit_code: int | None = 0
    """None: containers run until stopped."""
    monitor_ends_after_rounds: int = 1
    gate: Gate = field(default_factory=Gate)
    """Closed: starting the containers blocks until cancelled."""
    starts: list[StartContainersInput] = field(default_factory=list)
    stops: list[StopContainersInput] = field(default_factory=list)
    monitor_rounds: int = 0
    forever_rounds: set[int] = field(default_factory=set)
    """Monitor calls (1-based) that run until cancelled, whatever `exit_code` says."""
    lost_rounds: set[int] = field(default_factory=set)
    """Monitor calls (1-based) that answer the instance is lost."""
    monitors: list[MonitorInput] = field(default_factory=list)
    started_monitor: asyncio.Event = field(default_factory=asyncio.Event)

    def activities(self) -> list[Callable[..., Any]]:
        return [self.start_containers, self.monitor_pod, self.stop_containers]

    @activity.defn(name="start_containers")
    @fails_on_aws_errors()
    async def start_containers(self, input: StartContainersInput) -> StartContainersOutcome:
        self.starts.append(input)
        self.called()
        await self.gate.pass_through()
        started = StartContainersOutcome(command_id=f"cmd-{input.instance.instance_id}")
        if input.records_events:
            instance_id = input.instance.instance_id
            report = lifecycle_events.containers_started(
                input.spec.pod, instance_id, started.command_id
            )
            self.tell([report])
        return started

    @activity.defn(name="monitor_pod")
    @fails_on_aws_errors()
    async def monitor_pod(self, input: MonitorInput) -> MonitorOutcome:
        self.called()
        self.monitor_rounds += 1
        self.monitors.append(input)
        self.started_monitor.set()
        if self.monitor_rounds in self.lost_rounds:
            return MonitorOutcome(
                end=MonitorEnd.INSTANCE_LOST,
                phase="Failed",
                reason=FailureType.INSTANCE_LOST,
                message=f"{input.instance_id} is terminated",
            )
        if self.monitor_rounds in self.forever_rounds:
            while True:  # runs until the workflow cancels it
                activity.heartbeat()
                await asyncio.sleep(0.05)
        if self.exit_code is None or self.monitor_rounds < self.monitor_ends_after_rounds:
            if self.exit_code is not None:
                return MonitorOutcome(end=MonitorEnd.ROUND_OVER, phase="Running")
            while True:  # runs until the workflow cancels it
                activity.heartbeat()
                await asyncio.sleep(0.05)
        phase = "Succeeded" if self.exit_code == 0 else "Failed"
        return MonitorOutcome(
            end=MonitorEnd.FINISHED,
            phase=phase,
            reason="Completed" if self.exit_code == 0 else "Error",
            exit_codes={"main": self.exit_code},
        )

    @activity.defn(name="stop_containers")
    @fails_on_aws_errors()
    async def stop_containers(self, input: StopContainersInput) -> None:
        self.called()
        self.stops.append(input)


@dataclass(eq=False)
class FakePodStatus(Scripted):
    """`PodStatusActivities`: the pod's status writes, events and final removal, recorded."""

    status_writes_rejected: bool = False
    """Every pod status write fails for good (the API server answers 422)."""
    statuses: list[PodStatusReport] = field(default_factory=list)
    events: list[PodEventReport] = field(default_factory=list)
    deleted: list[PodRef] = field(default_factory=list)
    restart_counts_shown: dict[str, int] = field(default_factory=dict)
    """What `read_restart_counts` answers: the counts the monitor last wrote to the pod."""

    def activities(self) -> list[Callable[..., Any]]:
        return [
            self.report_pod_status,
            self.record_pod_event,
            self.delete_pod_object,
            self.read_restart_counts,
        ]

    @activity.defn(name="report_pod_status")
    async def report_pod_status(self, report: PodStatusReport) -> None:
        self.called()
        if self.status_writes_rejected:
            # As the real activity: a write refused for good still posts the event it carries.
            if report.event is not None:
                self.events.append(report.event)
            raise ApplicationError("422 Invalid", type="KubernetesRejected", non_retryable=True)
        self.statuses.append(report)
        if report.event is not None:
            self.events.append(report.event)

    @activity.defn(name="record_pod_event")
    async def record_pod_event(self, event: PodEventReport) -> None:
        self.called()
        self.events.append(event)

    @activity.defn(name="delete_pod_object")
    async def delete_pod_object(self, input: DeletePodInput) -> None:
        self.called()
        self.deleted.append(input.pod)

    @activity.defn(name="read_restart_counts")
    async def read_restart_counts(self, pod: PodRef) -> dict[str, int]:
        self.called()
        return dict(self.restart_counts_shown)

    def event_reasons(self) -> list[str]:
        return [e.reason for e in self.events]


@dataclass(eq=False)
class FakeVolumes(Scripted):
    """`VolumeAttachmentActivities`: attaches and detaches that succeed at once, each recorded
    with what the other fakes had done by then (to check the order of the steps)."""

    containers: FakeContainers = field(default_factory=FakeContainers)
    instances: FakeInstances = field(default_factory=FakeInstances)
    calls: list[tuple[str, str, int, int, list[str]]] = field(default_factory=list)
    """(activity, instance, container starts so far, container stops so far, instances
    terminated so far)."""

    def activities(self) -> list[Callable[..., Any]]:
        return [self.attach_volumes, self.detach_volumes]

    def _record(self, name: str, request: VolumeAttachmentsInput) -> VolumeAttachmentsOutcome:
        self.calls.append(
            (
                name,
                request.instance_id,
                len(self.containers.starts),
                len(self.containers.stops),
                list(self.instances.terminated),
            )
        )
        self.called()
        return VolumeAttachmentsOutcome(volume_ids=tuple(v.volume_id for v in request.volumes))

    @activity.defn(name="attach_volumes")
    @fails_on_aws_errors()
    async def attach_volumes(self, request: VolumeAttachmentsInput) -> VolumeAttachmentsOutcome:
        return self._record("attach", request)

    @activity.defn(name="detach_volumes")
    @fails_on_aws_errors(permanent=False)
    async def detach_volumes(self, request: VolumeAttachmentsInput) -> VolumeAttachmentsOutcome:
        return self._record("detach", request)


def pod_volume(volume_id: str = "vol-0123456789abcdef0", zone: str = "us-west-2a") -> PodVolume:
    return PodVolume(
        volume_name="data",
        claim_name="data-claim",
        persistent_volume="pvc-1",
        volume_id=volume_id,
        zone=zone,
        device_name="/dev/sdf",
    )
