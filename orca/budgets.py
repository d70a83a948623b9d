"""The budget rules of the fleet-wide ledger, as plain functions: no I/O, no clock, no Temporal.

The ledger (one Temporal workflow per cluster) keeps the state — the claims it has admitted, the
claims waiting in submission order, the spend accrued so far — and asks these functions what to
do with it. Keeping the rules here keeps them testable without a server and keeps the workflow
deterministic: every input (the time included) is passed in.

Vocabulary:
- a **budget** is one configured limit on one scope: the cluster, one namespace, or each
  namespace separately (`limits.maxInstancesPerNamespace`); it names the setting it comes from,
  so a held pod's event says which line of the config holds it;
- a **claim** is one pod's request for one instance: its namespace, team, GPUs and hourly price;
- a **hold** is why a claim may not launch now: the budget, what is used and the limit.

Admission is in submission order per budget (`admit_in_order`): once a claim is held by a
budget, later claims that the same budget covers wait behind it even if they are smaller, so a
large pod is not starved by a stream of small ones. Claims that the held budget does not cover
go ahead.

Dollar budgets (`dailyBudget`, `monthlyBudget`) compare spend accrued so far in the current UTC
day or month (`SpendBook`) with the limit; a new launch is held when what is left cannot pay for
`minimum_runtime` of it at its hourly price.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from orca.settings import LimitsSettings

_HOUR = Decimal(3600)
CENT = Decimal("0.01")


class BudgetKind(StrEnum):
    INSTANCES = "instances"
    GPUS = "gpus"
    HOURLY_COST = "hourlyCost"
    DAILY_SPEND = "dailySpend"
    MONTHLY_SPEND = "monthlySpend"

    @property
    def is_dollars(self) -> bool:
        return self in (BudgetKind.HOURLY_COST, BudgetKind.DAILY_SPEND, BudgetKind.MONTHLY_SPEND)

    @property
    def is_spend(self) -> bool:
        return self in (BudgetKind.DAILY_SPEND, BudgetKind.MONTHLY_SPEND)


class Budget(BaseModel):
    """One limit on one scope. `namespace` None with `each_namespace` False is the cluster."""

    model_config = ConfigDict(frozen=True)

    setting: str
    kind: BudgetKind
    limit: Decimal
    namespace: str | None = None
    each_namespace: bool = False

    def covers(self, namespace: str) -> bool:
        return self.each_namespace or self.namespace is None or self.namespace == namespace

    def scope_of(self, namespace: str) -> str | None:
        """The namespace whose usage counts against this budget for a claim in `namespace`
        (None: the whole cluster)."""
        return namespace if self.each_namespace else self.namespace

    def key(self, namespace: str) -> tuple[str, str | None]:
        return (self.setting, self.scope_of(namespace))


class Claim(BaseModel):
    """One pod's request for one instance, as the ledger admits and later releases it."""

    model_config = ConfigDict(frozen=True)

    pod: str = Field(description="the pod's workflow ID: one claim per pod at a time")
    namespace: str
    team: str | None = None
    instance_type: str
    gpus: int = Field(default=0, ge=0)
    hourly_price: Decimal = Field(default=Decimal(0), ge=0)
    capacity_type: str | None = None
    """`spot` or `on-demand`, for reports."""
    zone: str | None = None
    """Where it launches: a spot instance accrues at its zone's spot price over time."""


class Hold(BaseModel):
    """Why a claim may not launch now."""

    model_config = ConfigDict(frozen=True)

    setting: str
    kind: BudgetKind
    used: Decimal
    limit: Decimal
    behind: str | None = Field(default=None, description="the earlier held pod it waits behind")
    never_fits: bool = Field(default=False, description="too large for the budget even alone")

    @property
    def message(self) -> str:
        used, limit = _show(self.kind, self.used), _show(self.kind, self.limit)
        if self.never_fits:
            return (
                f"{self.setting} ({limit}) is too small for this pod even with nothing else running"
            )
        if self.behind is not None:
            return (
                f"{self.setting} ({limit}) holds an earlier pod ({self.behind}); "
                "launches are admitted in submission order"
            )
        if self.kind.is_spend:
            return f"{self.setting} ({limit}): {used} spent, not enough left to run this pod"
        return f"{self.setting} ({limit}) would be exceeded: {used} in use"


def _show(kind: BudgetKind, value: Decimal) -> str:
    if kind.is_dollars:
        return f"${value.quantize(CENT)}"
    return str(value.normalize().to_integral_value())


def budgets_from(
    limits: LimitsSettings, *, max_concurrent_gpus: int = 0, max_hourly_cost: Decimal = Decimal(0)
) -> list[Budget]:
    """Every budget the settings set (zero means unlimited, as in the Go ORCA)."""
    budgets: list[Budget] = []

    def add(
        setting: str,
        kind: BudgetKind,
        limit: Decimal | int | None,
        namespace: str | None = None,
        each_namespace: bool = False,
    ) -> None:
        if limit:
            budget = Budget(
                setting=setting,
                kind=kind,
                limit=Decimal(limit),
                namespace=namespace,
                each_namespace=each_namespace,
            )
            budgets.append(budget)

    add("limits.maxConcurrentInstances", BudgetKind.INSTANCES, limits.max_concurrent_instances)
    add("limits.maxConcurrentGPUs", BudgetKind.GPUS, max_concurrent_gpus)
    add("limits.maxHourlyCost", BudgetKind.HOURLY_COST, max_hourly_cost)
    add("limits.dailyBudget", BudgetKind.DAILY_SPEND, limits.daily_budget)
    add("limits.monthlyBudget", BudgetKind.MONTHLY_SPEND, limits.monthly_budget)
    add(
        "limits.maxInstancesPerNamespace",
        BudgetKind.INSTANCES,
        limits.max_instances_per_namespace,
        each_namespace=True,
    )
    for namespace, quota in sorted(limits.namespace_quotas.items()):
        prefix = f"limits.namespaceQuotas.{namespace}"
        if quota.max_instances is not None:
            # An explicit 0 here means "none", unlike the cluster-wide zero.
            budgets.append(
                Budget(
                    setting=f"{prefix}.maxInstances",
                    kind=BudgetKind.INSTANCES,
                    limit=Decimal(quota.max_instances),
                    namespace=namespace,
                )
            )
        if quota.max_gpus is not None:
            budgets.append(
                Budget(
                    setting=f"{prefix}.maxGPUs",
                    kind=BudgetKind.GPUS,
                    limit=Decimal(quota.max_gpus),
                    namespace=namespace,
                )
            )
        add(
            f"{prefix}.dailyBudget", BudgetKind.DAILY_SPEND, quota.daily_budget, namespace=namespace
        )
    return budgets


class SpendBook(BaseModel):
    """Dollars accrued per (namespace, team, UTC day). Months are sums of their days.

    Keys are strings so the book is JSON as it travels through Temporal (a continue-as-new
    argument): `<namespace>|<team>|<YYYY-MM-DD>`, the team empty when there is none.
    """

    days: dict[str, Decimal] = Field(default_factory=dict)

    def add(self, namespace: str, team: str | None, day: str, dollars: Decimal) -> None:
        key = f"{namespace}|{team or ''}|{day}"
        self.days[key] = self.days.get(key, Decimal(0)) + dollars

    def entries(self) -> Iterable[tuple[str, str | None, str, Decimal]]:
        for key, dollars in self.days.items():
            namespace, team, day = key.split("|")
            yield namespace, team or None, day, dollars

    def spent(self, namespace: str | None, period: str) -> Decimal:
        """Spend in one namespace (None: all) on days starting with `period` (a day or month)."""
        return sum(
            (
                dollars
                for ns, _team, day, dollars in self.entries()
                if day.startswith(period) and (namespace is None or ns == namespace)
            ),
            Decimal(0),
        )

    def forget_before(self, day: str) -> None:
        """Drop days before `day` (kept bounded; the month so far is all the rules need)."""
        self.days = {k: v for k, v in self.days.items() if k.rsplit("|", 1)[1] >= day}


def day_of(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d")


def month_of(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m")


def accrual_pieces(
    start: datetime, end: datetime, hourly_price: Decimal
) -> list[tuple[str, Decimal]]:
    """The dollars `hourly_price` costs from `start` to `end`, split at UTC midnights, per day."""
    pieces: list[tuple[str, Decimal]] = []
    moment = start.astimezone(UTC)
    end = end.astimezone(UTC)
    while moment < end:
        midnight = datetime(moment.year, moment.month, moment.day, tzinfo=UTC) + timedelta(days=1)
        piece_end = min(midnight, end)
        seconds = Decimal(str((piece_end - moment).total_seconds()))
        pieces.append((day_of(moment), hourly_price * seconds / _HOUR))
        moment = piece_end
    return pieces


def usage(budget: Budget, namespace: str, claims: Iterable[Claim]) -> Decimal:
    """What the claims use of a concurrent budget (instances, GPUs or hourly cost) for a claim
    in `namespace`."""
    scope = budget.scope_of(namespace)
    counted = [c for c in claims if scope is None or c.namespace == scope]
    if budget.kind is BudgetKind.INSTANCES:
        return Decimal(len(counted))
    if budget.kind is BudgetKind.GPUS:
        return Decimal(sum(c.gpus for c in counted))
    return sum((c.hourly_price for c in counted), Decimal(0))


def hold_for(
    claim: Claim,
    admitted: Sequence[Claim],
    spend: SpendBook,
    budgets: Sequence[Budget],
    now: datetime,
    minimum_runtime: timedelta,
) -> Hold | None:
    """The first budget that `claim` would break given the `admitted` claims, or None."""
    for budget in budgets:
        if not budget.covers(claim.namespace):
            continue
        if budget.kind.is_spend:
            period = day_of(now) if budget.kind is BudgetKind.DAILY_SPEND else month_of(now)
            spent = spend.spent(budget.scope_of(claim.namespace), period)
            hours = Decimal(str(minimum_runtime.total_seconds())) / _HOUR
            if spent + claim.hourly_price * hours > budget.limit or spent >= budget.limit:
                return Hold(
                    setting=budget.setting, kind=budget.kind, used=spent, limit=budget.limit
                )
            continue
        used = usage(budget, claim.namespace, admitted)
        wanted = {
            BudgetKind.INSTANCES: Decimal(1),
            BudgetKind.GPUS: Decimal(claim.gpus),
            BudgetKind.HOURLY_COST: claim.hourly_price,
        }[budget.kind]
        if wanted and used + wanted > budget.limit:
            return Hold(setting=budget.setting, kind=budget.kind, used=used, limit=budget.limit)
    return None


def admit_in_order(
    waiting: Sequence[Claim],
    admitted: Sequence[Claim],
    spend: SpendBook,
    budgets: Sequence[Budget],
    now: datetime,
    minimum_runtime: timedelta,
) -> tuple[list[Claim], dict[str, Hold]]:
    """Which of the `waiting` claims (in submission order) launch now, and why the rest wait."""
    newly: list[Claim] = []
    held: dict[str, Hold] = {}
    first_held: dict[tuple[str, str | None], tuple[str, Hold]] = {}
    for claim in waiting:
        ahead = next(
            (
                first_held[budget.key(claim.namespace)]
                for budget in budgets
                if budget.covers(claim.namespace) and budget.key(claim.namespace) in first_held
            ),
            None,
        )
        if ahead is not None:
            first_pod, first_hold = ahead
            held[claim.pod] = first_hold.model_copy(update={"behind": first_pod})
            continue
        hold = hold_for(claim, [*admitted, *newly], spend, budgets, now, minimum_runtime)
        if hold is None:
            newly.append(claim)
            continue
        alone = hold_for(claim, [], SpendBook(), budgets, now, minimum_runtime)
        if alone is not None:
            # It would not fit in an empty cluster: it waits (a config change may let it in)
            # but does not hold back the pods behind it.
            held[claim.pod] = alone.model_copy(update={"never_fits": True})
            continue
        held[claim.pod] = hold
        budget = next(b for b in budgets if b.setting == hold.setting and b.covers(claim.namespace))
        first_held[budget.key(claim.namespace)] = (claim.pod, hold)
    return newly, held


class SpendLevel(StrEnum):
    WARNING = "warning"
    EXHAUSTED = "exhausted"


class SpendAnnouncement(BaseModel):
    """A dollar budget crossed its warning threshold or was spent, in one scope and period."""

    model_config = ConfigDict(frozen=True)

    key: str
    level: SpendLevel
    setting: str
    namespace: str | None
    spent: Decimal
    limit: Decimal

    def covers(self, namespace: str) -> bool:
        return self.namespace is None or self.namespace == namespace

    @property
    def message(self) -> str:
        spent, limit = f"${self.spent.quantize(CENT)}", f"${self.limit.quantize(CENT)}"
        share = int(self.spent * 100 / self.limit) if self.limit else 100
        if self.level is SpendLevel.WARNING:
            return f"{self.setting} ({limit}) is {share} % spent ({spent})"
        return f"{self.setting} ({limit}) is spent ({spent}); new launches are held"


def spend_announcements(
    budgets: Sequence[Budget],
    spend: SpendBook,
    namespaces: Iterable[str],
    now: datetime,
    threshold: float,
    announced: dict[str, str],
) -> list[SpendAnnouncement]:
    """The dollar budgets that reached a level not yet announced for this period (pure).

    `namespaces` are those with running claims (for per-namespace budgets); `announced` maps
    each announcement key to the level last announced, so each level is announced once."""
    found: list[SpendAnnouncement] = []
    scopes = sorted(set(namespaces))
    for budget in budgets:
        if not budget.kind.is_spend or not budget.limit:
            continue
        period = day_of(now) if budget.kind is BudgetKind.DAILY_SPEND else month_of(now)
        for namespace in scopes if budget.each_namespace else [budget.namespace]:
            spent = spend.spent(namespace, period)
            if spent >= budget.limit:
                level = SpendLevel.EXHAUSTED
            elif spent >= budget.limit * Decimal(str(threshold)):
                level = SpendLevel.WARNING
            else:
                continue
            key = f"{budget.setting}|{namespace or ''}|{period}"
            before = announced.get(key)
            if before == level or before == SpendLevel.EXHAUSTED:
                continue
            found.append(
                SpendAnnouncement(
                    key=key,
                    level=level,
                    setting=budget.setting,
                    namespace=namespace,
                    spent=spent,
                    limit=budget.limit,
                )
            )
    return found
