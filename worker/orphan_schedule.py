"""The Temporal Schedule that runs the orphan sweep, created or brought up to date at every
worker start (any number of workers may start at once: create, and update when it exists).

Its ID is `orca-orphan-sweep/<clusterName>`, so clusters sharing a Temporal namespace each sweep
their own objects, and it shows in the Temporal UI's Schedules list with the settings in its note.
`orphans.enabled: false` pauses it (with a note saying so) rather than deleting it, so the
history of past sweeps stays visible. Overlapping runs are skipped.
"""

from __future__ import annotations

import structlog
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from orca.activities.orphan_models import SweepInput
from orca.settings import Settings
from orca.units import format_duration
from orca.workflows.orphan_sweep import OrphanSweep

log = structlog.get_logger(__name__)

SCHEDULE_ID_PREFIX = "orca-orphan-sweep/"


def schedule_id(cluster_name: str) -> str:
    return f"{SCHEDULE_ID_PREFIX}{cluster_name}"


def sweep_schedule(settings: Settings) -> Schedule:
    """The schedule these settings ask for (pure)."""
    orphans = settings.orphans
    cluster = settings.kubernetes.cluster_name
    if orphans.enabled:
        note = (
            f"ORCA orphan sweep of cluster {cluster}: every "
            f"{format_duration(orphans.sweep_interval)}, ends what no running PodLifecycle "
            f"workflow owns once older than {format_duration(orphans.min_age)}"
            + (" (report only: ends nothing)" if orphans.report_only else "")
        )
    else:
        note = f"paused: orphans.enabled is false for cluster {cluster}"
    return Schedule(
        action=ScheduleActionStartWorkflow(
            OrphanSweep.run,
            SweepInput(min_age=orphans.min_age, report_only=orphans.report_only),
            id=schedule_id(cluster),
            task_queue=settings.temporal.task_queue,
            execution_timeout=max(orphans.sweep_interval * 3, orphans.min_age),
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=orphans.sweep_interval)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        state=ScheduleState(note=note, paused=not orphans.enabled),
    )


async def ensure_sweep_schedule(client: Client, settings: Settings) -> None:
    """Create the schedule, or update it to these settings when it exists."""
    schedule = sweep_schedule(settings)
    sid = schedule_id(settings.kubernetes.cluster_name)
    try:
        await client.create_schedule(sid, schedule)
        action = "created"
    except ScheduleAlreadyRunningError:

        def update(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await client.get_schedule_handle(sid).update(update)
        action = "updated"
    log.info(
        f"orphan sweep schedule {action}",
        schedule_id=sid,
        enabled=settings.orphans.enabled,
        sweep_interval=format_duration(settings.orphans.sweep_interval),
        min_age=format_duration(settings.orphans.min_age),
        report_only=settings.orphans.report_only,
    )
