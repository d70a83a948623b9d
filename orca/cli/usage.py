"""`orca usage`: what the cluster's instances cost, grouped by namespace, team, type or pod.

One `summary` query to the cluster's budget ledger gives every pod's instance time and dollars
(released pods for 35 days, running ones so far); `orca.usage_report` clips them to the window
and groups them. The table also shows each budget's use and the launches it holds; JSON and CSV
carry the rows for scripts and spreadsheets.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TextIO

from temporalio.client import WorkflowQueryFailedError
from temporalio.service import RPCError

from orca.budgets import CENT
from orca.cli import connections
from orca.cli.errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, CommandError
from orca.cli.status import print_table
from orca.ledger_summary import LedgerNotFound, read_ledger_summary
from orca.settings import Settings
from orca.units import DURATION_HELP, format_duration, parse_duration
from orca.usage_report import UsageDimension, UsageRow, pod_label, total, usage_rows
from orca.workflows.budget_ledger import RELEASED_KEPT
from orca.workflows.ledger_models import BudgetUse, LedgerSummary

OUTPUTS = ("table", "json", "csv")
DOLLAR_SETTINGS = ("maxHourlyCost", "dailyBudget", "monthlyBudget")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "usage",
        help="instance hours and dollars from the budget ledger, by namespace, team, type or pod",
        description="Reads the cluster's budget ledger (orca-ledger/<kubernetes.clusterName>): "
        "instance hours and cost per group over the window, most expensive first, with a total; "
        "in table form also each budget's use and the launches it holds. The ledger keeps "
        f"released pods for {RELEASED_KEPT.days} days.",
    )
    parser.add_argument(
        "--by",
        choices=[d.value for d in UsageDimension],
        default=UsageDimension.NAMESPACE.value,
        help="how to group (default: namespace, the budget namespace)",
    )
    parser.add_argument(
        "--since", default="30d", help=f"the window, ending now: {DURATION_HELP} (default 30d)"
    )
    parser.add_argument("-o", "--output", choices=OUTPUTS, default="table")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        since = parse_duration(args.since)
    except ValueError as error:
        raise CommandError(f"--since: {error}", EXIT_USAGE) from None
    if since <= timedelta(0):
        raise CommandError("--since must be longer than 0s", EXIT_USAGE)
    settings = connections.load_command_settings(args)
    summary = asyncio.run(ledger_summary(settings))
    now = datetime.now(UTC)
    render(summary, UsageDimension(args.by), now - since, now, args.output, sys.stdout)
    return EXIT_OK


async def ledger_summary(settings: Settings) -> LedgerSummary:
    """The ledger's summary, or `CommandError` saying why there is none."""
    client = await connections.temporal(settings)
    cluster = settings.kubernetes.cluster_name
    try:
        return await read_ledger_summary(client, cluster)
    except LedgerNotFound as error:
        raise CommandError(str(error), EXIT_FAILURE) from None
    except (RPCError, WorkflowQueryFailedError) as error:
        raise CommandError(
            f"the budget ledger orca-ledger/{cluster} did not answer at "
            f"{settings.temporal.address} ({error}); is an ORCA worker running on task queue "
            f"{settings.temporal.task_queue}?",
            EXIT_FAILURE,
        ) from None


def render(
    summary: LedgerSummary,
    by: UsageDimension,
    start: datetime,
    end: datetime,
    output: str,
    out: TextIO,
) -> None:
    rows = usage_rows(summary.pods, by, start, end)
    if output == "json":
        json.dump(as_json(summary, by, rows, start, end), out, indent=2)
        print(file=out)
    elif output == "csv":
        write_csv(by, rows, out)
    else:
        write_table(summary, by, rows, start, end, out)


def dollars(value: Decimal) -> str:
    return f"${value.quantize(CENT)}"


def hours(value: Decimal) -> str:
    return str(value.quantize(CENT))


def _number(value: Decimal) -> float:
    return float(value.quantize(Decimal("0.0001")))


def budget_value(use: BudgetUse, value: Decimal) -> str:
    if use.setting.endswith(DOLLAR_SETTINGS):
        return dollars(value)
    return str(value.normalize().to_integral_value())


def write_table(
    summary: LedgerSummary,
    by: UsageDimension,
    rows: list[UsageRow],
    start: datetime,
    end: datetime,
    out: TextIO,
) -> None:
    window = format_duration(end - start)
    print(f"Usage by {by.value} since {start:%Y-%m-%d %H:%M} UTC ({window}):", file=out)
    if end - start > RELEASED_KEPT:
        print(f"(the ledger keeps released pods for {RELEASED_KEPT.days} days)", file=out)
    header = (by.value.upper(), "PODS", "INSTANCE-HOURS", "COST")
    lines = [(r.key, str(r.pods), hours(r.instance_hours), dollars(r.cost)) for r in rows]
    if not rows:
        print("  no instance ran in this window", file=out)
    else:
        summed = total(rows)
        lines.append(
            (summed.key, str(summed.pods), hours(summed.instance_hours), dollars(summed.cost))
        )
        print_table(header, lines, out)
    print(file=out)
    print(
        f"Now: {summary.launched} instance{'' if summary.launched == 1 else 's'} running at "
        f"{dollars(summary.hourly_cost)}/h; "
        f"spent today {dollars(summary.spent_today)}, "
        f"this month {dollars(summary.spent_this_month)} (UTC)",
        file=out,
    )
    if summary.budgets:
        print(file=out)
        print("Budgets:", file=out)
        budget_rows = [
            (
                use.setting,
                use.scope,
                budget_value(use, use.used),
                budget_value(use, use.limit),
                f"{use.used / use.limit:.0%}" if use.limit else "-",
            )
            for use in summary.budgets
        ]
        print_table(("BUDGET", "SCOPE", "USED", "LIMIT", "USE"), budget_rows, out)
    if summary.waiting:
        print(file=out)
        print(f"Launches held ({len(summary.waiting)}, in submission order):", file=out)
        for pod in summary.waiting:
            print(f"  {pod_label(pod)}: {summary.holds.get(pod, 'waiting')}", file=out)


def as_json(
    summary: LedgerSummary,
    by: UsageDimension,
    rows: list[UsageRow],
    start: datetime,
    end: datetime,
) -> dict[str, Any]:
    def row(r: UsageRow) -> dict[str, Any]:
        return {
            by.value: r.key,
            "pods": r.pods,
            "instance_hours": _number(r.instance_hours),
            "cost": _number(r.cost),
        }

    summed = total(rows)
    return {
        "by": by.value,
        "since": start.isoformat(),
        "until": end.isoformat(),
        "rows": [row(r) for r in rows],
        "total": {
            "pods": summed.pods,
            "instance_hours": _number(summed.instance_hours),
            "cost": _number(summed.cost),
        },
        "running_instances": summary.launched,
        "hourly_cost": _number(summary.hourly_cost),
        "spent_today": _number(summary.spent_today),
        "spent_this_month": _number(summary.spent_this_month),
        "budgets": [
            {
                "budget": use.setting,
                "scope": use.scope,
                "used": _number(use.used),
                "limit": _number(use.limit),
            }
            for use in summary.budgets
        ],
        "held": [
            {"pod": pod_label(pod), "workflow_id": pod, "reason": summary.holds.get(pod)}
            for pod in summary.waiting
        ],
    }


def write_csv(by: UsageDimension, rows: list[UsageRow], out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([by.value, "pods", "instance_hours", "cost"])
    for r in rows:
        writer.writerow([r.key, r.pods, _number(r.instance_hours), _number(r.cost)])
