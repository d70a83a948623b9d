"""Starting and signalling `PodLifecycle` workflows: all the watcher ever asks of Temporal.

Every call is idempotent. A start uses the pod-derived workflow ID with `USE_EXISTING` (a running
workflow is reused, so duplicate events and relists never start a second one) and
`REJECT_DUPLICATE` (a finished pod's closed workflow is never started again). A signal to a
workflow that is not running reports `False` instead of raising, so callers can decide what
"nothing runs for this pod" means to them.
"""

from __future__ import annotations

from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from orca import search_attributes
from orca.launch_spec import PodRef
from orca.logging import get_logger
from orca.metrics import WORKFLOW_SIGNALS
from orca.workflow_ids import (
    POD_LIFECYCLE_QUERY,
    POD_LIFECYCLE_WORKFLOW,
    pod_ref_from_workflow_id,
    pod_workflow_id,
)
from orca.workflows.models import (
    ACCELERATORS_IDLE_SIGNAL,
    InterruptionNotice,
    PodDeleted,
    PodLifecycleInput,
    Stage,
)

log = get_logger(__name__)

RUNNING_QUERY = f'{POD_LIFECYCLE_QUERY} AND ExecutionStatus="Running"'


LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"


def workflow_manifest(pod: dict[str, Any]) -> dict[str, Any]:
    """The pod manifest as its workflow keeps it: without `metadata.managedFields` and kubectl's
    last-applied-configuration annotation. Both are bookkeeping of the API server and of
    `kubectl apply` that nothing in ORCA reads, and each is often larger than the rest of the
    pod: left in, they would travel through every activity input that carries the manifest."""
    metadata = dict(pod.get("metadata") or {})
    metadata.pop("managedFields", None)
    annotations = metadata.get("annotations")
    if annotations and LAST_APPLIED_ANNOTATION in annotations:
        metadata["annotations"] = {
            k: v for k, v in annotations.items() if k != LAST_APPLIED_ANNOTATION
        }
    return {**pod, "metadata": metadata}


def start_search_attributes(ref: PodRef) -> TypedSearchAttributes:
    """What a pod's workflow is visible by from its first moment: namespace, name, and the
    phase `Planning` (the workflow's first stage, which it never upserts itself)."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(search_attributes.POD_NAMESPACE, ref.namespace),
            SearchAttributePair(search_attributes.POD_NAME, ref.name),
            SearchAttributePair(search_attributes.PHASE, str(Stage.PLANNING)),
        ]
    )


class StartOutcome:
    """How a start ended; plain strings keep log lines readable."""

    STARTED = "started"  # new, or the running one reused
    FINISHED = "finished"  # a closed workflow with this ID exists: the pod's work is done


class PodWorkflows:
    """The PodLifecycle workflows of one Temporal namespace and task queue."""

    def __init__(self, client: Client, task_queue: str) -> None:
        self.client = client
        self.task_queue = task_queue

    async def start(self, manifest: dict[str, Any], ref: PodRef) -> str:
        """Start the pod's workflow unless it runs or ran; returns a `StartOutcome` value."""
        try:
            await self.client.start_workflow(
                POD_LIFECYCLE_WORKFLOW,
                PodLifecycleInput(pod=workflow_manifest(manifest)),
                id=pod_workflow_id(ref),
                task_queue=self.task_queue,
                search_attributes=start_search_attributes(ref),
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        except WorkflowAlreadyStartedError:
            return StartOutcome.FINISHED
        WORKFLOW_SIGNALS.labels(kind="start").inc()
        return StartOutcome.STARTED

    async def pod_deleted(self, ref: PodRef, grace_period_seconds: int) -> bool:
        """Signal `pod_deleted`; False when no workflow runs for the pod."""
        return await self._signal(
            self._handle(ref), "pod_deleted", PodDeleted(grace_period_seconds=grace_period_seconds)
        )

    async def pod_gone(self, ref: PodRef) -> bool:
        """Signal `pod_gone`; False when no workflow runs for the pod."""
        return await self._signal(self._handle(ref), "pod_gone", None)

    async def interruption(self, workflow_id: str, notice: InterruptionNotice) -> bool:
        """Signal `interruption`; False when the workflow is not running."""
        return await self._signal(
            self.client.get_workflow_handle(workflow_id), "interruption", notice
        )

    async def accelerators_idle(self, ref: PodRef, message: str) -> bool:
        """Tell the pod's workflow its accelerators stayed idle; False when none runs."""
        return await self._signal(self._handle(ref), ACCELERATORS_IDLE_SIGNAL, message)

    async def running_pods(self) -> dict[str, PodRef]:
        """Pods (by UID) whose PodLifecycle workflow is running, from the visibility store."""
        running: dict[str, PodRef] = {}
        async for execution in self.client.list_workflows(RUNNING_QUERY):
            ref = pod_ref_from_workflow_id(execution.id)
            if ref is not None:
                running[ref.uid] = ref
        return running

    async def running_workflows_for_instances(self, instance_ids: list[str]) -> dict[str, str]:
        """Instance ID → the running workflow that recorded it as its instance, for those that
        have one: one visibility query for all of them."""
        if not instance_ids:
            return {}
        quoted = ", ".join(f'"{instance_id}"' for instance_id in sorted(set(instance_ids)))
        query = f'{search_attributes.INSTANCE_ID.name} IN ({quoted}) AND ExecutionStatus="Running"'
        found: dict[str, str] = {}
        async for execution in self.client.list_workflows(query):
            instance_id = execution.typed_search_attributes.get(search_attributes.INSTANCE_ID)
            if instance_id is not None:
                found[instance_id] = execution.id
        return found

    def _handle(self, ref: PodRef) -> WorkflowHandle[Any, Any]:
        return self.client.get_workflow_handle(pod_workflow_id(ref))

    async def _signal(self, handle: WorkflowHandle[Any, Any], name: str, arg: Any) -> bool:
        try:
            if arg is None:
                await handle.signal(name)
            else:
                await handle.signal(name, arg)
        except RPCError as error:
            if error.status is RPCStatusCode.NOT_FOUND:
                return False
            raise
        WORKFLOW_SIGNALS.labels(kind=name).inc()
        return True
