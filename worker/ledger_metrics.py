"""The budget and cost gauges, refreshed from the cluster's budget ledger by each worker.

The ledger (`BudgetLedger`, one workflow per cluster) knows the budgets, the held launches, the
running instances and what every pod cost; Prometheus scrapes workers, not workflows. So every
worker asks the ledger's `summary` query once per `interval` (30 s) and sets the gauges of
`orca/metrics.py` from it: every worker reports the same cluster-wide values (dashboards and
alerts take `max` over them), and any one worker alive keeps them current.

Per-pod costs are summed per budget namespace and team (`orca_pod_cost_dollars`), never
exported per pod, so the number of series stays bounded by namespaces and teams. Labelled gauges
are rebuilt from each summary, so a budget removed from the config or a namespace with no
running instance leaves no stale series.

A cluster with no ledger yet (no launch so far) and a Temporal that does not answer are normal
states of a fleet, not crashes: the first such read of a kind is logged (warning for a failure,
info for no ledger), later ones are counted (`orca_ledger_reads_total`) but not logged again
until a read succeeds; the gauges keep their last values meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

import structlog
from temporalio.client import Client

from orca import metrics
from orca.ledger_summary import SUMMARY_TIMEOUT, LedgerNotFound, read_ledger_summary
from orca.usage_report import cost_by_scope, day_window, month_window, running_instances
from orca.workflows.ledger_models import LedgerSummary

log = structlog.get_logger(__name__)

REFRESH_INTERVAL = timedelta(seconds=30)


def set_ledger_gauges(summary: LedgerSummary, now: datetime) -> None:
    """Every budget and cost gauge from one summary (labelled series rebuilt from it)."""
    metrics.BUDGET_USED.clear()
    metrics.BUDGET_LIMIT.clear()
    for use in summary.budgets:
        metrics.BUDGET_USED.labels(budget=use.setting, scope=use.scope).set(float(use.used))
        metrics.BUDGET_LIMIT.labels(budget=use.setting, scope=use.scope).set(float(use.limit))
    metrics.HOURLY_COST.set(float(summary.hourly_cost))
    metrics.SPEND.labels(period="day").set(float(summary.spent_today))
    metrics.SPEND.labels(period="month").set(float(summary.spent_this_month))
    metrics.LAUNCHES_HELD.set(len(summary.waiting))
    metrics.RUNNING_INSTANCES.clear()
    for (instance_type, namespace), count in running_instances(summary).items():
        metrics.RUNNING_INSTANCES.labels(instance_type=instance_type, namespace=namespace).set(
            count
        )
    metrics.POD_COST.clear()
    for period, window in (("day", day_window(now)), ("month", month_window(now))):
        for (namespace, team), dollars in cost_by_scope(summary.pods, *window).items():
            metrics.POD_COST.labels(namespace=namespace, team=team, period=period).set(
                float(dollars)
            )


class LedgerMetrics:
    """Refreshes the ledger gauges every `interval` until stopped."""

    def __init__(
        self,
        client: Client,
        cluster_name: str,
        interval: timedelta = REFRESH_INTERVAL,
        rpc_timeout: timedelta = SUMMARY_TIMEOUT,
    ) -> None:
        self._client = client
        self._cluster_name = cluster_name
        self._interval = interval
        self._rpc_timeout = rpc_timeout
        self._last_outcome = "ok"

    async def refresh(self) -> str:
        """Read the summary once and set the gauges; the outcome (ok, no-ledger, failed)."""
        try:
            summary = await read_ledger_summary(
                self._client, self._cluster_name, rpc_timeout=self._rpc_timeout
            )
        except LedgerNotFound:
            outcome = "no-ledger"
            if self._last_outcome != outcome:
                log.info(
                    "no budget ledger yet; ledger metrics wait for the first launch",
                    cluster=self._cluster_name,
                )
        except Exception as error:  # Temporal down, no worker answering: retried next round
            outcome = "failed"
            if self._last_outcome != outcome:
                log.warning(
                    "cannot read the budget ledger for metrics; retrying every interval",
                    cluster=self._cluster_name,
                    error=str(error),
                    interval_seconds=self._interval.total_seconds(),
                )
        else:
            set_ledger_gauges(summary, datetime.now(UTC))
            outcome = "ok"
            if self._last_outcome != outcome:
                log.info("budget ledger metrics are current again", cluster=self._cluster_name)
        metrics.LEDGER_READS.labels(outcome=outcome).inc()
        self._last_outcome = outcome
        return outcome

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.refresh()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._interval.total_seconds())
