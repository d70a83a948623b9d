"""OrphanSweep on the time-skipping test server with its activities replaced by name, and its
Temporal Schedule created and updated on the real dev server."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from orca.activities.orphan_models import (
    EndOrphansInput,
    EndOrphansOutcome,
    Orphan,
    OrphanKind,
    OwnerState,
    SweepFindings,
    SweepInput,
    SweepReport,
)
from orca.launch_spec import PodRef
from orca.settings import AwsSettings, KubernetesSettings, OrphansSettings, Settings
from orca.worker.orphan_schedule import ensure_sweep_schedule, schedule_id, sweep_schedule
from orca.workflows.orphan_sweep import OrphanSweep

ORPHAN = Orphan(
    kind=OrphanKind.INSTANCE,
    id="i-1",
    pod=PodRef(namespace="ml", name="train", uid="u1"),
    workflow_id="pod/ml/train/u1",
    owner=OwnerState.CLOSED,
    reason="its workflow pod/ml/train/u1 ended (Terminated)",
)


class FakeSweep:
    def __init__(self, *, unreadable: bool = False) -> None:
        self.unreadable = unreadable
        self.ended: list[Orphan] = []

    @activity.defn(name="find_orphans")
    async def find_orphans(self, input: SweepInput) -> SweepFindings:
        if self.unreadable:
            raise ApplicationError("visibility unavailable")
        return SweepFindings(orphans=(ORPHAN,), listed={"instance": 1})

    @activity.defn(name="end_orphans")
    async def end_orphans(self, input: EndOrphansInput) -> EndOrphansOutcome:
        self.ended.extend(input.orphans)
        return EndOrphansOutcome(ended=input.orphans)


async def sweep(env: WorkflowEnvironment, fake: FakeSweep, report_only: bool) -> SweepReport:
    queue = f"sweep-{uuid.uuid4()}"
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[OrphanSweep],
        activities=[fake.find_orphans, fake.end_orphans],
    ):
        return await env.client.execute_workflow(
            OrphanSweep.run,
            SweepInput(min_age=timedelta(minutes=10), report_only=report_only),
            id=f"sweep-{uuid.uuid4()}",
            task_queue=queue,
        )


async def test_a_sweep_ends_what_it_found(time_skipping_env: WorkflowEnvironment) -> None:
    fake = FakeSweep()
    report = await sweep(time_skipping_env, fake, report_only=False)
    assert fake.ended == [ORPHAN]
    assert report.ended == (ORPHAN,)


async def test_report_only_ends_nothing(time_skipping_env: WorkflowEnvironment) -> None:
    fake = FakeSweep()
    report = await sweep(time_skipping_env, fake, report_only=True)
    assert fake.ended == []
    assert report.found == (ORPHAN,)
    assert report.ended == ()


async def test_unreadable_temporal_ends_nothing(time_skipping_env: WorkflowEnvironment) -> None:
    fake = FakeSweep(unreadable=True)
    with pytest.raises(WorkflowFailureError):
        await sweep(time_skipping_env, fake, report_only=False)
    assert fake.ended == []


def settings(cluster: str, **orphans: object) -> Settings:
    return Settings(
        aws=AwsSettings(region="us-west-2"),
        kubernetes=KubernetesSettings(cluster_name=cluster),
        orphans=OrphansSettings(**orphans),  # type: ignore[arg-type]
    )


def test_the_schedule_carries_the_settings() -> None:
    schedule = sweep_schedule(settings("lab", sweep_interval="20s", report_only=True))
    assert schedule.spec.intervals[0].every == timedelta(seconds=20)
    assert not schedule.state.paused
    assert "report only" in (schedule.state.note or "")
    disabled = sweep_schedule(settings("lab", enabled=False))
    assert disabled.state.paused
    assert "orphans.enabled is false" in (disabled.state.note or "")
    assert schedule_id("lab") == "orca-orphan-sweep/lab"


async def test_the_schedule_is_created_once_and_updated_at_each_start(
    temporal_dev_env: WorkflowEnvironment,
) -> None:
    cluster = f"c-{uuid.uuid4().hex[:6]}"
    client = temporal_dev_env.client
    await ensure_sweep_schedule(client, settings(cluster, sweep_interval="5m"))
    await ensure_sweep_schedule(client, settings(cluster, sweep_interval="7m", enabled=False))
    handle = client.get_schedule_handle(schedule_id(cluster))
    try:
        description = await handle.describe()
        assert description.schedule.spec.intervals[0].every == timedelta(minutes=7)
        assert description.schedule.state.paused
    finally:
        await handle.delete()
