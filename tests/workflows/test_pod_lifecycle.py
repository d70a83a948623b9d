"""PodLifecycle on the time-skipping test server, every activity replaced by name.

The fakes are scripted per test (which offerings have capacity, how long an instance takes,
how the containers end) and record every call, so each test asserts what the workflow *did*:
which offerings it tried, what it terminated, what it wrote to the pod.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

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
    WaitForInstanceInput,
    WaitForInstanceOutcome,
)
from orca.failure_types import FailureType
from orca.instance_state import InstanceState
from orca.launch_spec import LaunchSpec, PodRef, SelectionMethod
from orca.selection import CandidateOffering
from orca.settings import LaunchType
from orca.workflow_ids import pod_workflow_id
from orca.workflows.models import (
    InterruptionKind,
    InterruptionNotice,
    LifecycleView,
    PodDeleted,
    PodLifecycleInput,
    PodLifecycleResult,
    Stage,
)
from orca.workflows.pod_lifecycle import MAX_MONITOR_ROUNDS_PER_RUN, PodLifecycle


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


@dataclass
class FakeCloud:
    """Scripted stand-in for EC2, SSM and the Kubernetes API, as activities registered by name."""

    pod: PodRef
    candidates: list[CandidateOffering]
    no_capacity: set[str] = field(default_factory=set)
    """Instance types that answer InsufficientInstanceCapacity."""
    capacity_returns_after_calls: int | None = None
    never_running: set[str] = field(default_factory=set)
    retry_interval: timedelta = timedelta(minutes=2)
    give_up_after: timedelta = timedelta(hours=1)
    instance_cost: Decimal = Decimal(0)
    """What terminate answers the instance cost (the budget ledger's accrual)."""
    slow_steps: set[str] = field(default_factory=set)
    """Steps ("plan", "start") that block until cancelled or until `release` is set."""
    release: asyncio.Event = field(default_factory=asyncio.Event)
    entered: set[str] = field(default_factory=set)
    held_by_limit_calls: int = 0
    """The first calls answer that an instance limit holds the launch."""
    invalid_spec: str | None = None
    exit_code: int | None = 0
    """None: containers run until stopped."""
    monitor_ends_after_rounds: int = 1
    max_lifetime: timedelta | None = None
    spot: bool = False
    plan_warnings: tuple[str, ...] = ()
    status_writes_rejected: bool = False
    """Every pod status write fails for good (the API server answers 422)."""
    launches: list[LaunchRequest] = field(default_factory=list)
    terminated: list[str] = field(default_factory=list)
    statuses: list[PodStatusReport] = field(default_factory=list)
    events: list[PodEventReport] = field(default_factory=list)
    stops: list[StopContainersInput] = field(default_factory=list)
    deleted: list[PodRef] = field(default_factory=list)
    monitor_rounds: int = 0
    started_waits: asyncio.Event = field(default_factory=asyncio.Event)
    started_monitor: asyncio.Event = field(default_factory=asyncio.Event)

    def activities(self) -> list[Any]:
        @activity.defn(name="plan_launch")
        async def plan_launch(input: PlanLaunchInput) -> LaunchPlan:
            await self.maybe_block("plan")
            if self.invalid_spec:
                raise ApplicationError(
                    self.invalid_spec, type=FailureType.INVALID_POD_SPEC, non_retryable=True
                )
            return LaunchPlan(
                spec=LaunchSpec(
                    pod=self.pod,
                    selection=SelectionMethod.EXPLICIT,
                    instance_types=tuple(c.instance_type for c in self.candidates),
                    budget_namespace="research",
                    max_lifetime=self.max_lifetime,
                    termination_grace_period_seconds=20,
                    restart_policy="Never",
                ),
                candidates=tuple(self.candidates),
                launch_timeout=timedelta(minutes=5),
                capacity_retry_interval=self.retry_interval,
                capacity_give_up_after=self.give_up_after,
                warnings=self.plan_warnings,
            )

        @activity.defn(name="launch_instance")
        async def launch_instance(request: LaunchRequest) -> LaunchOutcome:
            self.launches.append(request)
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
            return LaunchOutcome(instance_id=f"i-{len(self.launches):08x}")

        @activity.defn(name="wait_until_running")
        async def wait_until_running(input: WaitForInstanceInput) -> WaitForInstanceOutcome:
            self.started_waits.set()
            launched = next(
                r for i, r in enumerate(self.launches) if f"i-{i + 1:08x}" == input.instance_id
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

        @activity.defn(name="start_containers")
        async def start_containers(input: StartContainersInput) -> StartContainersOutcome:
            await self.maybe_block("start")
            return StartContainersOutcome(command_id=f"cmd-{input.instance.instance_id}")

        @activity.defn(name="monitor_pod")
        async def monitor_pod(input: MonitorInput) -> MonitorOutcome:
            self.monitor_rounds += 1
            self.started_monitor.set()
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
        async def stop_containers(input: StopContainersInput) -> None:
            self.stops.append(input)

        @activity.defn(name="terminate_instances")
        async def terminate_instances(input: TerminateInput) -> TerminateOutcome:
            self.terminated.extend(input.instance_ids)
            return TerminateOutcome(terminated=input.instance_ids, cost=self.instance_cost)

        @activity.defn(name="report_pod_status")
        async def report_pod_status(report: PodStatusReport) -> None:
            if self.status_writes_rejected:
                raise ApplicationError("422 Invalid", type="KubernetesRejected", non_retryable=True)
            self.statuses.append(report)

        @activity.defn(name="record_pod_event")
        async def record_pod_event(event: PodEventReport) -> None:
            self.events.append(event)

        @activity.defn(name="delete_pod_object")
        async def delete_pod_object(input: DeletePodInput) -> None:
            self.deleted.append(input.pod)

        return [
            plan_launch,
            launch_instance,
            wait_until_running,
            start_containers,
            monitor_pod,
            stop_containers,
            terminate_instances,
            report_pod_status,
            record_pod_event,
            delete_pod_object,
        ]

    async def maybe_block(self, step: str) -> None:
        self.entered.add(step)
        if step not in self.slow_steps:
            return
        while not self.release.is_set():
            activity.heartbeat()
            await asyncio.sleep(0.05)

    def event_reasons(self) -> list[str]:
        return [e.reason for e in self.events]


def new_pod() -> tuple[PodRef, dict[str, Any]]:
    pod = PodRef(namespace="research", name=f"job-{uuid.uuid4().hex[:6]}", uid=str(uuid.uuid4()))
    manifest = {
        "metadata": {"namespace": pod.namespace, "name": pod.name, "uid": pod.uid},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
    }
    return pod, manifest


class Harness:
    def __init__(self, env: WorkflowEnvironment, cloud: FakeCloud, manifest: dict[str, Any]):
        self.env = env
        self.cloud = cloud
        self.manifest = manifest
        self.task_queue = f"tq-{uuid.uuid4()}"

    @property
    def client(self) -> Client:
        return self.env.client

    def worker(self) -> Worker:
        return Worker(
            self.client,
            task_queue=self.task_queue,
            workflows=[PodLifecycle],
            activities=self.cloud.activities(),
        )

    async def start(self) -> WorkflowHandle[Any, PodLifecycleResult]:
        return await self.client.start_workflow(
            PodLifecycle.run,
            PodLifecycleInput(pod=self.manifest),
            id=pod_workflow_id(self.cloud.pod),
            task_queue=self.task_queue,
        )


def harness(env: WorkflowEnvironment, **script: Any) -> Harness:
    pod, manifest = new_pod()
    candidates = script.pop("candidates", None) or [candidate("g5.xlarge"), candidate("g6.xlarge")]
    return Harness(env, FakeCloud(pod=pod, candidates=candidates, **script), manifest)


async def wait_for(predicate: Any, what: str, attempts: int = 400) -> None:
    """Poll a condition in real time (the test server skips only workflow time)."""
    for _ in range(attempts):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_happy_path_launches_first_candidate_and_succeeds(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    h = harness(time_skipping_env)
    async with h.worker():
        handle = await h.start()
        result = await handle.result()
    assert result.stage is Stage.SUCCEEDED
    assert [r.candidate.instance_type for r in h.cloud.launches] == ["g5.xlarge"]
    assert h.cloud.terminated == ["i-00000001"]
    assert "OfferingsSelected" in h.cloud.event_reasons()
    assert "ContainersFinished" in h.cloud.event_reasons()
    assert not h.cloud.deleted  # a finished pod stays in Kubernetes until the user deletes it
    # Pod status writes and events are local activities: a marker each, nothing scheduled.
    history = await handle.fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    markers = [
        e.marker_recorded_event_attributes.marker_name
        for e in history.events
        if e.HasField("marker_recorded_event_attributes")
    ]
    assert "plan_launch" in scheduled
    assert not {"report_pod_status", "record_pod_event"} & set(scheduled)
    assert markers.count("core_local_activity") == len(h.cloud.statuses) + len(h.cloud.events)


async def test_capacity_error_falls_back_to_next_offering(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    h = harness(time_skipping_env, no_capacity={"g5.xlarge"})
    async with h.worker():
        handle = await h.start()
        result = await handle.result()
        view = await handle.query(PodLifecycle.describe)
    assert result.stage is Stage.SUCCEEDED
    assert [r.candidate.instance_type for r in h.cloud.launches] == ["g5.xlarge", "g6.xlarge"]
    assert h.cloud.launches[0].client_token != h.cloud.launches[1].client_token
    assert isinstance(view, LifecycleView)
    assert view.attempts[0].outcome.startswith("InsufficientInstanceCapacity")
    assert view.attempts[1].outcome == "launched i-00000002"
    assert "LaunchFailed" in h.cloud.event_reasons()


async def test_all_capacity_exhausted_waits_pending_then_retries(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    h = harness(
        time_skipping_env, no_capacity={"g5.xlarge", "g6.xlarge"}, capacity_returns_after_calls=4
    )
    async with h.worker():
        handle = await h.start()
        result = await handle.result()
    assert result.stage is Stage.SUCCEEDED
    pending = [s for s in h.cloud.statuses if s.phase == "Pending"]
    assert pending
    assert pending[0].reason == FailureType.INSUFFICIENT_CAPACITY
    assert len(h.cloud.launches) == 5  # two rounds of two, then the fifth succeeds
    assert FailureType.INSUFFICIENT_CAPACITY in h.cloud.event_reasons()


async def test_capacity_never_returns_fails_with_insufficient_capacity(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    h = harness(time_skipping_env, no_capacity={"g5.xlarge", "g6.xlarge"})
    async with h.worker():
        handle = await h.start()
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == FailureType.INSUFFICIENT_CAPACITY
    assert h.cloud.statuses[-1].phase == "Failed"
    assert not h.cloud.terminated  # nothing was ever launched


async def test_invalid_pod_spec_launches_nothing(time_skipping_env: WorkflowEnvironment) -> None:
    message = "orca.research/launch-type: 'spotty' is not a launch type; allowed: on-demand, spot"
    h = harness(time_skipping_env, invalid_spec=message)
    async with h.worker():
        handle = await h.start()
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
    assert isinstance(failure.value.cause, ApplicationError)
    assert failure.value.cause.type == FailureType.INVALID_POD_SPEC
    assert not h.cloud.launches
    assert not h.cloud.terminated
    failed = h.cloud.statuses[-1]
    assert failed.phase == "Failed"
    assert failed.conditions[0].reason == FailureType.INVALID_POD_SPEC
    assert failed.conditions[0].message == message
    assert any(e.message == message and e.type == "Warning" for e in h.cloud.events)


async def test_launch_timeout_terminates_and_tries_next(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    first = candidate("p5.48xlarge", zone="timeout-now")
    h = harness(
        time_skipping_env,
        candidates=[first, candidate("g6.xlarge")],
        never_running={"p5.48xlarge"},
    )
    async with h.worker():
        handle = await h.start()
        result = await handle.result()
    assert result.stage is Stage.SUCCEEDED
    assert h.cloud.terminated[0] == "i-00000001"  # the instance that never ran
    assert [r.candidate.instance_type for r in h.cloud.launches] == ["p5.48xlarge", "g6.xlarge"]
    assert "LaunchTimeout" in h.cloud.event_reasons()


async def test_nonzero_exit_fails_the_pod(time_skipping_env: WorkflowEnvironment) -> None:
    h = harness(time_skipping_env, exit_code=3)
    async with h.worker():
        handle = await h.start()
        result = await handle.result()
    assert result.stage is Stage.FAILED
    assert result.message == "main exited 3"
    assert h.cloud.terminated == ["i-00000001"]


async def test_deletion_while_waiting_for_the_instance(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    h = harness(
        time_skipping_env, candidates=[candidate("p5.48xlarge")], never_running={"p5.48xlarge"}
    )
    async with h.worker():
        handle = await h.start()
        await wait_for(h.cloud.started_waits.is_set, "the wait to start")
        await handle.signal(PodLifecycle.pod_deleted, PodDeleted(grace_period_seconds=5))
        result = await handle.result()
    assert result.stage is Stage.DELETED
    assert h.cloud.terminated == ["i-00000001"]
    assert h.cloud.deleted == [h.cloud.pod]
    assert not h.cloud.stops  # no containers were started


async def test_deletion_while_waiting_for_capacity(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    h = harness(time_skipping_env, no_capacity={"g5.xlarge", "g6.xlarge"})
    async with h.worker():
        handle = await h.start()
        await wait_for(
            lambda: any(s.phase == "Pending" for s in h.cloud.statuses), "the pod to wait"
        )
        await handle.signal(PodLifecycle.pod_deleted, PodDeleted(grace_period_seconds=30))
        result = await handle.result()
    assert result.stage is Stage.DELETED
    assert h.cloud.deleted == [h.cloud.pod]


async def test_deletion_while_running_stops_within_grace(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    h = harness(time_skipping_env, exit_code=None)
    async with h.worker():
        handle = await h.start()
        await wait_for(h.cloud.started_monitor.is_set, "monitoring to start")
        await handle.signal(PodLifecycle.pod_deleted, PodDeleted(grace_period_seconds=7))
        result = await handle.result()
    assert result.stage is Stage.DELETED
    assert [s.grace_seconds for s in h.cloud.stops] == [7]
    assert h.cloud.terminated == ["i-00000001"]
    assert h.cloud.deleted == [h.cloud.pod]


async def test_pod_gone_while_running_terminates_without_status_writes(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    h = harness(time_skipping_env, exit_code=None)
    async with h.worker():
        handle = await h.start()
        await wait_for(h.cloud.started_monitor.is_set, "monitoring to start")
        writes_before = len(h.cloud.statuses)
        await handle.signal(PodLifecycle.pod_gone)
        result = await handle.result()
    assert result.stage is Stage.DELETED
    assert h.cloud.terminated == ["i-00000001"]
    assert not h.cloud.deleted
    assert len(h.cloud.statuses) == writes_before


async def test_spot_interruption_while_running_evicts(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    h = harness(time_skipping_env, exit_code=None, candidates=[candidate("g5.xlarge", spot=True)])
    async with h.worker():
        handle = await h.start()
        await wait_for(h.cloud.started_monitor.is_set, "monitoring to start")
        notice = InterruptionNotice(
            kind=InterruptionKind.SPOT_INTERRUPTION, instance_id="i-00000001"
        )
        await handle.signal(PodLifecycle.interruption, notice)
        result = await handle.result()
    assert result.stage is Stage.FAILED
    assert result.reason == "SpotInterrupted"
    disruption = [c for s in h.cloud.statuses for c in s.conditions if c.type == "DisruptionTarget"]
    assert disruption
    assert disruption[0].status == "True"
    assert h.cloud.stops[0].grace_seconds == 20  # the pod's terminationGracePeriodSeconds
    assert h.cloud.statuses[-1].phase == "Failed"
    assert h.cloud.terminated == ["i-00000001"]
    assert "Evicting" in h.cloud.event_reasons()


async def test_interruption_for_another_instance_is_ignored(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    h = harness(time_skipping_env, exit_code=None)
    async with h.worker():
        handle = await h.start()
        await wait_for(h.cloud.started_monitor.is_set, "monitoring to start")
        stray = InterruptionNotice(kind=InterruptionKind.SPOT_INTERRUPTION, instance_id="i-other")
        await handle.signal(PodLifecycle.interruption, stray)
        await handle.signal(PodLifecycle.pod_deleted, PodDeleted(grace_period_seconds=1))
        result = await handle.result()
    assert result.stage is Stage.DELETED
    assert "Evicting" not in h.cloud.event_reasons()


async def test_spot_interruption_during_launch_moves_to_next_offering(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    h = harness(
        time_skipping_env,
        candidates=[candidate("p5.48xlarge", spot=True), candidate("g6.xlarge")],
        never_running={"p5.48xlarge"},
    )
    async with h.worker():
        handle = await h.start()
        await wait_for(h.cloud.started_waits.is_set, "the wait to start")
        notice = InterruptionNotice(
            kind=InterruptionKind.SPOT_INTERRUPTION, instance_id="i-00000001"
        )
        await handle.signal(PodLifecycle.interruption, notice)
        result = await handle.result()
    assert result.stage is Stage.SUCCEEDED
    assert h.cloud.terminated[0] == "i-00000001"
    assert [r.candidate.instance_type for r in h.cloud.launches] == ["p5.48xlarge", "g6.xlarge"]
    assert "InterruptedBeforeStart" in h.cloud.event_reasons()


async def test_max_lifetime_stops_the_pod(time_skipping_env: WorkflowEnvironment) -> None:
    # A running activity locks time skipping, so the lifetime passes in real time: keep it short.
    h = harness(time_skipping_env, exit_code=None, max_lifetime=timedelta(seconds=2))
    async with h.worker():
        handle = await h.start()
        await wait_for(h.cloud.started_monitor.is_set, "monitoring to start")
        result = await handle.result()
    assert result.stage is Stage.FAILED
    assert result.reason == "DeadlineExceeded"
    assert h.cloud.stops
    assert h.cloud.terminated == ["i-00000001"]


async def test_a_spent_budget_with_enforcement_stop_stops_the_running_pod(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    h = harness(time_skipping_env, exit_code=None)
    message = "limits.dailyBudget ($100.00) is spent ($100.20); limits.enforcement is stop"
    async with h.worker():
        handle = await h.start()
        await wait_for(h.cloud.started_monitor.is_set, "monitoring to start")
        await handle.signal(PodLifecycle.budget_exhausted, message)
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
    assert isinstance(failure.value.cause, ApplicationError)
    assert failure.value.cause.type == FailureType.BUDGET_EXCEEDED
    assert h.cloud.stops
    assert h.cloud.terminated == ["i-00000001"]
    final = h.cloud.statuses[-1]
    assert (final.phase, final.reason, final.message) == (
        "Failed",
        FailureType.BUDGET_EXCEEDED,
        message,
    )


async def test_long_running_pod_continues_as_new(time_skipping_env: WorkflowEnvironment) -> None:
    h = harness(time_skipping_env, monitor_ends_after_rounds=MAX_MONITOR_ROUNDS_PER_RUN + 3)
    async with h.worker():
        handle = await h.start()
        result = await handle.result()
        first_run = h.client.get_workflow_handle(handle.id, run_id=handle.result_run_id)
        description = await first_run.describe()
    assert result.stage is Stage.SUCCEEDED
    assert description.status == WorkflowExecutionStatus.CONTINUED_AS_NEW
    assert len(h.cloud.launches) == 1  # the carried state remembers the instance
    assert h.cloud.terminated == ["i-00000001"]


async def test_instance_limit_keeps_the_pod_pending_until_a_slot_frees(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    # Short real waits: a cancelled activity in an earlier test can keep the test server from
    # skipping time for a while, and this test must not depend on test order.
    h = harness(time_skipping_env, held_by_limit_calls=2, retry_interval=timedelta(seconds=1))
    async with h.worker():
        handle = await h.start()
        result = await handle.result()
    assert result.stage is Stage.SUCCEEDED
    pending = [s for s in h.cloud.statuses if s.phase == "Pending"]
    assert [s.reason for s in pending] == [FailureType.BUDGET_EXCEEDED] * 2
    assert pending[0].message is not None
    assert "maxConcurrentInstances" in pending[0].message
    # A held launch does not walk the other candidates: the limit applies to all of them.
    assert [r.candidate.instance_type for r in h.cloud.launches] == ["g5.xlarge"] * 3


async def test_the_instance_cost_lands_in_the_memo(time_skipping_env: WorkflowEnvironment) -> None:
    h = harness(time_skipping_env, instance_cost=Decimal("12.345678"))
    async with h.worker():
        handle = await h.start()
        result = await handle.result()
        memo = await (await handle.describe()).memo()
    assert result.stage is Stage.SUCCEEDED
    assert memo["costUSD"] == "12.3457"


async def test_a_budget_hold_waits_past_the_capacity_give_up_time(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    # Three holds of a second each outlast capacityGiveUpAfter (1 s): a budget hold never fails
    # the pod, it waits its turn.
    h = harness(
        time_skipping_env,
        held_by_limit_calls=3,
        retry_interval=timedelta(seconds=1),
        give_up_after=timedelta(seconds=1),
    )
    async with h.worker():
        handle = await h.start()
        result = await handle.result()
    assert result.stage is Stage.SUCCEEDED
    pending = [s for s in h.cloud.statuses if s.phase == "Pending"]
    assert [s.reason for s in pending] == [FailureType.BUDGET_EXCEEDED] * 3


async def test_the_ledgers_signal_wakes_a_held_pod_at_once(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    h = harness(time_skipping_env, held_by_limit_calls=1, retry_interval=timedelta(days=1))
    async with h.worker():
        handle = await h.start()
        await wait_for(
            lambda: any(s.reason == FailureType.BUDGET_EXCEEDED for s in h.cloud.statuses),
            "the held launch to be reported",
        )
        await handle.signal(PodLifecycle.launch_admitted)
        result = await handle.result()
    assert result.stage is Stage.SUCCEEDED
    assert len(h.cloud.launches) == 2
    history = await handle.fetch_history()
    fired = [e for e in history.events if e.HasField("timer_fired_event_attributes")]
    assert not fired, "the day-long retry timer fired: the signal did not wake the pod"


async def test_deletion_during_planning_launches_nothing(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    h = harness(time_skipping_env, slow_steps={"plan"})
    async with h.worker():
        handle = await h.start()
        await wait_for(lambda: "plan" in h.cloud.entered, "planning to start")
        await handle.signal(PodLifecycle.pod_deleted, PodDeleted(grace_period_seconds=5))
        h.cloud.release.set()
        result = await handle.result()
    assert result.stage is Stage.DELETED
    assert not h.cloud.launches
    assert h.cloud.deleted == [h.cloud.pod]


async def test_deletion_while_starting_containers_terminates_the_instance(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    h = harness(time_skipping_env, slow_steps={"start"})
    async with h.worker():
        handle = await h.start()
        await wait_for(lambda: "start" in h.cloud.entered, "the containers to be starting")
        await handle.signal(PodLifecycle.pod_deleted, PodDeleted(grace_period_seconds=5))
        result = await handle.result()
    assert result.stage is Stage.DELETED
    assert h.cloud.terminated == ["i-00000001"]
    assert h.cloud.deleted == [h.cloud.pod]
    assert h.cloud.monitor_rounds == 0


async def test_a_new_run_of_the_same_pod_launches_with_new_client_tokens(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """`orca retry` starts a new run under the pod's workflow ID; its launches send other tags,
    so reusing the first run's ClientToken would be refused (IdempotentParameterMismatch)."""
    h = harness(time_skipping_env, exit_code=3)
    async with h.worker():
        first = await h.start()
        assert (await first.result()).stage is Stage.FAILED
        second = await h.start()
        assert (await second.result()).stage is Stage.FAILED
    assert second.result_run_id != first.result_run_id
    tokens = [r.client_token for r in h.cloud.launches]
    assert len(tokens) == 2
    assert tokens[0] != tokens[1]
    assert all(len(token) <= 64 for token in tokens)


async def test_rejected_status_writes_never_keep_the_instance(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    h = harness(time_skipping_env, exit_code=None, status_writes_rejected=True)
    async with h.worker():
        handle = await h.start()
        await wait_for(h.cloud.started_monitor.is_set, "monitoring to start")
        await handle.signal(PodLifecycle.pod_deleted, PodDeleted(grace_period_seconds=7))
        result = await handle.result()
    assert result.stage is Stage.DELETED
    assert not h.cloud.statuses
    assert h.cloud.terminated == ["i-00000001"]
    assert h.cloud.deleted == [h.cloud.pod]


async def test_plan_warnings_become_warning_events(time_skipping_env: WorkflowEnvironment) -> None:
    warning = "Instance type t3.micro is smaller than the pod's requests: 64 CPUs requested"
    h = harness(time_skipping_env, plan_warnings=(warning,))
    async with h.worker():
        handle = await h.start()
        assert (await handle.result()).stage is Stage.SUCCEEDED
    assert [
        (e.type, e.message) for e in h.cloud.events if e.reason == "UndersizedInstanceType"
    ] == [("Warning", warning)]
