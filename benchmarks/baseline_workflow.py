"""The burst benchmark's baseline: a bare workflow running K no-op activities one after another.

Kept in a module of its own that imports nothing but temporalio, so the workflow sandbox can
re-import it cheaply. K is the number of activities a real PodLifecycle run schedules before its
pod is Running, counted from a real history by the benchmark.
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
    async def run(self, activities: int) -> int:
        for step in range(activities):
            await workflow.execute_activity(
                NOOP_ACTIVITY, step, start_to_close_timeout=timedelta(seconds=60)
            )
        return activities
