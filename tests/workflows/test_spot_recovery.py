"""Spot recovery that keeps the pod (`spot-recovery` patch): an `OnFailure` or `Always` pod
whose instance is interrupted or lost is relaunched in the same workflow run, on another
offering, with its restart count carried on; `Never` still fails."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from orca.activities.models import PodStatusReport
from orca.failure_types import FailureType
from orca.workflows.models import InterruptionKind, InterruptionNotice, PodDeleted, Stage
from orca.workflows.pod_lifecycle import MAX_INCARNATIONS, PodLifecycle
from tests.workflows.fake_activities import (
    FakeContainers,
    FakeInstances,
    FakePlanning,
    FakePodStatus,
    Gate,
    candidate,
    pod_volume,
)
from tests.workflows.test_pod_lifecycle import Harness, harness, wait_for

SPOT_FIRST = [candidate("g5.xlarge", spot=True), candidate("g6.xlarge", spot=True)]


def recovering_harness(
    env: WorkflowEnvironment,
    policy: str = "OnFailure",
    exit_code: int | None = 0,
    pod_status: FakePodStatus | None = None,
    **planning: Any,
) -> Harness:
    return harness(
        env,
        planning=FakePlanning(candidates=list(SPOT_FIRST), restart_policy=policy, **planning),
        # The first instance runs until interrupted; on the second the pod ends with `exit_code`
        # (None: runs until deleted).
        containers=FakeContainers(exit_code=exit_code, forever_rounds={1}),
        pod_status=pod_status,
    )


def relaunch_status(h: Harness) -> PodStatusReport:
    return next(s for s in h.pod_status.statuses if s.container_statuses)


async def interrupt(h: Harness, kind: InterruptionKind, **fields: Any) -> Any:
    handle = await h.start()
    await wait_for(h.containers.started_monitor.is_set, "monitoring to start")
    notice = InterruptionNotice(kind=kind, instance_id="i-00000001", **fields)
    await handle.signal(PodLifecycle.interruption, notice)
    return handle


async def assert_replays(h: Harness, handle: Any) -> None:
    history = await handle.fetch_history()
    replayed = await Replayer(
        workflows=[PodLifecycle], data_converter=h.client.data_converter
    ).replay_workflow(history, raise_on_replay_failure=False)
    assert replayed.replay_failure is None


async def test_spot_interruption_relaunches_the_pod_on_another_offering(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    h = recovering_harness(time_skipping_env)
    async with h.worker():
        handle = await interrupt(h, InterruptionKind.SPOT_INTERRUPTION)
        result = await handle.result()
        await assert_replays(h, handle)
    assert result.stage is Stage.SUCCEEDED
    assert result.instance_id == "i-00000002"
    launched = [(r.candidate.instance_type, r.candidate.zone) for r in h.instances.launches]
    assert launched == [("g5.xlarge", "us-west-2a"), ("g6.xlarge", "us-west-2a")]
    assert h.instances.terminated == ["i-00000001", "i-00000002"]
    assert [s.instance_id for s in h.containers.stops] == ["i-00000001"]
    assert [s.instance.instance_id for s in h.containers.starts] == ["i-00000001", "i-00000002"]
    assert all(s.phase != "Failed" for s in h.pod_status.statuses)
    status = relaunch_status(h)
    assert status.phase == "Running"
    assert {c.type: c.status for c in status.conditions} == {
        "ContainersReady": "False",
        "Ready": "False",
    }
    assert status.container_statuses is not None
    (main,) = status.container_statuses
    assert main["restartCount"] == 1
    assert main["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert main["lastState"]["terminated"]["reason"] == "SpotInterruption"
    assert main["lastState"]["terminated"]["exitCode"] == 143
    # The second incarnation's monitor carries the base count and the last termination.
    second = h.containers.monitors[-1]
    assert second.instance_id == "i-00000002"
    assert second.restart_base == {"main": 1}
    assert second.last_terminated["main"]["reason"] == "SpotInterruption"
    event = next(e for e in h.pod_status.events if e.reason == "InstanceInterrupted")
    assert event.type == "Warning"
    assert "i-00000001" in event.message
    assert "relaunched" in event.message
    assert "incarnation 2" in event.message


async def test_restarts_the_runner_made_on_the_interrupted_instance_carry_on(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    # The container crash-looped twice on the first instance (the runner restarted it, the
    # monitor wrote restartCount 2): the interruption makes it 3, and the next instance's
    # runner counts on from there (`relaunch-continues-pod`).
    h = recovering_harness(
        time_skipping_env, pod_status=FakePodStatus(restart_counts_shown={"main": 2})
    )
    async with h.worker():
        handle = await interrupt(h, InterruptionKind.SPOT_INTERRUPTION)
        await handle.result()
        await assert_replays(h, handle)
    (main,) = relaunch_status(h).container_statuses or ()
    assert main["restartCount"] == 3
    assert h.containers.monitors[-1].restart_base == {"main": 3}


async def test_max_lifetime_counts_from_the_first_incarnation(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    # A running activity locks time skipping: the lifetime passes in real time, keep it short.
    h = recovering_harness(
        time_skipping_env, policy="Always", exit_code=None, max_lifetime=timedelta(seconds=3)
    )
    async with h.worker():
        handle = await interrupt(h, InterruptionKind.SPOT_INTERRUPTION)
        result = await handle.result()
        await assert_replays(h, handle)
    assert result.stage is Stage.FAILED
    assert result.reason == FailureType.DEADLINE_EXCEEDED
    first, second = h.containers.monitors
    assert second.instance_id == "i-00000002"
    # The second incarnation's round ends at the pod's deadline, not 3 s after its own start.
    assert second.round_duration < first.round_duration <= timedelta(seconds=3)
    assert h.instances.terminated == ["i-00000001", "i-00000002"]


async def test_a_rebalance_recommendation_is_reported_as_instance_interrupted(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    h = recovering_harness(time_skipping_env, policy="Always", exit_code=None)
    async with h.worker():
        handle = await interrupt(h, InterruptionKind.REBALANCE_RECOMMENDATION)
        await wait_for(lambda: len(h.containers.monitors) >= 2, "the second incarnation")
        await handle.signal(PodLifecycle.pod_deleted, PodDeleted(grace_period_seconds=0))
        result = await handle.result()
    assert result.stage is Stage.DELETED
    (main,) = relaunch_status(h).container_statuses or ()
    assert main["lastState"]["terminated"]["reason"] == "InstanceInterrupted"


async def test_an_interruption_while_the_containers_start_relaunches_the_pod(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """`recovery-while-starting`: the start on the interrupted instance is cancelled, the pod is
    relaunched on the next offering and runs there (the run does not end)."""
    h = harness(
        time_skipping_env,
        planning=FakePlanning(candidates=list(SPOT_FIRST), restart_policy="OnFailure"),
        containers=FakeContainers(exit_code=0, gate=Gate(closed=True)),
    )
    async with h.worker():
        handle = await h.start()
        await wait_for(lambda: h.containers.gate.entered, "the containers to be starting")
        notice = InterruptionNotice(
            kind=InterruptionKind.SPOT_INTERRUPTION, instance_id="i-00000001"
        )
        await handle.signal(PodLifecycle.interruption, notice)
        await wait_for(lambda: len(h.instances.launches) == 2, "the relaunch")
        h.containers.gate.open()
        result = await handle.result()
        await assert_replays(h, handle)
    assert result.stage is Stage.SUCCEEDED
    assert result.instance_id == "i-00000002"
    assert [s.instance.instance_id for s in h.containers.starts] == ["i-00000001", "i-00000002"]
    assert [s.instance_id for s in h.containers.stops] == ["i-00000001"]
    assert h.instances.terminated == ["i-00000001", "i-00000002"]
    (main,) = relaunch_status(h).container_statuses or ()
    assert main["restartCount"] == 1
    assert main["lastState"]["terminated"]["reason"] == "SpotInterruption"


async def test_volumes_are_detached_before_terminating_and_attached_again(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    h = recovering_harness(time_skipping_env, volumes=(pod_volume(),))
    async with h.worker():
        handle = await interrupt(h, InterruptionKind.SPOT_INTERRUPTION)
        result = await handle.result()
    assert result.stage is Stage.SUCCEEDED
    # (activity, instance, container starts, container stops, terminated) at each call
    assert h.volumes.calls == [
        ("attach", "i-00000001", 0, 0, []),
        ("detach", "i-00000001", 1, 1, []),
        ("attach", "i-00000002", 1, 1, ["i-00000001"]),
        ("detach", "i-00000002", 2, 1, ["i-00000001"]),
    ]


async def test_a_lost_instance_with_always_is_relaunched_with_exit_code_137(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    h = harness(
        time_skipping_env,
        planning=FakePlanning(
            candidates=list(SPOT_FIRST), restart_policy="Always", volumes=(pod_volume(),)
        ),
        containers=FakeContainers(exit_code=None, lost_rounds={1}),
    )
    async with h.worker():
        handle = await h.start()
        await wait_for(lambda: len(h.containers.monitors) >= 2, "the second incarnation")
        await handle.signal(PodLifecycle.pod_deleted, PodDeleted(grace_period_seconds=0))
        result = await handle.result()
        await assert_replays(h, handle)
    assert result.stage is Stage.DELETED
    assert h.containers.stops[0].instance_id == "i-00000002"  # nothing stopped on the lost one
    assert [c[:2] for c in h.volumes.calls] == [
        ("attach", "i-00000001"),
        ("attach", "i-00000002"),
        ("detach", "i-00000002"),
    ]
    (main,) = relaunch_status(h).container_statuses or ()
    assert main["lastState"]["terminated"]["reason"] == "InstanceLost"
    assert main["lastState"]["terminated"]["exitCode"] == 137
    assert main["restartCount"] == 1
    assert h.pod_status.deleted == [h.pod]


async def test_never_still_fails_with_disruption_target(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    h = recovering_harness(time_skipping_env, policy="Never")
    async with h.worker():
        handle = await interrupt(h, InterruptionKind.SPOT_INTERRUPTION)
        result = await handle.result()
    assert result.stage is Stage.FAILED
    assert result.reason == FailureType.SPOT_INTERRUPTED
    assert len(h.instances.launches) == 1
    assert any(c.type == "DisruptionTarget" for s in h.pod_status.statuses for c in s.conditions)
    assert h.pod_status.statuses[-1].phase == "Failed"


async def test_deletion_while_relaunching_releases_the_pod(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    h = harness(
        time_skipping_env,
        planning=FakePlanning(candidates=list(SPOT_FIRST), restart_policy="OnFailure"),
        instances=FakeInstances(),
        containers=FakeContainers(exit_code=0, forever_rounds={1}),
    )
    async with h.worker():
        handle = await interrupt(h, InterruptionKind.SPOT_INTERRUPTION)
        # The pod is deleted while it re-plans (the plan is not cancelled: it ends first).
        h.planning.gate = Gate(closed=True)
        await wait_for(lambda: h.planning.gate.entered, "the re-plan")
        await handle.signal(PodLifecycle.pod_deleted, PodDeleted(grace_period_seconds=0))
        h.planning.gate.open()
        result = await handle.result()
    assert result.stage is Stage.DELETED
    assert len(h.instances.launches) == 1
    assert h.instances.terminated[0] == "i-00000001"
    assert h.pod_status.deleted == [h.pod]


async def test_a_pod_lost_on_every_instance_fails_after_the_incarnation_cap(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    h = harness(
        time_skipping_env,
        planning=FakePlanning(candidates=list(SPOT_FIRST), restart_policy="Always"),
        containers=FakeContainers(exit_code=None, lost_rounds=set(range(1, MAX_INCARNATIONS + 1))),
    )
    async with h.worker():
        handle = await h.start()
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
    assert isinstance(failure.value.cause, ApplicationError)
    assert failure.value.cause.type == FailureType.INSTANCE_LOST
    assert len(h.instances.launches) == MAX_INCARNATIONS
    # Each relaunch skipped the offering just lost: the two alternate.
    types = [r.candidate.instance_type for r in h.instances.launches]
    assert types[:3] == ["g5.xlarge", "g6.xlarge", "g5.xlarge"]
    assert "RelaunchLimitReached" in h.pod_status.event_reasons()
    assert h.pod_status.statuses[-1].phase == "Failed"
