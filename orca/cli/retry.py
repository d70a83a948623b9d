"""`orca retry POD`: launch a failed pod again, as a new run of the same workflow.

Only a pod whose workflow has closed without success (failed, timed out, terminated, cancelled,
or completed in the Failed stage) and that still exists and is not being deleted is retried.
Its status is first put back to Pending without the failure's reason, so the new run starts
from a clean pod and the watcher (which ignores terminal pods) sees a live one; then a new run
starts under the same workflow ID, with the pod as it is now as input. The workflow ID stays the
pod's, so the Temporal UI shows both runs side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import timedelta
from typing import Any

from kubernetes import client as k8s
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import TemporalError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from orca.cli import connections, output
from orca.cli.errors import EXIT_OK, EXIT_USAGE, CommandError
from orca.cli.permissions import Permission
from orca.cli.status import read_pod
from orca.launch_spec import PodRef
from orca.pod_phase import PodPhase
from orca.settings import Settings
from orca.watcher.pod_workflows import start_search_attributes, workflow_manifest
from orca.workflow_ids import POD_LIFECYCLE_WORKFLOW, pod_workflow_id
from orca.workflows.models import PodLifecycleInput, PodLifecycleResult, Stage

LAUNCHED_CONDITION_PREFIX = "orca.research/"
RESULT_TIMEOUT = timedelta(seconds=10)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "retry",
        help="launch a failed pod again (a new run of its workflow)",
        description="For a pod whose launch failed: reset its status to Pending and start a "
        "new run of its PodLifecycle workflow under the same workflow ID. Prints the new run.",
    )
    parser.add_argument("pod", metavar="POD", help="a pod name")
    output.add_output_option(parser, table=False)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = connections.load_command_settings(args)
    namespace = connections.namespace(args, settings)
    return asyncio.run(_retry(settings, args.pod, namespace, args.output))


async def _retry(settings: Settings, name: str, namespace: str, output_format: str) -> int:
    core = connections.kube_core(settings)
    pod = await asyncio.to_thread(read_pod, core, name, namespace)
    if pod.metadata.deletion_timestamp is not None:
        raise CommandError(
            f"pod {namespace}/{name} is being deleted; create it again instead of retrying",
            EXIT_USAGE,
        )
    if pod.spec.node_name != settings.node.name:
        raise CommandError(
            f"pod {namespace}/{name} is not on ORCA's node {settings.node.name} "
            f"(node: {pod.spec.node_name or 'none yet'}); ORCA has nothing to retry",
            EXIT_USAGE,
        )
    ref = PodRef(namespace=namespace, name=name, uid=pod.metadata.uid)
    workflow_id = pod_workflow_id(ref)
    client = await connections.temporal(settings)
    handle = client.get_workflow_handle(workflow_id, result_type=PodLifecycleResult)
    await _check_retryable(handle, workflow_id)

    await asyncio.to_thread(_reset_pod_status, core, pod)
    manifest = core.api_client.sanitize_for_serialization(pod)
    manifest["status"] = {"phase": PodPhase.PENDING}
    try:
        new = await client.start_workflow(
            POD_LIFECYCLE_WORKFLOW,
            PodLifecycleInput(pod=workflow_manifest(manifest)),
            id=workflow_id,
            task_queue=settings.temporal.task_queue,
            search_attributes=start_search_attributes(ref),
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        )
    except WorkflowAlreadyStartedError:
        raise CommandError(
            f"a run of {workflow_id} started meanwhile; see `orca status {name} -n {namespace}`"
        ) from None
    out = sys.stdout
    url = None
    if settings.temporal.ui_url:
        url = connections.workflow_ui_url(settings.temporal, workflow_id, new.result_run_id)
    if output_format in output.DOCUMENT_FORMATS:
        document = {
            "pod": {"namespace": namespace, "name": name, "uid": ref.uid, "phase": "Pending"},
            "workflow": {"id": workflow_id, "runID": new.result_run_id, "uiURL": url},
        }
        output.print_document(document, output_format, out)
        return EXIT_OK
    print(f"Retrying {ref.key}: status reset to Pending", file=out)
    print(f"Workflow:     {workflow_id}", file=out)
    print(f"New run:      {new.result_run_id}", file=out)
    if url:
        print(f"Temporal UI:  {url}", file=out)
    return EXIT_OK


async def _check_retryable(
    handle: WorkflowHandle[Any, PodLifecycleResult], workflow_id: str
) -> None:
    try:
        description = await handle.describe()
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            raise CommandError(
                f"no workflow {workflow_id} yet: the watcher has not started this pod's launch, "
                "so there is nothing to retry",
                EXIT_USAGE,
            ) from None
        raise CommandError(f"Temporal refused to describe {workflow_id}: {error}") from None
    status = description.status
    if status is WorkflowExecutionStatus.RUNNING:
        raise CommandError(
            f"the pod is still running under workflow {workflow_id} (run "
            f"{description.run_id}); only a failed launch can be retried",
            EXIT_USAGE,
        )
    if status is WorkflowExecutionStatus.COMPLETED and not await _completed_as_failed(handle):
        raise CommandError(
            f"workflow {workflow_id} completed successfully (run {description.run_id}); "
            "only a failed launch can be retried",
            EXIT_USAGE,
        )
    if status is WorkflowExecutionStatus.CONTINUED_AS_NEW:
        raise CommandError(f"workflow {workflow_id} is between runs; try again", EXIT_USAGE)


async def _completed_as_failed(handle: WorkflowHandle[Any, PodLifecycleResult]) -> bool:
    """A run can complete normally with the pod Failed (a dry run, a container that failed)."""
    try:
        result = await handle.result(rpc_timeout=RESULT_TIMEOUT)
    except (TemporalError, RPCError):
        return False
    return result.stage is Stage.FAILED


def _reset_pod_status(core: k8s.CoreV1Api, pod: Any) -> None:
    """Phase Pending, no failure reason or message, and none of ORCA's conditions."""
    namespace, name = pod.metadata.namespace, pod.metadata.name
    conditions = [
        core.api_client.sanitize_for_serialization(condition)
        for condition in (pod.status.conditions or [])
        if not condition.type.startswith(LAUNCHED_CONDITION_PREFIX)
    ]
    body = {
        "metadata": {"resourceVersion": pod.metadata.resource_version},
        "status": {
            "phase": PodPhase.PENDING,
            "reason": None,
            "message": None,
            "conditions": conditions,
            "containerStatuses": None,
        },
    }
    try:
        connections.kube_call(
            core,
            f"reset the status of {namespace}/{name}",
            lambda: core.patch_namespaced_pod_status(
                name, namespace, body, _content_type="application/merge-patch+json"
            ),
            Permission("patch", "pods/status", namespace),
        )
    except k8s.ApiException as error:
        if error.status == 409:
            raise CommandError(
                f"pod {namespace}/{name} changed while resetting it; run `orca retry` again"
            ) from None
        raise CommandError(
            f"resetting the status of {namespace}/{name} failed: {connections.api_message(error)}"
        ) from None
