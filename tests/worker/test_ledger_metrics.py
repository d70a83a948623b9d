"""The worker's ledger gauges from a real `BudgetLedger` on the Temporal dev server: values from
the summary, no stale series, and a ledger that is missing or does not answer (its worker
stopped) logged once and retried until it answers again."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest_asyncio
from prometheus_client import REGISTRY
from structlog.testing import capture_logs
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from orca.activities.launch_admission import BudgetLedgerClient, LedgerUpkeepActivities
from orca.budgets import Budget, BudgetKind, Claim
from orca.worker.ledger_metrics import LedgerMetrics
from orca.workflows.budget_ledger import BudgetLedger
from orca.workflows.ledger_models import LedgerRules

INSTANCES = Budget(
    setting="limits.maxConcurrentInstances", kind=BudgetKind.INSTANCES, limit=Decimal(2)
)
ML_DAILY = Budget(
    setting="limits.namespaceQuotas.ml.dailyBudget",
    kind=BudgetKind.DAILY_SPEND,
    limit=Decimal(1000),
    namespace="ml",
)


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def ledger_worker(client: Client, task_queue: str) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[BudgetLedger],
        activities=[LedgerUpkeepActivities(client).ledger_running_pods],
    )


@pytest_asyncio.fixture
async def ledger(temporal_dev_env: WorkflowEnvironment) -> AsyncIterator[dict[str, Any]]:
    client = temporal_dev_env.client
    task_queue = f"ledger-metrics-{uuid.uuid4()}"
    name = f"metrics-{uuid.uuid4().hex[:8]}"
    rules = LedgerRules(
        budgets=[INSTANCES, ML_DAILY],
        task_queue=task_queue,
        accrual_interval=timedelta(milliseconds=200),
        upkeep_interval=timedelta(hours=1),  # the pods' workflows are not real ones here
    )
    admission = BudgetLedgerClient(client, name, rules)
    yield {"client": client, "task_queue": task_queue, "name": name, "admission": admission}


async def test_gauges_follow_the_ledger_summary(ledger: dict[str, Any]) -> None:
    client, admission = ledger["client"], ledger["admission"]
    async with ledger_worker(client, ledger["task_queue"]):
        pods = [
            Claim(
                pod="pod/ml/a/1",
                namespace="ml",
                team="vision",
                instance_type="g5.xlarge",
                hourly_price=Decimal(360),
            ),
            Claim(
                pod="pod/ml/b/2",
                namespace="ml",
                instance_type="g5.xlarge",
                hourly_price=Decimal(360),
            ),
            Claim(
                pod="pod/nlp/c/3",
                namespace="nlp",
                instance_type="m5.large",
                hourly_price=Decimal(1),
            ),
        ]
        for claim in pods:
            await admission.admit(claim)
        await admission.record_launch("pod/ml/a/1", "i-a")
        await admission.record_launch("pod/ml/b/2", "i-b")
        await asyncio.sleep(1)
        gauges = LedgerMetrics(client, ledger["name"])
        assert await gauges.refresh() == "ok"

        assert sample("orca_running_instances", instance_type="g5.xlarge", namespace="ml") == 2
        assert sample("orca_hourly_cost_dollars") == 720
        assert sample("orca_launches_held") == 1  # nlp/c: the cluster's 2 instances are taken
        limit = sample("orca_budget_limit", budget=INSTANCES.setting, scope="cluster")
        assert (limit, sample("orca_budget_used", budget=INSTANCES.setting, scope="cluster")) == (
            2,
            2,
        )
        spent_ml = sample("orca_budget_used", budget=ML_DAILY.setting, scope="ml")
        # Two $0.10/s instances for about a second.
        assert (spent_ml or 0) > 0.1
        assert (sample("orca_spend_dollars", period="day") or 0) >= (spent_ml or 0)
        vision = sample("orca_pod_cost_dollars", namespace="ml", team="vision", period="day")
        no_team = sample("orca_pod_cost_dollars", namespace="ml", team="-", period="month")
        assert (vision or 0) > 0
        assert (no_team or 0) > 0

        # a and b end: no stale running series, and the held pod is admitted.
        await admission.release("pod/ml/a/1")
        await admission.release("pod/ml/b/2")
        assert await gauges.refresh() == "ok"
        assert sample("orca_running_instances", instance_type="g5.xlarge", namespace="ml") is None
        assert sample("orca_launches_held") == 0
        assert sample("orca_hourly_cost_dollars") == 0
        # Released pods' spend still counts for the day.
        assert (
            sample("orca_pod_cost_dollars", namespace="ml", team="vision", period="day") or 0
        ) > 0


async def test_a_missing_or_silent_ledger_is_logged_once_and_retried(
    ledger: dict[str, Any],
) -> None:
    client, admission = ledger["client"], ledger["admission"]
    gauges = LedgerMetrics(
        client,
        ledger["name"],
        interval=timedelta(milliseconds=100),
        rpc_timeout=timedelta(seconds=1),
    )
    ok_before = sample("orca_ledger_reads_total", outcome="ok") or 0
    with capture_logs() as logs:
        assert await gauges.refresh() == "no-ledger"
        assert await gauges.refresh() == "no-ledger"
        async with ledger_worker(client, ledger["task_queue"]):
            await admission.admit(Claim(pod="pod/ml/a/1", namespace="ml", instance_type="m5.large"))
            assert await gauges.refresh() == "ok"
        # The ledger's only worker is gone: queries go unanswered.
        assert await gauges.refresh() == "failed"
        assert await gauges.refresh() == "failed"
        async with ledger_worker(client, ledger["task_queue"]):
            stop = asyncio.Event()
            refreshing = asyncio.create_task(gauges.run(stop))
            for _ in range(300):
                if (sample("orca_ledger_reads_total", outcome="ok") or 0) >= ok_before + 2:
                    break
                await asyncio.sleep(0.1)
            stop.set()
            await asyncio.wait_for(refreshing, timeout=15)
    events = [entry["event"] for entry in logs]
    assert events.count("no budget ledger yet; ledger metrics wait for the first launch") == 1
    failures = [e for e in logs if e["event"].startswith("cannot read the budget ledger")]
    assert len(failures) == 1
    assert failures[0]["log_level"] == "warning"
    assert events.count("budget ledger metrics are current again") == 2
    assert (sample("orca_ledger_reads_total", outcome="ok") or 0) >= ok_before + 2
    assert sample("orca_running_instances", instance_type="m5.large", namespace="ml") is None
