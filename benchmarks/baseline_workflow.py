"""The burst benchmark's baseline: a bare workflow running K no-op activities one after another.

Kept in a module of its own that imports nothing but temporalio, so the workflow sandbox can
re-import it cheaply. K is the number of activities a real PodLifecycle run schedules before its
pod is Running, counted from a real history by the benchmark. With `local` > 0 that many of them
(every second one) run as local activities, the same split as PodLifecycle's (its pod status
writes and events are local activities): the "same shape" baseline. The result is the workflow
time when activity `mark` (0-based; PodLifecycle's `launch_instance` position) completed, so the
benchmark can compare ORCA's creation → launch call with the bare workflow's time to the same
step.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow

BASELINE_WORKFLOW = "BurstBaseline"
NOOP_ACTIVITY = "burst_noop"


@activity.defn(name=NOOP_ACTIVITY)
async def noop(step: int) -> int:
    return step


@workflow.defn(name=BASELINE_WORKFLOW)
class BurstBaseline:
    @workflow.run
    async def run(self, activities: int, local: int = 0, mark: int = 0) -> float:
        marked = workflow.now().timestamp()
        for step in range(activities):
            if step % 2 == 1 and step // 2 < local:
                await workflow.execute_local_activity(
                    NOOP_ACTIVITY, step, start_to_close_timeout=timedelta(seconds=60)
                )
            else:
                await workflow.execute_activity(
                    NOOP_ACTIVITY, step, start_to_close_timeout=timedelta(seconds=60)
                )
            if step == mark:
                marked = workflow.now().timestamp()
        return marked
