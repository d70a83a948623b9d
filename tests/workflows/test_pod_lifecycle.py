"""PodLifecycle on the time-skipping test server, every activity replaced by a small fake.

One fake per activity class (`tests/workflows/fake_activities.py`), scripted per test (which
offerings have capacity, how long an instance takes, how the containers end); they record every
call, so each test asserts what the workflow *did*: which offerings it tried, what it
terminated, what it wrote to the pod.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from orca.failure_types import FailureType
from orca.launch_spec import PodRef
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
from tests.workflows.fake_activities import (
    FakeContainers,
    FakeInstances,
    FakePlanning,
    FakePodStatus,
    FakeVolumes,
    Gate,
    candidate,
)


def new_pod() -> tuple[PodRef, dict[str, Any]]:
    pod = PodRef(namespace="research", name=f"job-{uuid.uuid4().hex[:6]}", uid=str(uuid.uuid4()))
    manifest = {
        "metadata": {"namespace": pod.namespace, "name": pod.name, "uid": pod.uid},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
    }
    return pod, manifest


class Harness:
    """One pod's workflow and the four fakes that serve its activities."""

    def __init__(
        self,
        env: WorkflowEnvironment,
        planning: FakePlanning,
        instances: FakeInstances,
        containers: FakeContainers,
        pod_status: FakePodStatus,
    ) -> None:
        self.env = env
        self.planning = planning
        self.instances = instances
        self.containers = containers
        self.pod_status = pod_status
        for fake in (planning, instances, containers):
            fake.told = pod_status.events  # the events they post themselves, in the same list
        self.volumes = FakeVolumes(containers=containers, instances=instances)
        self.pod, self.manifest = new_pod()
        self.task_queue = f"tq-{uuid.uuid4()}"

    @property
    def client(self) -> Client:
        return self.env.client

    def worker(self) -> Worker:
        return Worker(
            self.client,
            task_queue=self.task_queue,
            workflows=[PodLifecycle],
            activities=[
                *self.planning.activities(),
                *self.instances.activities(),
                *self.containers.activities(),
                *self.pod_status.activities(),
                *self.volumes.activities(),
            ],
        )

    async def start(self) -> WorkflowHandle[Any, PodLifecycleResult]:
        return await self.client.start_workflow(
            PodLifecycle.run,
            PodLifecycleInput(pod=self.manifest),
            id=pod_workflow_id(self.pod),
            task_queue=self.task_queue,
        )


def harness(
    env: WorkflowEnvironment,
    *,
    planning: FakePlanning | None = None,
    instances: FakeInstances | None = None,
    containers: FakeContainers | None = None,
    pod_status: FakePodStatus | None = None,
) -> Harness:
    """A harness whose unnamed fakes answer the happy path."""
    return Harness(
        env,
        planning or FakePlanning(),
        instances or FakeInstances(),
        containers or FakeContainers(),
        pod_status or FakePodStatus(),
    )


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
    assert [r.candidate.instance_type for r in h.instances.launches] == ["g5.xlarge"]
    assert h.instances.terminated == ["i-00000001"]
    assert "OfferingsSelected" in h.pod_status.event_reasons()
    assert "ContainersFinished" in h.pod_status.event_reasons()
    assert not h.pod_status.deleted  # a finished pod stays in Kubernetes until the user deletes it
    # Pod status writes and events are local activities, nothing scheduled; an event told with a
    # status write rides in it (`pod-lifecycle-2`): a marker per call.
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
    calls = h.pod_status.attempts
    assert markers.count("core_local_activity") == len(calls["report_pod_status"]) + len(
        calls["record_pod_event"]
    )
    assert len(h.pod_status.events) > len(calls.get("record_pod_event", []))  # some rode along
    assert markers.count("core_patch") == 1  # pod-lifecycle-2 only: it stands for the others


async def test_capacity_error_falls_back_to_next_offering(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    h = harness(time_skipping_env, instances=FakeInstances(no_capacity={"g5.xlarge"}))
    async with h.worker():
        handle = await h.start()
        result = await handle.result()
        view = await handle.query(PodLifecycle.describe)
    assert result.stage is Stage.SUCCEEDED
    assert [r.candidate.instance_type for r in h.instances.launches] == ["g5.xlarge", "g6.xlarge"]
    assert h.instances.launches[0].client_token != h.instances.launches[1].client_token
    assert isinstance(view, LifecycleView)
    assert view.attempts[0].outcome.startswith("InsufficientInstanceCapacity")
    assert view.attempts[1].outcome == "launched i-00000002"
    assert "LaunchFailed" in h.pod_status.event_reasons()


async def test_all_capacity_exhausted_waits_pending_then_retries(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    h = harness(
        time_skipping_env,
        instances=FakeInstances(
            no_capacity={"g5.xlarge", "g6.xlarge"}, capacity_returns_after_calls=4
        ),
    )
    async with h.worker():
        handle = await h.start()
        result = await handle.result()
    assert result.stage is Stage.SUCCEEDED
    pending = [s for s in h.pod_status.statuses if s.phase == "Pending"]
    assert pending
    assert pending[0].reason == FailureType.INSUFFICIENT_CAPACITY
    assert len(h.instances.launches) == 5  # two rounds of two, then the fifth succeeds
    assert FailureType.INSUFFICIENT_CAPACITY in h.pod_status.event_reasons()


async def test_capacity_never_returns_fails_with_insufficient_capacity(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    h = harness(time_skipping_env, instances=FakeInstances(no_capacity={"g5.xlarge", "g6.xlarge"}))
    async with h.worker():
        handle = await h.start()
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == FailureType.INSUFFICIENT_CAPACITY
    assert h.pod_status.statuses[-1].phase == "Failed"
    assert not h.instances.terminated  # nothing was ever launched


async def test_invalid_pod_spec_launches_nothing(time_skipping_env: WorkflowEnvironment) -> None:
    message = "orca.research/launch-type: 'spotty' is not a launch type; allowed: on-demand, spot"
    h = harness(time_skipping_env, planning=FakePlanning(invalid_spec=message))
    async with h.worker():
        handle = await h.start()
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
    assert isinstance(failure.value.cause, ApplicationError)
    assert failure.value.cause.type == FailureType.INVALID_POD_SPEC
    assert not h.instances.launches
    assert not h.instances.terminated
    failed = h.pod_status.statuses[-1]
    assert failed.phase == "Failed"
    assert failed.conditions[0].reason == FailureType.INVALID_POD_SPEC
    assert failed.conditions[0].message == message
    assert any(e.message == message and e.type == "Warning" for e in h.pod_status.events)


async def test_launch_timeout_terminates_and_tries_next(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    first = candidate("p5.48xlarge", zone="timeout-now")
    h = harness(
        time_skipping_env,
        planning=FakePlanning(candidates=[first, candidate("g6.xlarge")]),
        instances=FakeInstances(never_running={"p5.48xlarge"}),
    )
    async with h.worker():
        handle = await h.start()
        result = await handle.result()
    assert result.stage is Stage.SUCCEEDED
    assert h.instances.terminated[0] == "i-00000001"  # the instance that never ran
    assert [r.candidate.instance_type for r in h.instances.launches] == ["p5.48xlarge", "g6.xlarge"]
    assert "LaunchTimeout" in h.pod_status.event_reasons()


async def test_nonzero_exit_fails_the_pod(time_skipping_env: WorkflowEnvironment) -> None:
    h = harness(time_skipping_env, containers=FakeContainers(exit_code=3))
    async with h.worker():
        handle = await h.start()
        result = await handle.result()
    assert result.stage is Stage.FAILED
    assert result.message == "main exited 3"
    assert h.instances.terminated == ["i-00000001"]


async def test_deletion_while_waiting_for_the_instance(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    h = harness(
        time_skipping_env,
        planning=FakePlanning(candidates=[candidate("p5.48xlarge")]),
        instances=FakeInstances(never_running={"p5.48xlarge"}),
    )
    async with h.worker():
        handle = await h.start()
        await wait_for(h.instances.started_waits.is_set, "the wait to start")
        await handle.signal(PodLifecycle.pod_deleted, PodDeleted(grace_period_seconds=5))
        result = await handle.result()
    assert result.stage is Stage.DELETED
    assert h.instances.terminated == ["i-00000001"]
    assert h.pod_status.deleted == [h.pod]
    assert not h.containers.stops  # no containers were started


async def test_deletion_while_waiting_for_capacity(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    h = harness(time_skipping_env, instances=FakeInstances(no_capacity={"g5.xlarge", "g6.xlarge"}))
    async with h.worker():
        handle = await h.start()
        await wait_for(
            lambda: any(s.phase == "Pending" for s in h.pod_status.statuses), "the pod to wait"
        )
        await handle.signal(PodLifecycle.pod_deleted, PodDeleted(grace_period_seconds=30))
        result = await handle.result()
    assert result.stage is Stage.DELETED
    assert h.pod_status.deleted == [h.pod]


async def test_deletion_while_running_stops_within_grace(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    h = harness(time_skipping_env, containers=FakeContainers(exit_code=None))
    async with h.worker():
        handle = await h.start()
        await wait_for(h.containers.started_monitor.is_set, "monitoring to start")
        await handle.signal(PodLifecycle.pod_deleted, PodDeleted(grace_period_seconds=7))
        result = await handle.result()
    assert result.stage is Stage.DELETED
    assert [s.grace_seconds for s in h.containers.stops] == [7]
    assert h.instances.terminated == ["i-00000001"]
    assert h.pod_status.deleted == [h.pod]


async def test_pod_gone_while_running_terminates_without_status_writes(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    h = harness(time_skipping_env, containers=FakeContainers(exit_code=None))
    async with h.worker():
        handle = await h.start()
        await wait_for(h.containers.started_monitor.is_set, "monitoring to start")
        writes_before = len(h.pod_status.statuses)
        await handle.signal(PodLifecycle.pod_gone)
        result = await handle.result()
    assert result.stage is Stage.DELETED
    assert h.instances.terminated == ["i-00000001"]
    assert not h.pod_status.deleted
    assert len(h.pod_status.statuses) == writes_before


async def test_spot_interruption_while_running_evicts(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    h = harness(
        time_skipping_env,
        containers=FakeContainers(exit_code=None),
        planning=FakePlanning(candidates=[candidate("g5.xlarge", spot=True)]),
    )
    async with h.worker():
        handle = await h.start()
        await wait_for(h.containers.started_monitor.is_set, "monitoring to start")
        notice = InterruptionNotice(
            kind=InterruptionKind.SPOT_INTERRUPTION, instance_id="i-00000001"
        )
        await handle.signal(PodLifecycle.interruption, notice)
        result = await handle.result()
    assert result.stage is Stage.FAILED
    assert result.reason == "SpotInterrupted"
    disruption = [
        c for s in h.pod_status.statuses for c in s.conditions if c.type == "DisruptionTarget"
    ]
    assert disruption
    assert disruption[0].status == "True"
    assert h.containers.stops[0].grace_seconds == 20  # the pod's terminationGracePeriodSeconds
    assert h.pod_status.statuses[-1].phase == "Failed"
    assert h.instances.terminated == ["i-00000001"]
    assert "Evicting" in h.pod_status.event_reasons()


async def test_interruption_for_another_instance_is_ignored(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    h = harness(time_skipping_env, containers=FakeContainers(exit_code=None))
    async with h.worker():
        handle = await h.start()
        await wait_for(h.containers.started_monitor.is_set, "monitoring to start")
        stray = InterruptionNotice(kind=InterruptionKind.SPOT_INTERRUPTION, instance_id="i-other")
        await handle.signal(PodLifecycle.interruption, stray)
        await handle.signal(PodLifecycle.pod_deleted, PodDeleted(grace_period_seconds=1))
        result = await handle.result()
    assert result.stage is Stage.DELETED
    assert "Evicting" not in h.pod_status.event_reasons()


async def test_spot_interruption_during_launch_moves_to_next_offering(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    h = harness(
        time_skipping_env,
        planning=FakePlanning(
            candidates=[candidate("p5.48xlarge", spot=True), candidate("g6.xlarge")]
        ),
        instances=FakeInstances(never_running={"p5.48xlarge"}),
    )
    async with h.worker():
        handle = await h.start()
        await wait_for(h.instances.started_waits.is_set, "the wait to start")
        notice = InterruptionNotice(
            kind=InterruptionKind.SPOT_INTERRUPTION, instance_id="i-00000001"
        )
        await handle.signal(PodLifecycle.interruption, notice)
        result = await handle.result()
    assert result.stage is Stage.SUCCEEDED
    assert h.instances.terminated[0] == "i-00000001"
    assert [r.candidate.instance_type for r in h.instances.launches] == ["p5.48xlarge", "g6.xlarge"]
    assert "InterruptedBeforeStart" in h.pod_status.event_reasons()


async def test_max_lifetime_stops_the_pod(time_skipping_env: WorkflowEnvironment) -> None:
    # A running activity locks time skipping, so the lifetime passes in real time: keep it short.
    h = harness(
        time_skipping_env,
        containers=FakeContainers(exit_code=None),
        planning=FakePlanning(max_lifetime=timedelta(seconds=2)),
    )
    async with h.worker():
        handle = await h.start()
        await wait_for(h.containers.started_monitor.is_set, "monitoring to start")
        result = await handle.result()
    assert result.stage is Stage.FAILED
    assert result.reason == "DeadlineExceeded"
    assert h.containers.stops
    assert h.instances.terminated == ["i-00000001"]


async def test_a_spent_budget_with_enforcement_stop_stops_the_running_pod(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    h = harness(time_skipping_env, containers=FakeContainers(exit_code=None))
    message = "limits.dailyBudget ($100.00) is spent ($100.20); limits.enforcement is stop"
    async with h.worker():
        handle = await h.start()
        await wait_for(h.containers.started_monitor.is_set, "monitoring to start")
        await handle.signal(PodLifecycle.budget_exhausted, message)
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
    assert isinstance(failure.value.cause, ApplicationError)
    assert failure.value.cause.type == FailureType.BUDGET_EXCEEDED
    assert h.containers.stops
    assert h.instances.terminated == ["i-00000001"]
    final = h.pod_status.statuses[-1]
    assert (final.phase, final.reason, final.message) == (
        "Failed",
        FailureType.BUDGET_EXCEEDED,
        message,
    )


async def test_idle_accelerators_stop_the_running_pod_with_reason_idle(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    h = harness(time_skipping_env, containers=FakeContainers(exit_code=None))
    message = "The pod's accelerators stayed below 5% utilization for 30m; it was stopped."
    async with h.worker():
        handle = await h.start()
        await wait_for(h.containers.started_monitor.is_set, "monitoring to start")
        await handle.signal(PodLifecycle.accelerators_idle, message)
        result = await handle.result()
    assert result.stage is Stage.FAILED
    assert result.reason == FailureType.IDLE
    assert h.containers.stops
    assert h.instances.terminated == ["i-00000001"]
    final = h.pod_status.statuses[-1]
    assert (final.phase, final.reason, final.message) == ("Failed", "Idle", message)


async def test_long_running_pod_continues_as_new(time_skipping_env: WorkflowEnvironment) -> None:
    h = harness(
        time_skipping_env,
        containers=FakeContainers(monitor_ends_after_rounds=MAX_MONITOR_ROUNDS_PER_RUN + 3),
    )
    async with h.worker():
        handle = await h.start()
        result = await handle.result()
        first_run = h.client.get_workflow_handle(handle.id, run_id=handle.result_run_id)
        description = await first_run.describe()
    assert result.stage is Stage.SUCCEEDED
    assert description.status == WorkflowExecutionStatus.CONTINUED_AS_NEW
    assert len(h.instances.launches) == 1  # the carried state remembers the instance
    assert h.instances.terminated == ["i-00000001"]


async def test_instance_limit_keeps_the_pod_pending_until_a_slot_frees(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    # Short real waits: a cancelled activity in an earlier test can keep the test server from
    # skipping time for a while, and this test must not depend on test order.
    h = harness(
        time_skipping_env,
        instances=FakeInstances(held_by_limit_calls=2),
        planning=FakePlanning(retry_interval=timedelta(seconds=1)),
    )
    async with h.worker():
        handle = await h.start()
        result = await handle.result()
    assert result.stage is Stage.SUCCEEDED
    pending = [s for s in h.pod_status.statuses if s.phase == "Pending"]
    assert [s.reason for s in pending] == [FailureType.BUDGET_EXCEEDED] * 2
    assert pending[0].message is not None
    assert "maxConcurrentInstances" in pending[0].message
    # A held launch does not walk the other candidates: the limit applies to all of them.
    assert [r.candidate.instance_type for r in h.instances.launches] == ["g5.xlarge"] * 3


async def test_the_instance_cost_lands_in_the_memo(time_skipping_env: WorkflowEnvironment) -> None:
    h = harness(time_skipping_env, instances=FakeInstances(instance_cost=Decimal("12.345678")))
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
        planning=FakePlanning(
            retry_interval=timedelta(seconds=1), give_up_after=timedelta(seconds=1)
        ),
        instances=FakeInstances(held_by_limit_calls=3),
    )
    async with h.worker():
        handle = await h.start()
        result = await handle.result()
    assert result.stage is Stage.SUCCEEDED
    pending = [s for s in h.pod_status.statuses if s.phase == "Pending"]
    assert [s.reason for s in pending] == [FailureType.BUDGET_EXCEEDED] * 3


async def test_the_ledgers_signal_wakes_a_held_pod_at_once(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    h = harness(
        time_skipping_env,
        instances=FakeInstances(held_by_limit_calls=1),
        planning=FakePlanning(retry_interval=timedelta(days=1)),
    )
    async with h.worker():
        handle = await h.start()
        await wait_for(
            lambda: any(s.reason == FailureType.BUDGET_EXCEEDED for s in h.pod_status.statuses),
            "the held launch to be reported",
        )
        await handle.signal(PodLifecycle.launch_admitted)
        result = await handle.result()
    assert result.stage is Stage.SUCCEEDED
    assert len(h.instances.launches) == 2
    history = await handle.fetch_history()
    fired = [e for e in history.events if e.HasField("timer_fired_event_attributes")]
    assert not fired, "the day-long retry timer fired: the signal did not wake the pod"


async def test_deletion_during_planning_launches_nothing(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    h = harness(time_skipping_env, planning=FakePlanning(gate=Gate(closed=True)))
    async with h.worker():
        handle = await h.start()
        await wait_for(lambda: h.planning.gate.entered, "planning to start")
        await handle.signal(PodLifecycle.pod_deleted, PodDeleted(grace_period_seconds=5))
        h.planning.gate.open()
        result = await handle.result()
    assert result.stage is Stage.DELETED
    assert not h.instances.launches
    assert h.pod_status.deleted == [h.pod]


async def test_deletion_while_starting_containers_terminates_the_instance(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    h = harness(time_skipping_env, containers=FakeContainers(gate=Gate(closed=True)))
    async with h.worker():
        handle = await h.start()
        await wait_for(lambda: h.containers.gate.entered, "the containers to be starting")
        await handle.signal(PodLifecycle.pod_deleted, PodDeleted(grace_period_seconds=5))
        result = await handle.result()
    assert result.stage is Stage.DELETED
    assert h.instances.terminated == ["i-00000001"]
    assert h.pod_status.deleted == [h.pod]
    assert h.containers.monitor_rounds == 0


async def test_a_new_run_of_the_same_pod_launches_with_new_client_tokens(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """`orca retry` starts a new run under the pod's workflow ID; its launches send other tags,
    so reusing the first run's ClientToken would be refused (IdempotentParameterMismatch)."""
    h = harness(time_skipping_env, containers=FakeContainers(exit_code=3))
    async with h.worker():
        first = await h.start()
        assert (await first.result()).stage is Stage.FAILED
        second = await h.start()
        assert (await second.result()).stage is Stage.FAILED
    assert second.result_run_id != first.result_run_id
    tokens = [r.client_token for r in h.instances.launches]
    assert len(tokens) == 2
    assert tokens[0] != tokens[1]
    assert all(len(token) <= 64 for token in tokens)


async def test_rejected_status_writes_never_keep_the_instance(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    h = harness(
        time_skipping_env,
        containers=FakeContainers(exit_code=None),
        pod_status=FakePodStatus(status_writes_rejected=True),
    )
    async with h.worker():
        handle = await h.start()
        await wait_for(h.containers.started_monitor.is_set, "monitoring to start")
        await handle.signal(PodLifecycle.pod_deleted, PodDeleted(grace_period_seconds=7))
        result = await handle.result()
    assert result.stage is Stage.DELETED
    assert not h.pod_status.statuses
    assert h.instances.terminated == ["i-00000001"]
    assert h.pod_status.deleted == [h.pod]


async def test_plan_warnings_become_warning_events(time_skipping_env: WorkflowEnvironment) -> None:
    warning = "Instance type t3.micro is smaller than the pod's requests: 64 CPUs requested"
    h = harness(time_skipping_env, planning=FakePlanning(plan_warnings=(warning,)))
    async with h.worker():
        handle = await h.start()
        assert (await handle.result()).stage is Stage.SUCCEEDED
    assert [
        (e.type, e.message) for e in h.pod_status.events if e.reason == "UndersizedInstanceType"
    ] == [("Warning", warning)]
