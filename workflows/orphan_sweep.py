"""`OrphanSweep`: one sweep for orphans, started every `orphans.sweepInterval` by the Temporal
Schedule `orca-orphan-sweep/<clusterName>`, so its runs sit in the Temporal UI beside the pods.

Nothing else ends an instance whose PodLifecycle workflow is gone: terminated from the UI, reset,
lost to retention, or stopped by a bug. A pod whose workflow was terminated stays Running in
Kubernetes while its instance bills, because the watcher cannot start a new run under the same
ID. Each sweep therefore

    find_orphans ─► (report only: stop here) ─► end_orphans

`find_orphans` decides from what Temporal says (visibility, then a describe of every owner it
did not list as running), never from whether a worker answers, so an instance whose workflow
runs is untouched even while no worker polls that workflow. If Temporal cannot be read the
activity fails after a few tries and the sweep ends nothing; the next scheduled run tries again.
`end_orphans` checks each owner once more right before ending anything. Settings are the
schedule's argument (`SweepInput`), rewritten at every worker start, so the UI shows them.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from orca.activities.orphan_models import (
        EndOrphansInput,
        EndOrphansOutcome,
        SweepFindings,
        SweepInput,
        SweepReport,
    )
    from orca.activities.orphans import OrphanActivities

ORPHAN_SWEEP_WORKFLOW = "OrphanSweep"
FIND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2), backoff_coefficient=2.0, maximum_attempts=3
)
"""A sweep that cannot read Temporal or AWS gives up (ending nothing) until the next one."""
END_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2), maximum_interval=timedelta(minutes=1)
)


@workflow.defn(name=ORPHAN_SWEEP_WORKFLOW)
class OrphanSweep:
    @workflow.run
    async def run(self, input: SweepInput) -> SweepReport:
        findings: SweepFindings = await workflow.execute_activity_method(
            OrphanActivities.find_orphans,
            input,
            start_to_close_timeout=timedelta(minutes=5),
            heartbeat_timeout=timedelta(minutes=2),
            retry_policy=FIND_RETRY,
            summary="Find instances, spot requests, secrets and pods without a running workflow",
        )
        report = SweepReport(
            report_only=input.report_only, found=findings.orphans, listed=findings.listed
        )
        if input.report_only or not findings.orphans:
            return report
        outcome: EndOrphansOutcome = await workflow.execute_activity_method(
            OrphanActivities.end_orphans,
            EndOrphansInput(orphans=findings.orphans),
            start_to_close_timeout=timedelta(minutes=10),
            heartbeat_timeout=timedelta(minutes=2),
            retry_policy=END_RETRY,
            summary=f"End {len(findings.orphans)} orphan(s)",
        )
        return report.model_copy(update={"ended": outcome.ended, "spared": outcome.spared})
