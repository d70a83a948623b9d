"""`orca status [POD]`: ORCA's pods with their workflows, or one pod's launch in detail.

The table joins the pods bound to the virtual node (one Kubernetes list) with their workflows'
search attributes (one Temporal visibility list) and, when the cluster has a budget ledger, each
pod's cost so far (one `summary` query), so it costs three calls however many pods there are.
Without a ledger (none launched yet, `limits.ledger: false`, no worker answering) the COST column
is left out rather than failing the command. One pod's detail asks its workflow (`describe`
query) for the launch attempts, the candidates and the failure, falling back to the search
attributes when no worker can answer the query.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TextIO

from kubernetes import client as k8s
from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus
from temporalio.common import SearchAttributeKey
from temporalio.exceptions import TemporalError
from temporalio.service import RPCError, RPCStatusCode

from orca import search_attributes
from orca.budgets import CENT
from orca.cli import connections
from orca.cli.errors import EXIT_OK, EXIT_USAGE, CommandError
from orca.launch_spec import PodRef
from orca.ledger_summary import LedgerNotFound, read_ledger_summary
from orca.pod_phase import PodPhase
from orca.settings import Settings
from orca.units import format_age
from orca.usage_report import cost_by_pod
from orca.workflow_ids import POD_LIFECYCLE_QUERY, pod_ref_from_workflow_id, pod_workflow_id
from orca.workflows.models import LifecycleView

QUERY_TIMEOUT = timedelta(seconds=10)
LEDGER_TIMEOUT = timedelta(seconds=5)
NONE = "-"


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "status",
        help="ORCA's pods and their launches; with POD, its launch attempts in detail",
        description="Without POD: a table of the pods on ORCA's virtual node with their "
        "workflow stage, instance, type, zone and launch type. With POD: its workflow, launch "
        "attempts, candidates and failure, and a Temporal UI link.",
    )
    parser.add_argument("pod", nargs="?", metavar="POD", help="a pod name")
    parser.add_argument(
        "-n", "--namespace", help="the pod's namespace (default: default; the table: all)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = connections.load_command_settings(args.config)
    if args.pod:
        return asyncio.run(_pod_detail(settings, args.pod, args.namespace or "default"))
    return asyncio.run(_pod_table(settings, args.namespace, sys.stdout))


# --- the table ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkflowSummary:
    """What the visibility store says about one pod's latest workflow run."""

    workflow_id: str
    status: WorkflowExecutionStatus | None
    start_time: datetime
    stage: str | None
    instance_id: str | None
    instance_type: str | None
    zone: str | None
    launch_type: str | None

    @classmethod
    def from_execution(cls, execution: WorkflowExecution) -> WorkflowSummary:
        attributes = execution.typed_search_attributes

        def get(key: SearchAttributeKey[str]) -> str | None:
            return attributes.get(key)

        return cls(
            workflow_id=execution.id,
            status=execution.status,
            start_time=execution.start_time,
            stage=get(search_attributes.PHASE),
            instance_id=get(search_attributes.INSTANCE_ID),
            instance_type=get(search_attributes.INSTANCE_TYPE),
            zone=get(search_attributes.ZONE),
            launch_type=get(search_attributes.LAUNCH_TYPE),
        )

    @property
    def stage_text(self) -> str:
        closed_badly = self.status in (
            WorkflowExecutionStatus.FAILED,
            WorkflowExecutionStatus.TERMINATED,
            WorkflowExecutionStatus.TIMED_OUT,
            WorkflowExecutionStatus.CANCELED,
        )
        if closed_badly and self.status is not None:
            status = self.status.name.replace("_", " ").title().replace(" ", "")
            return status if self.stage in (None, "Failed") else f"{self.stage} ({status})"
        return self.stage or "Planning"


async def list_workflow_summaries(
    client: Client, namespace: str | None
) -> dict[str, WorkflowSummary]:
    """Latest run per workflow ID of every PodLifecycle workflow (optionally of one namespace)."""
    query = POD_LIFECYCLE_QUERY
    if namespace:
        query += f' AND {search_attributes.POD_NAMESPACE.name}="{namespace}"'
    latest: dict[str, WorkflowSummary] = {}
    async for execution in client.list_workflows(query):
        summary = WorkflowSummary.from_execution(execution)
        known = latest.get(execution.id)
        if known is None or summary.start_time > known.start_time:
            latest[execution.id] = summary
    return latest


def list_node_pods(core: k8s.CoreV1Api, node_name: str, namespace: str | None) -> list[Any]:
    selector = f"spec.nodeName={node_name}"
    if namespace:
        pods = connections.kube_call(
            core,
            "list pods",
            lambda: core.list_namespaced_pod(namespace, field_selector=selector),
        )
    else:
        pods = connections.kube_call(
            core, "list pods", lambda: core.list_pod_for_all_namespaces(field_selector=selector)
        )
    return sorted(pods.items, key=lambda p: (p.metadata.namespace, p.metadata.name))


async def _pod_table(settings: Settings, namespace: str | None, out: TextIO) -> int:
    core = connections.kube_core(settings)
    pods = await asyncio.to_thread(list_node_pods, core, settings.node.name, namespace)
    client = await connections.temporal(settings)
    workflows = await _visibility(settings, list_workflow_summaries(client, namespace))
    by_uid = {
        ref.uid: summary
        for summary in workflows.values()
        if (ref := pod_ref_from_workflow_id(summary.workflow_id)) is not None
    }
    if not pods:
        where = f"namespace {namespace}" if namespace else "any namespace"
        print(f"No pods on node {settings.node.name} in {where}.", file=out)
        return EXIT_OK
    costs = await pod_costs(client, settings.kubernetes.cluster_name)
    header = ("NAMESPACE", "NAME", "PHASE", "STAGE", "INSTANCE", "TYPE", "ZONE", "LAUNCH TYPE")
    rows: list[tuple[str, ...]] = []
    now = datetime.now(UTC)
    for pod in pods:
        summary = by_uid.get(pod.metadata.uid)
        cost: tuple[str, ...] = ()
        if costs is not None:
            ref = PodRef(
                namespace=pod.metadata.namespace, name=pod.metadata.name, uid=pod.metadata.uid
            )
            cost = (cost_cell(costs.get(pod_workflow_id(ref))),)
        rows.append(
            (
                pod.metadata.namespace,
                pod.metadata.name,
                (pod.status.phase if pod.status else None) or PodPhase.PENDING,
                summary.stage_text if summary else NONE,
                (summary.instance_id if summary else None) or NONE,
                (summary.instance_type if summary else None) or NONE,
                (summary.zone if summary else None) or NONE,
                (summary.launch_type if summary else None) or NONE,
                *cost,
                age(pod.metadata.creation_timestamp, now),
            )
        )
    print_table((*header, *(("COST",) if costs is not None else ()), "AGE"), rows, out)
    return EXIT_OK


async def pod_costs(client: Client, cluster_name: str) -> dict[str, Decimal] | None:
    """Dollars so far per pod workflow ID from the budget ledger; None when there is no ledger
    or it does not answer (the table is shown without the COST column)."""
    try:
        summary = await read_ledger_summary(client, cluster_name, rpc_timeout=LEDGER_TIMEOUT)
    except (LedgerNotFound, TemporalError, RPCError):
        return None
    return cost_by_pod(summary)


def cost_cell(cost: Decimal | None) -> str:
    """A pod's cost so far: `-` for a pod the ledger has no instance time for (yet)."""
    return NONE if cost is None else f"${cost.quantize(CENT)}"


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]], out: TextIO) -> None:
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        cells = [str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)]
        print("   ".join(cells).rstrip(), file=out)


def age(created: datetime | None, now: datetime) -> str:
    """kubectl's AGE of an object created at `created` (`format_age`)."""
    if created is None:
        return NONE
    return format_age(now - created)


# --- one pod -----------------------------------------------------------------------------------


def read_pod(core: k8s.CoreV1Api, name: str, namespace: str) -> Any:
    """The pod object; `CommandError` (exit 2) when there is none."""
    try:
        return connections.kube_call(
            core,
            f"read pod {namespace}/{name}",
            lambda: core.read_namespaced_pod(name, namespace),
        )
    except k8s.ApiException as error:
        if error.status == 404:
            raise CommandError(f"pod {namespace}/{name} not found", EXIT_USAGE) from None
        raise CommandError(
            f"reading pod {namespace}/{name} failed: {connections.api_message(error)}"
        ) from None


async def _pod_detail(settings: Settings, name: str, namespace: str) -> int:
    out = sys.stdout
    core = connections.kube_core(settings)
    pod = await asyncio.to_thread(read_pod, core, name, namespace)
    ref = PodRef(namespace=namespace, name=name, uid=pod.metadata.uid)
    workflow_id = pod_workflow_id(ref)
    client = await connections.temporal(settings)
    handle = client.get_workflow_handle(workflow_id)

    status = pod.status
    print(f"Pod:          {ref.key} (uid {ref.uid})", file=out)
    phase = (status.phase if status else None) or PodPhase.PENDING
    why = f" ({status.reason}: {status.message})" if status and status.reason else ""
    print(f"Phase:        {phase}{why}", file=out)
    if pod.spec.node_name != settings.node.name:
        print(
            f"Node:         {pod.spec.node_name or 'not scheduled yet'} (ORCA's node is "
            f"{settings.node.name}: this pod is not ORCA's)",
            file=out,
        )
    print(f"Workflow:     {workflow_id}", file=out)
    try:
        description = await _visibility(settings, handle.describe())
    except RPCError as error:
        if error.status is not RPCStatusCode.NOT_FOUND:
            raise CommandError(f"Temporal refused to describe {workflow_id}: {error}") from None
        print(
            "              no workflow yet (the watcher starts it once the pod is bound)", file=out
        )
        return EXIT_OK
    run_status = description.status.name if description.status else "UNKNOWN"
    print(f"Run:          {description.run_id} ({run_status.lower().replace('_', ' ')})", file=out)
    if settings.temporal.ui_url:
        url = connections.workflow_ui_url(settings.temporal, workflow_id, description.run_id)
        print(f"Temporal UI:  {url}", file=out)

    view = await _describe_query(handle)
    if view is None:
        summary = WorkflowSummary.from_execution(description)
        print(f"Stage:        {summary.stage_text} (from search attributes)", file=out)
        if summary.instance_id:
            print(
                f"Instance:     {summary.instance_id} {summary.instance_type or ''} in "
                f"{summary.zone or '?'} ({summary.launch_type or '?'})",
                file=out,
            )
        print(
            "              (no worker answered the describe query: attempts unavailable)", file=out
        )
        return EXIT_OK
    render_view(view, out)
    return EXIT_OK


async def _describe_query(handle: Any) -> LifecycleView | None:
    try:
        view: LifecycleView = await handle.query(
            "describe", result_type=LifecycleView, rpc_timeout=QUERY_TIMEOUT
        )
    except (TemporalError, RPCError):
        return None
    return view


def render_view(view: LifecycleView, out: TextIO) -> None:
    print(f"Stage:        {view.stage}", file=out)
    instance = view.instance
    if instance is not None:
        capacity = "spot" if instance.spot else "on-demand"
        ip = f", {instance.private_ip}" if instance.private_ip else ""
        print(
            f"Instance:     {instance.instance_id} {instance.instance_type or '?'} in "
            f"{instance.zone or '?'} ({capacity}, {instance.state}{ip})",
            file=out,
        )
    if view.reason:
        print(f"Reason:       {view.reason}: {view.message or ''}", file=out)
    if view.attempts:
        print("Launch attempts:", file=out)
        rows = [
            (
                str(index),
                attempt.at.strftime("%Y-%m-%d %H:%M:%S"),
                attempt.instance_type,
                attempt.zone,
                attempt.capacity_type,
                attempt.outcome,
            )
            for index, attempt in enumerate(view.attempts, start=1)
        ]
        table = _indented(("#", "AT (UTC)", "TYPE", "ZONE", "CAPACITY", "OUTCOME"), rows)
        print(table, file=out)
    else:
        print("Launch attempts: none yet", file=out)
    if view.candidates:
        print(f"Candidates ({len(view.candidates)}, in order):", file=out)
        for index, reason in enumerate(view.candidates[:5], start=1):
            print(f"  {index}. {reason}", file=out)
        if len(view.candidates) > 5:
            print(f"  ... and {len(view.candidates) - 5} more", file=out)


def _indented(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    buffer = io.StringIO()
    print_table(header, rows, buffer)
    return "\n".join(f"  {line}" for line in buffer.getvalue().splitlines())


async def _visibility(settings: Settings, call: Any) -> Any:
    """Await a Temporal call; a server that went away mid-command is a `CommandError`."""
    try:
        return await call
    except RPCError as error:
        if error.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
            raise CommandError(
                f"Temporal at {settings.temporal.address} did not answer ({error.message}); "
                "check temporal.address (ORCA_TEMPORAL__ADDRESS)"
            ) from None
        raise
