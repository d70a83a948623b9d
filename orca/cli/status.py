"""`orca status [POD]`: ORCA's pods with their workflows, or one pod's launch in detail.

The table joins the pods bound to the virtual node (one Kubernetes list) with their workflows'
search attributes (one Temporal visibility list) and, when the cluster has a budget ledger, each
pod's cost so far (one `summary` query), so it costs three calls however many pods there are,
plus one batched CloudWatch read for the running pods' CPU, MEMORY and ACCEL columns
(`orca.cli.pod_usage`; left out without AWS credentials).
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
from dataclasses import dataclass, replace
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
from orca.cli import connections, output
from orca.cli.errors import EXIT_OK, EXIT_USAGE, CommandError
from orca.cli.permissions import Permission
from orca.cli.pod_usage import PodUsage, read_pod_usage
from orca.launch_spec import PodRef
from orca.ledger_summary import LedgerNotFound, read_ledger_summary
from orca.pod_phase import PodPhase
from orca.settings import Settings
from orca.units import format_age
from orca.usage_queries import PodKey
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
        "-A",
        "--all-namespaces",
        action="store_true",
        help="the table: ORCA's pods in every namespace (default: the namespace, see -n)",
    )
    output.add_output_option(parser, table=True)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = connections.load_command_settings(args)
    namespace = connections.namespace(args, settings)
    if args.pod:
        if args.output == output.WIDE:
            raise CommandError("-o wide is for the table; with POD use -o json or yaml", EXIT_USAGE)
        return asyncio.run(_pod_detail(settings, args.pod, namespace, args.output))
    where = None if args.all_namespaces else namespace
    return asyncio.run(_pod_table(settings, where, args.output, sys.stdout))


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
            f"list pods in namespace {namespace}",
            lambda: core.list_namespaced_pod(namespace, field_selector=selector),
            Permission("list", "pods", namespace),
        )
    else:
        pods = connections.kube_call(
            core,
            "list pods in every namespace",
            lambda: core.list_pod_for_all_namespaces(field_selector=selector),
            Permission("list", "pods"),
        )
    return sorted(pods.items, key=lambda p: (p.metadata.namespace, p.metadata.name))


@dataclass(frozen=True)
class PodRow:
    """One line of the table (and one object of `-o json`)."""

    namespace: str
    name: str
    uid: str
    phase: str
    stage: str | None
    instance_id: str | None
    instance_type: str | None
    zone: str | None
    launch_type: str | None
    cost: Decimal | None
    created: datetime | None
    workflow_id: str
    workflow_status: str | None
    reason: str | None
    usage: PodUsage | None = None

    def cells(
        self, now: datetime, *, with_cost: bool, wide: bool, with_usage: bool = False
    ) -> tuple[str, ...]:
        cost = (cost_cell(self.cost),) if with_cost else ()
        usage = (self.usage or PodUsage()).cells() if with_usage else ()
        extra = (
            (self.workflow_status or NONE, self.reason or NONE, self.workflow_id) if wide else ()
        )
        return (
            self.namespace,
            self.name,
            self.phase,
            self.stage or NONE,
            self.instance_id or NONE,
            self.instance_type or NONE,
            self.zone or NONE,
            self.launch_type or NONE,
            *cost,
            *usage,
            age(self.created, now),
            *extra,
        )

    def document(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "name": self.name,
            "uid": self.uid,
            "phase": self.phase,
            "stage": self.stage,
            "instanceID": self.instance_id,
            "instanceType": self.instance_type,
            "zone": self.zone,
            "launchType": self.launch_type,
            "cost": self.cost.quantize(CENT) if self.cost is not None else None,
            "creationTimestamp": self.created,
            "workflowID": self.workflow_id,
            "workflowStatus": self.workflow_status,
            "reason": self.reason,
            "usage": self.usage.document() if self.usage is not None else None,
        }


def pod_rows(
    pods: Sequence[Any],
    workflows: dict[str, WorkflowSummary],
    costs: dict[str, Decimal] | None,
) -> list[PodRow]:
    """The table's rows: each pod joined with its workflow's summary and its cost so far."""
    by_uid = {
        ref.uid: summary
        for summary in workflows.values()
        if (ref := pod_ref_from_workflow_id(summary.workflow_id)) is not None
    }
    rows = []
    for pod in pods:
        metadata = pod.metadata
        summary = by_uid.get(metadata.uid)
        ref = PodRef(namespace=metadata.namespace, name=metadata.name, uid=metadata.uid)
        workflow_id = pod_workflow_id(ref)
        rows.append(
            PodRow(
                namespace=metadata.namespace,
                name=metadata.name,
                uid=metadata.uid,
                phase=(pod.status.phase if pod.status else None) or PodPhase.PENDING,
                stage=summary.stage_text if summary else None,
                instance_id=summary.instance_id if summary else None,
                instance_type=summary.instance_type if summary else None,
                zone=summary.zone if summary else None,
                launch_type=summary.launch_type if summary else None,
                cost=costs.get(workflow_id) if costs is not None else None,
                created=metadata.creation_timestamp,
                workflow_id=workflow_id,
                workflow_status=summary.status.name if summary and summary.status else None,
                reason=pod.status.reason if pod.status else None,
            )
        )
    return rows


HEADER = ("NAMESPACE", "NAME", "PHASE", "STAGE", "INSTANCE", "TYPE", "ZONE", "LAUNCH TYPE")
USAGE_HEADER = ("CPU", "MEMORY", "ACCEL")
WIDE_HEADER = ("WORKFLOW STATUS", "REASON", "WORKFLOW")


async def _pod_table(
    settings: Settings, namespace: str | None, output_format: str, out: TextIO
) -> int:
    core = connections.kube_core(settings)
    pods = await asyncio.to_thread(list_node_pods, core, settings.node.name, namespace)
    client = await connections.temporal(settings)
    workflows = await _visibility(settings, list_workflow_summaries(client, namespace))
    costs = await pod_costs(client, settings.kubernetes.cluster_name) if pods else None
    rows = pod_rows(pods, workflows, costs)
    running = [
        PodKey(namespace=row.namespace, name=row.name, uid=row.uid)
        for row in rows
        if row.phase == PodPhase.RUNNING
    ]
    usage = await asyncio.to_thread(read_pod_usage, settings, running) if running else None
    if usage is not None:
        rows = [replace(row, usage=usage.get(row.uid)) for row in rows]
    if output_format in output.DOCUMENT_FORMATS:
        output.print_document({"pods": [row.document() for row in rows]}, output_format, out)
        return EXIT_OK
    if not rows:
        where = f"namespace {namespace}" if namespace else "any namespace"
        print(f"No pods on node {settings.node.name} in {where}.", file=out)
        return EXIT_OK
    wide = output_format == output.WIDE
    now = datetime.now(UTC)
    header = (
        *HEADER,
        *(("COST",) if costs is not None else ()),
        *(USAGE_HEADER if usage is not None else ()),
        "AGE",
        *(WIDE_HEADER if wide else ()),
    )
    cells = [
        row.cells(now, with_cost=costs is not None, wide=wide, with_usage=usage is not None)
        for row in rows
    ]
    print_table(header, cells, out)
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


print_table = output.print_table


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
            Permission("get", "pods", namespace),
        )
    except k8s.ApiException as error:
        if error.status == 404:
            raise CommandError(f"pod {namespace}/{name} not found", EXIT_USAGE) from None
        raise CommandError(
            f"reading pod {namespace}/{name} failed: {connections.api_message(error)}"
        ) from None


async def _pod_detail(settings: Settings, name: str, namespace: str, output_format: str) -> int:
    out = sys.stdout
    core = connections.kube_core(settings)
    pod = await asyncio.to_thread(read_pod, core, name, namespace)
    ref = PodRef(namespace=namespace, name=name, uid=pod.metadata.uid)
    workflow_id = pod_workflow_id(ref)
    client = await connections.temporal(settings)
    handle = client.get_workflow_handle(workflow_id)
    try:
        description = await _visibility(settings, handle.describe())
    except RPCError as error:
        if error.status is not RPCStatusCode.NOT_FOUND:
            raise CommandError(f"Temporal refused to describe {workflow_id}: {error}") from None
        description = None
    view = await _describe_query(handle) if description is not None else None
    if output_format in output.DOCUMENT_FORMATS:
        document = detail_document(settings, pod, workflow_id, description, view)
        output.print_document(document, output_format, out)
        return EXIT_OK

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
    if description is None:
        print(
            "              no workflow yet (the watcher starts it once the pod is bound)", file=out
        )
        return EXIT_OK
    run_status = description.status.name if description.status else "UNKNOWN"
    print(f"Run:          {description.run_id} ({run_status.lower().replace('_', ' ')})", file=out)
    if settings.temporal.ui_url:
        url = connections.workflow_ui_url(settings.temporal, workflow_id, description.run_id)
        print(f"Temporal UI:  {url}", file=out)

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


def detail_document(
    settings: Settings,
    pod: Any,
    workflow_id: str,
    description: Any,
    view: LifecycleView | None,
) -> dict[str, Any]:
    """`orca status POD -o json|yaml`: the pod, its workflow run and the workflow's own view
    (`describe` query; null when no worker answered, the search attributes then say what is
    known)."""
    status = pod.status
    workflow: dict[str, Any] = {"id": workflow_id, "runID": None, "status": None}
    if description is not None:
        summary = WorkflowSummary.from_execution(description)
        workflow.update(
            {
                "runID": description.run_id,
                "status": description.status.name if description.status else None,
                "stage": summary.stage_text,
                "instanceID": summary.instance_id,
                "instanceType": summary.instance_type,
                "zone": summary.zone,
                "launchType": summary.launch_type,
            }
        )
        if settings.temporal.ui_url:
            workflow["uiURL"] = connections.workflow_ui_url(
                settings.temporal, workflow_id, description.run_id
            )
    return {
        "pod": {
            "namespace": pod.metadata.namespace,
            "name": pod.metadata.name,
            "uid": pod.metadata.uid,
            "nodeName": pod.spec.node_name,
            "onOrcaNode": pod.spec.node_name == settings.node.name,
            "phase": (status.phase if status else None) or PodPhase.PENDING,
            "reason": status.reason if status else None,
            "message": status.message if status else None,
        },
        "workflow": workflow,
        "view": view,
    }


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
