"""Workflow IDs derived from the pod, so every watcher restart, duplicate event or relist maps a
pod incarnation to the same workflow. StatefulSet pods reuse names; UIDs never repeat, so the UID
is part of the ID; namespace and name come first so a person recognises the pod in the UI."""

from __future__ import annotations

from orca.launch_spec import PodRef

WORKFLOW_ID_PREFIX = "pod/"
POD_LIFECYCLE_WORKFLOW = "PodLifecycle"
"""The registered name of the workflow type (`orca.workflows.pod_lifecycle.PodLifecycle`)."""
POD_LIFECYCLE_QUERY = f'WorkflowType="{POD_LIFECYCLE_WORKFLOW}"'
"""The visibility query for every PodLifecycle run."""


def pod_workflow_id(pod: PodRef) -> str:
    return f"{WORKFLOW_ID_PREFIX}{pod.namespace}/{pod.name}/{pod.uid}"


def pod_ref_from_workflow_id(workflow_id: str) -> PodRef | None:
    """The pod a workflow ID names, or None for IDs ORCA did not make."""
    if not workflow_id.startswith(WORKFLOW_ID_PREFIX):
        return None
    parts = workflow_id[len(WORKFLOW_ID_PREFIX) :].split("/")
    if len(parts) != 3 or not all(parts):
        return None
    return PodRef(namespace=parts[0], name=parts[1], uid=parts[2])
