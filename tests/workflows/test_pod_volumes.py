"""PodLifecycle with EBS volumes in its plan (`pod-volumes` patch): attach after the instance
runs and before the containers start, detach after they stopped and before termination."""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from orca.failure_types import FailureType
from orca.workflows.models import InterruptionKind, InterruptionNotice, PodDeleted, Stage
from orca.workflows.pod_lifecycle import PodLifecycle
from tests.workflows.fake_activities import FakeContainers, FakePlanning, pod_volume
from tests.workflows.test_pod_lifecycle import harness, wait_for


async def test_volumes_attach_before_the_containers_and_detach_before_termination(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    h = harness(time_skipping_env, planning=FakePlanning(volumes=(pod_volume(),)))
    async with h.worker():
        handle = await h.start()
        result = await handle.result()
        history = await handle.fetch_history()
    assert result.stage is Stage.SUCCEEDED
    # The new commands replay deterministically (behind the `pod-volumes` patch marker).
    replayed = await Replayer(
        workflows=[PodLifecycle], data_converter=h.client.data_converter
    ).replay_workflow(history, raise_on_replay_failure=False)
    assert replayed.replay_failure is None
    # (activity, instance, container starts, container stops, terminated) at each call
    assert h.volumes.calls == [
        ("attach", "i-00000001", 0, 0, []),
        ("detach", "i-00000001", 1, 0, []),
    ]
    assert h.instances.terminated == ["i-00000001"]
    reasons = h.pod_status.event_reasons()
    assert reasons.index("VolumesAttached") < reasons.index("Started")
    assert reasons.index("VolumesDetached") < reasons.index("Terminated")
    attached = next(e for e in h.pod_status.events if e.reason == "VolumesAttached")
    assert "vol-0123456789abcdef0 (data-claim) at /dev/sdf to i-00000001" in attached.message


async def test_deletion_stops_the_containers_then_detaches(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    h = harness(
        time_skipping_env,
        planning=FakePlanning(volumes=(pod_volume(),)),
        containers=FakeContainers(exit_code=None),
    )
    async with h.worker():
        handle = await h.start()
        await wait_for(h.containers.started_monitor.is_set, "monitoring to start")
        await handle.signal(PodLifecycle.pod_deleted, PodDeleted(grace_period_seconds=5))
        result = await handle.result()
    assert result.stage is Stage.DELETED
    assert [c[0] for c in h.volumes.calls] == ["attach", "detach"]
    assert h.volumes.calls[1][3] == 1  # the containers were stopped first
    assert h.instances.terminated == ["i-00000001"]


async def test_a_lost_instance_is_not_detached(time_skipping_env: WorkflowEnvironment) -> None:
    h = harness(
        time_skipping_env,
        planning=FakePlanning(volumes=(pod_volume(),)),
        containers=FakeContainers(exit_code=None),
    )
    async with h.worker():
        handle = await h.start()
        await wait_for(h.containers.started_monitor.is_set, "monitoring to start")
        notice = InterruptionNotice(
            kind=InterruptionKind.STATE_CHANGE, instance_id="i-00000001", state="terminated"
        )
        await handle.signal(PodLifecycle.interruption, notice)
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
    assert isinstance(failure.value.cause, ApplicationError)
    assert failure.value.cause.type == FailureType.INSTANCE_LOST
    assert [c[0] for c in h.volumes.calls] == ["attach"]  # EC2 detached them on termination


async def test_an_attach_that_cannot_succeed_fails_the_pod_with_an_event(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    h = harness(time_skipping_env, planning=FakePlanning(volumes=(pod_volume(),)))
    h.volumes.fail_next(
        "attach_volumes",
        ApplicationError(
            "Cannot attach vol-0123456789abcdef0: zone mismatch",
            type=FailureType.CONFIGURATION,
            non_retryable=True,
        ),
    )
    async with h.worker():
        handle = await h.start()
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
    assert isinstance(failure.value.cause, ApplicationError)
    assert failure.value.cause.type == FailureType.CONFIGURATION
    assert not h.containers.starts
    assert "FailedAttachVolume" in h.pod_status.event_reasons()
    assert h.pod_status.statuses[-1].phase == "Failed"
    assert [c[0] for c in h.volumes.calls] == ["attach", "detach"]
    assert h.instances.terminated == ["i-00000001"]
