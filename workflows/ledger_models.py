"""What travels to and from the `BudgetLedger` workflow: update arguments, results, queries and
its carried state. Pure pydantic models, imported through the workflow sandbox."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from pydantic import BaseModel, Field

from orca.budgets import Budget, Claim, Hold, SpendBook
from orca.selection import Offering
from orca.settings import BudgetEnforcement

LEDGER_WORKFLOW = "BudgetLedger"
LEDGER_ID_PREFIX = "orca-ledger/"
LAUNCH_ADMITTED_SIGNAL = "launch_admitted"
"""The ledger to a waiting pod's workflow: your claim is admitted now, ask again."""
BUDGET_EXHAUSTED_SIGNAL = "budget_exhausted"
"""The ledger to a running pod's workflow (`enforcement: stop`): stop, the budget is spent."""


def ledger_workflow_id(cluster_name: str) -> str:
    """One ledger per cluster: every worker of the cluster admits through the same one."""
    return f"{LEDGER_ID_PREFIX}{cluster_name}"


def ledger_task_queue(task_queue: str) -> str:
    """Where the ledger's workflow tasks go: a queue of its own beside the pods' `task_queue`.

    Every launch waits for a ledger update, and each update needs one ledger workflow task. On
    the pods' queue (and on the worker's sticky queue the pods share) that task waits behind
    the burst's own workflow tasks; on its own queue, polled by a worker of its own in each
    worker process, it does not. The ledger's activities still run on `task_queue`. A ledger
    started before this queue existed keeps its queue: the pods' worker still hosts it."""
    return f"{task_queue}-ledger"


class LedgerRules(BaseModel):
    """The budgets as the worker that last spoke to the ledger has them configured.

    Every reservation carries them, so a changed config reaches the ledger with the first launch
    a restarted worker asks for; the ledger keeps the latest."""

    budgets: list[Budget] = Field(default_factory=list)
    minimum_runtime: timedelta = timedelta(hours=1)
    accrual_interval: timedelta = timedelta(minutes=1)
    upkeep_interval: timedelta = timedelta(minutes=2)
    task_queue: str = ""
    """Where the ledger's own activities (the stale-claim check, pod events) run."""
    enforcement: BudgetEnforcement = BudgetEnforcement.HOLD
    warning_threshold: float = 0.8


class Admission(BaseModel):
    """The answer to a reservation: admitted, or held with the reason (and the queue position)."""

    admitted: bool
    hold: Hold | None = None
    position: int | None = Field(default=None, description="1 is next in line")

    @property
    def message(self) -> str:
        if self.admitted or self.hold is None:
            return "admitted by the budget ledger"
        return self.hold.message


class LaunchRecord(BaseModel):
    pod: str
    instance_id: str
    launched_at: datetime | None = None
    """When RunInstances answered, by the worker's clock (accrual starts there, never later
    than the ledger's now); absent: when the ledger took the record."""


class LedgerBatch(BaseModel):
    """Everything one worker's activities asked since its last update."""

    rules: LedgerRules
    reserve: list[Claim] = Field(default_factory=list)
    launched: list[LaunchRecord] = Field(default_factory=list)
    release: list[str] = Field(default_factory=list)


class LedgerBatchResult(BaseModel):
    admissions: list[Admission]
    """One per reservation, in order."""
    costs: list[Decimal]
    """One per release, in order: the dollars the pod's instance cost."""


class OfferingMark(BaseModel):
    """An offering that ran out of capacity in some worker, unavailable until `until`."""

    offering: Offering
    until: datetime


class AdmittedClaim(BaseModel):
    claim: Claim
    admitted_at: datetime
    launched_at: datetime | None = None
    """When RunInstances answered; spend accrues from here."""
    instance_id: str | None = None
    accrued_until: datetime | None = None
    cost: Decimal = Decimal(0)


class PodCost(BaseModel):
    """A released pod's instance time and dollars, kept for `orca usage`."""

    pod: str
    namespace: str
    team: str | None
    instance_type: str
    started: datetime
    ended: datetime
    cost: Decimal
    running: bool = False
    """Still running: `ended` is the time of the summary."""
    hourly_price: Decimal = Decimal(0)
    capacity_type: str | None = None


class LedgerState(BaseModel):
    """Everything the ledger carries across continue-as-new."""

    rules: LedgerRules = Field(default_factory=LedgerRules)
    admitted: dict[str, AdmittedClaim] = Field(default_factory=dict)
    waiting: list[Claim] = Field(default_factory=list)
    spend: SpendBook = Field(default_factory=SpendBook)
    released: list[PodCost] = Field(default_factory=list)
    unavailable: list[OfferingMark] = Field(default_factory=list)
    notified: dict[str, str] = Field(default_factory=dict)
    """`<setting>|<scope>|<period>` → the last level announced (`warning`, `exhausted`)."""


class BudgetUse(BaseModel):
    setting: str
    scope: str
    used: Decimal
    limit: Decimal


class LedgerSummary(BaseModel):
    """The `summary` query: what `orca usage` and the metrics read."""

    admitted: int
    launched: int
    waiting: list[str]
    holds: dict[str, str]
    hourly_cost: Decimal
    spent_today: Decimal
    spent_this_month: Decimal
    budgets: list[BudgetUse]
    pods: list[PodCost]
    """Released pods and, with `ended` = now, the running ones: cost so far per pod."""
