"""Cost and instance time from the budget ledger's `summary`, as plain functions.

`orca usage`, the COST column of `orca status` and the worker's ledger metrics all read the same
`LedgerSummary` and aggregate its `pods` (one `PodCost` per instance a pod ran on: released ones
for 35 days, running ones with their cost so far) here, so a report and a dashboard can never
disagree about what a namespace spent.

A window (`--since 30d`, the current UTC day or month) clips each pod's [started, ended] to it;
the pod's cost is taken in proportion to the time inside the window. The ledger prices an
instance at one hourly price for its whole life, so the proportion is the exact share of what
it accrued.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum

from orca.workflow_ids import pod_ref_from_workflow_id
from orca.workflows.ledger_models import LedgerSummary, PodCost

_HOUR = Decimal(3600)
NO_TEAM = "-"


class UsageDimension(StrEnum):
    """What `orca usage --by` groups by."""

    NAMESPACE = "namespace"
    TEAM = "team"
    INSTANCE_TYPE = "instance-type"
    POD = "pod"


@dataclass(frozen=True)
class UsageRow:
    """One group's instance time and dollars inside the window."""

    key: str
    cost: Decimal
    instance_hours: Decimal
    pods: int


def pod_label(workflow_id: str) -> str:
    """`namespace/name` for a pod's workflow ID (the ID itself for one ORCA did not make)."""
    ref = pod_ref_from_workflow_id(workflow_id)
    return ref.key if ref is not None else workflow_id


def group_key(pod: PodCost, by: UsageDimension) -> str:
    if by is UsageDimension.NAMESPACE:
        return pod.namespace
    if by is UsageDimension.TEAM:
        return pod.team or NO_TEAM
    if by is UsageDimension.INSTANCE_TYPE:
        return pod.instance_type
    return pod_label(pod.pod)


def clipped(pod: PodCost, start: datetime, end: datetime) -> tuple[Decimal, Decimal]:
    """The pod's (instance hours, dollars) inside [start, end]."""
    inside_from, inside_to = max(pod.started, start), min(pod.ended, end)
    if inside_to < inside_from:
        return Decimal(0), Decimal(0)
    seconds = Decimal(str((inside_to - inside_from).total_seconds()))
    total = Decimal(str((pod.ended - pod.started).total_seconds()))
    if total <= 0:
        return Decimal(0), pod.cost
    return seconds / _HOUR, pod.cost * seconds / total


def usage_rows(
    pods: Iterable[PodCost], by: UsageDimension, start: datetime, end: datetime
) -> list[UsageRow]:
    """The pods grouped by `by` inside the window, most expensive first (then by name)."""
    return _grouped(pods, lambda pod: group_key(pod, by), start, end)


def _grouped(
    pods: Iterable[PodCost], key: Callable[[PodCost], str], start: datetime, end: datetime
) -> list[UsageRow]:
    hours: dict[str, Decimal] = {}
    cost: dict[str, Decimal] = {}
    members: dict[str, set[str]] = {}
    for pod in pods:
        if pod.ended < start or pod.started > end:
            continue
        group = key(pod)
        pod_hours, pod_cost = clipped(pod, start, end)
        hours[group] = hours.get(group, Decimal(0)) + pod_hours
        cost[group] = cost.get(group, Decimal(0)) + pod_cost
        members.setdefault(group, set()).add(pod.pod)
    rows = [UsageRow(g, cost[g], hours[g], len(members[g])) for g in cost]
    return sorted(rows, key=lambda row: (-row.cost, row.key))


def total(rows: Sequence[UsageRow]) -> UsageRow:
    return UsageRow(
        key="TOTAL",
        cost=sum((r.cost for r in rows), Decimal(0)),
        instance_hours=sum((r.instance_hours for r in rows), Decimal(0)),
        pods=sum(r.pods for r in rows),
    )


def cost_by_pod(summary: LedgerSummary) -> dict[str, Decimal]:
    """Dollars so far per pod workflow ID (all its instances: a relaunch adds to the first)."""
    costs: dict[str, Decimal] = {}
    for pod in summary.pods:
        costs[pod.pod] = costs.get(pod.pod, Decimal(0)) + pod.cost
    return costs


def running_pods(summary: LedgerSummary) -> list[PodCost]:
    """The pods whose instances run now."""
    return [pod for pod in summary.pods if pod.running]


def running_instances(summary: LedgerSummary) -> Counter[tuple[str, str]]:
    """Running instances per (instance type, namespace)."""
    return Counter((pod.instance_type, pod.namespace) for pod in running_pods(summary))


def day_window(now: datetime) -> tuple[datetime, datetime]:
    """The current UTC day up to `now`."""
    moment = now.astimezone(UTC)
    return datetime(moment.year, moment.month, moment.day, tzinfo=UTC), moment


def month_window(now: datetime) -> tuple[datetime, datetime]:
    """The current UTC month up to `now`."""
    moment = now.astimezone(UTC)
    return datetime(moment.year, moment.month, 1, tzinfo=UTC), moment


def cost_by_scope(
    pods: Iterable[PodCost], start: datetime, end: datetime
) -> dict[tuple[str, str], Decimal]:
    """Dollars inside the window per (namespace, team), the team `-` when there is none."""
    costs: dict[tuple[str, str], Decimal] = {}
    for pod in pods:
        if pod.ended < start or pod.started > end:
            continue
        scope = (pod.namespace, pod.team or NO_TEAM)
        costs[scope] = costs.get(scope, Decimal(0)) + clipped(pod, start, end)[1]
    return costs
