"""Admission of launches through the cluster's `BudgetLedger` workflow.

`BudgetLedgerClient` is what the launch and terminate activities use: `admit` before
RunInstances, `record_launch` once EC2 answered with an instance, `release` when the pod's
instances are terminated. The worker's questions queue up and go to the ledger as batches, one
update in flight at a time (`BudgetLedger.apply`; update-with-start when it reserves, so the
first launch of a cluster starts its ledger). The ledger is the only place that decides; this
client only carries the worker's configured rules (`rules_from_settings`) with each batch.

`LedgerUpkeepActivities.ledger_running_pods` is the ledger's own activity: which of its pods'
workflows still run (one visibility query per hundred pods), so it can release the rest.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol, TypeVar

import structlog
from temporalio import activity
from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from orca.budgets import Claim, budgets_from
from orca.selection import Offering
from orca.settings import Settings
from orca.workflows.budget_ledger import BudgetLedger
from orca.workflows.ledger_models import (
    Admission,
    LaunchRecord,
    LedgerBatch,
    LedgerBatchResult,
    LedgerRules,
    LedgerState,
    OfferingMark,
    ledger_workflow_id,
)

T = TypeVar("T")
log = structlog.get_logger(__name__)

RUNNING_QUERY_CHUNK = 100
LEDGER_RPC_TIMEOUT = timedelta(seconds=30)
MAX_BATCH = 500
"""At most this many questions in one update (keeps each update's payload well under 2 MB)."""
BUSY_STATUSES = frozenset({RPCStatusCode.RESOURCE_EXHAUSTED, RPCStatusCode.UNAVAILABLE})
"""The ledger is busy, not wrong: Temporal allows 10 in-flight updates per workflow
(`history.maxInFlightUpdates`; RESOURCE_EXHAUSTED past it) and aborts in-flight updates when it
reloads the workflow (UNAVAILABLE "workflow update was aborted"). Every ledger question is
idempotent per pod, so these are retried here, at once and jittered, instead of failing the
activity into its retry backoff."""
BUSY_RETRY_FOR = timedelta(seconds=60)


async def _while_busy(call: Callable[[], Awaitable[T]]) -> T:
    deadline = time.monotonic() + BUSY_RETRY_FOR.total_seconds()
    delay = 0.05
    while True:
        try:
            return await call()
        except RPCError as error:
            if error.status not in BUSY_STATUSES or time.monotonic() > deadline:
                raise
        # Jitter, not security: bandit's B311 does not apply.
        await asyncio.sleep(random.uniform(0, delay))  # nosec B311
        delay = min(delay * 2, 2.0)


def _log_lost_note(answer: asyncio.Future[Any]) -> None:
    if not answer.cancelled() and answer.exception() is not None:
        log.info(
            "a launch record did not reach the ledger; wait_until_running sends it again",
            error=str(answer.exception()),
        )


def rules_from_settings(settings: Settings) -> LedgerRules:
    limits = settings.limits
    return LedgerRules(
        budgets=budgets_from(
            limits,
            max_concurrent_gpus=limits.max_concurrent_gpus,
            max_hourly_cost=limits.max_hourly_cost,
        ),
        minimum_runtime=limits.minimum_runtime,
        accrual_interval=limits.accrual_interval,
        upkeep_interval=limits.ledger_upkeep_interval,
        task_queue=settings.temporal.task_queue,
        enforcement=limits.enforcement,
        warning_threshold=limits.warning_threshold,
    )


class LaunchAdmission(Protocol):
    """What the launch and terminate activities ask before and after a launch."""

    async def admit(self, claim: Claim) -> Admission: ...

    def note_launch(self, pod: str, instance_id: str) -> None:
        """Queue the launch record without waiting for the ledger's answer (the launch path
        does not wait; `record_launch` from `wait_until_running` makes it durable)."""

    async def record_launch(
        self, pod: str, instance_id: str, launched_at: datetime | None = None
    ) -> None: ...

    async def release(self, pod: str) -> Decimal: ...

    async def offering_unavailable(self, offering: Offering) -> None: ...


class NoAdmission:
    """`limits.ledger: false`: every launch is admitted and nothing is counted (the worker
    warns at start when limits or budgets are set, since none of them is then enforced)."""

    async def admit(self, claim: Claim) -> Admission:
        return Admission(admitted=True)

    def note_launch(self, pod: str, instance_id: str) -> None:
        return None

    async def record_launch(
        self, pod: str, instance_id: str, launched_at: datetime | None = None
    ) -> None:
        return None

    async def release(self, pod: str) -> Decimal:
        return Decimal(0)

    async def offering_unavailable(self, offering: Offering) -> None:
        return None


@dataclass
class _Request:
    """One activity's question, waiting in the worker's queue for the next batch."""

    reserve: Claim | None = None
    launched: LaunchRecord | None = None
    release: str | None = None
    answer: asyncio.Future[Any] | None = None


class BudgetLedgerClient:
    def __init__(
        self,
        client: Client,
        cluster_name: str,
        rules: LedgerRules,
        offering_ttl: timedelta = timedelta(minutes=3),
        workflow_task_queue: str | None = None,
    ) -> None:
        """`workflow_task_queue`: where a ledger this client starts runs its workflow tasks
        (the worker gives it `ledger_task_queue`); by default the rules' `task_queue`."""
        self._client = client
        self._rules = rules
        self._workflow_task_queue = workflow_task_queue or rules.task_queue
        self._offering_ttl = offering_ttl
        self.workflow_id = ledger_workflow_id(cluster_name)
        self._queue: list[_Request] = []
        self._sender: asyncio.Task[None] | None = None

    async def admit(self, claim: Claim) -> Admission:
        admission: Admission = await self._submit(_Request(reserve=claim))
        return admission

    def note_launch(self, pod: str, instance_id: str) -> None:
        """The launch record goes with the next batch; the launch does not wait for it.

        It saves the launch path one ledger round trip. A record lost with its worker (killed
        before the batch went) is made good by `record_launch` in `wait_until_running`, which
        the workflow always runs next; the ledger ignores the second record of a launch."""
        record = LaunchRecord(pod=pod, instance_id=instance_id, launched_at=datetime.now(UTC))
        answer = self._enqueue(_Request(launched=record))
        answer.add_done_callback(_log_lost_note)

    async def record_launch(
        self, pod: str, instance_id: str, launched_at: datetime | None = None
    ) -> None:
        record = LaunchRecord(pod=pod, instance_id=instance_id, launched_at=launched_at)
        await self._submit(_Request(launched=record))

    async def release(self, pod: str) -> Decimal:
        """Release the pod's claim (the dollars its instance cost); 0 without a ledger."""
        cost: Decimal = await self._submit(_Request(release=pod))
        return cost

    async def _submit(self, request: _Request) -> Any:
        return await self._enqueue(request)

    def _enqueue(self, request: _Request) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Any] = loop.create_future()
        request.answer = answer
        self._queue.append(request)
        if self._sender is None or self._sender.done():
            self._sender = loop.create_task(self._send_queued())
        return answer

    async def _send_queued(self) -> None:
        """One update in flight per worker, carrying everything queued meanwhile."""
        while self._queue:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            try:
                result = await _while_busy(functools.partial(self._send, batch))
            except Exception as error:
                for request in batch:
                    if request.answer is not None and not request.answer.done():
                        request.answer.set_exception(error)
                continue
            admissions, costs = iter(result.admissions), iter(result.costs)
            for request in batch:
                answer: Any = None
                if request.reserve is not None:
                    answer = next(admissions)
                elif request.release is not None:
                    answer = next(costs)
                if request.answer is not None and not request.answer.done():
                    request.answer.set_result(answer)

    async def _send(self, batch: list[_Request]) -> LedgerBatchResult:
        update = LedgerBatch(
            rules=self._rules,
            reserve=[r.reserve for r in batch if r.reserve is not None],
            launched=[r.launched for r in batch if r.launched is not None],
            release=[r.release for r in batch if r.release is not None],
        )
        if update.reserve:
            start = WithStartWorkflowOperation(  # one operation per call: not reusable
                BudgetLedger.run,
                LedgerState(rules=self._rules),
                id=self.workflow_id,
                task_queue=self._workflow_task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            )
            started: LedgerBatchResult = await self._client.execute_update_with_start_workflow(
                BudgetLedger.apply,
                update,
                start_workflow_operation=start,
                rpc_timeout=LEDGER_RPC_TIMEOUT,
            )
            return started
        handle = self._client.get_workflow_handle_for(BudgetLedger.run, self.workflow_id)
        try:
            result: LedgerBatchResult = await handle.execute_update(
                BudgetLedger.apply, update, rpc_timeout=LEDGER_RPC_TIMEOUT
            )
        except RPCError as error:
            if error.status is not RPCStatusCode.NOT_FOUND:
                raise
            # No ledger yet: nothing was reserved, so nothing is released or billed.
            return LedgerBatchResult(admissions=[], costs=[Decimal(0)] * len(update.release))
        return result

    async def offering_unavailable(self, offering: Offering) -> None:
        """Tell every worker (through the ledger) that `offering` just ran out of capacity."""
        handle = self._client.get_workflow_handle_for(BudgetLedger.run, self.workflow_id)
        until = datetime.now(UTC) + self._offering_ttl
        try:
            await handle.signal(
                BudgetLedger.offering_unavailable,
                OfferingMark(offering=offering, until=until),
                rpc_timeout=LEDGER_RPC_TIMEOUT,
            )
        except RPCError as error:
            # Only a hint for other workers' plans: never worth failing a launch over.
            activity.logger.info("could not share an unavailable offering: %s", error.message)

    async def unavailable_offerings(self) -> list[OfferingMark]:
        handle = self._client.get_workflow_handle_for(BudgetLedger.run, self.workflow_id)
        marks: list[OfferingMark] = await handle.query(
            BudgetLedger.unavailable_offerings, rpc_timeout=LEDGER_RPC_TIMEOUT
        )
        return marks


def running_query(workflow_ids: Sequence[str]) -> str:
    quoted = ", ".join(f'"{workflow_id}"' for workflow_id in workflow_ids)
    return f'WorkflowId IN ({quoted}) AND ExecutionStatus="Running"'


class LedgerUpkeepActivities:
    def __init__(self, client: Client) -> None:
        self._client = client

    @activity.defn(name="ledger_running_pods")
    async def ledger_running_pods(self, pods: list[str]) -> list[str]:
        running: list[str] = []
        for start in range(0, len(pods), RUNNING_QUERY_CHUNK):
            chunk = pods[start : start + RUNNING_QUERY_CHUNK]
            async for execution in self._client.list_workflows(running_query(chunk)):
                running.append(execution.id)
            activity.heartbeat(start)
        return running
