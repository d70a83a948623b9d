"""A stand-in registered as "PodLifecycle": records the signals the watcher sends.

The real PodLifecycle needs the whole worker (EC2, SSM, status activities); the watcher's contract
is only its name, input and signals. A pod annotation `test.orca/instance-id` makes it upsert the
`OrcaInstanceId` search attribute, as the real workflow does once its instance launches.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from orca import search_attributes
    from orca.workflows.models import InterruptionNotice, PodDeleted, PodLifecycleInput

INSTANCE_ANNOTATION = "test.orca/instance-id"


@workflow.defn(name="PodLifecycle")
class RecordingPodLifecycle:
    def __init__(self) -> None:
        self.received: list[str] = []
        self.done = False

    @workflow.run
    async def run(self, input: PodLifecycleInput) -> list[str]:
        annotations = (input.pod.get("metadata") or {}).get("annotations") or {}
        instance_id = annotations.get(INSTANCE_ANNOTATION)
        if instance_id:
            workflow.upsert_search_attributes(
                [search_attributes.INSTANCE_ID.value_set(instance_id)]
            )
        await workflow.wait_condition(lambda: self.done)
        return self.received

    @workflow.signal
    def pod_deleted(self, notice: PodDeleted) -> None:
        self.received.append(f"pod_deleted:{notice.grace_period_seconds}")

    @workflow.signal
    def pod_gone(self) -> None:
        self.received.append("pod_gone")
        self.done = True

    @workflow.signal
    def interruption(self, notice: InterruptionNotice) -> None:
        self.received.append(f"interruption:{notice.kind}:{notice.instance_id}")

    @workflow.signal
    def finish(self) -> None:
        """Test-only: end the workflow, as the real one ends when its container exits."""
        self.done = True

    @workflow.query
    def signals(self) -> list[str]:
        return list(self.received)
