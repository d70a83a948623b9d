"""The ledger's budget rules (orca.budgets), as plain functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from orca.budgets import (
    Budget,
    BudgetKind,
    Claim,
    SpendBook,
    SpendLevel,
    accrual_pieces,
    admit_in_order,
    budgets_from,
    hold_for,
    spend_announcements,
)
from orca.settings import LimitsSettings

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def claim(pod: str, namespace: str = "ml", gpus: int = 0, price: str = "0", **extra: str) -> Claim:
    return Claim(
        pod=pod,
        namespace=namespace,
        instance_type="p5.48xlarge" if gpus else "m5.large",
        gpus=gpus,
        hourly_price=Decimal(price),
        **extra,
    )


def limits(**values: object) -> LimitsSettings:
    return LimitsSettings.model_validate(
        {"maxConcurrentInstances": 0, "maxInstancesPerNamespace": 0, **values}
    )


def test_budgets_from_settings_name_each_setting_and_skip_zeros() -> None:
    budgets = budgets_from(
        limits(
            maxConcurrentInstances=5,
            dailyBudget="100",
            namespaceQuotas={"ml": {"maxGPUs": 8, "maxInstances": 0}},
        ),
        max_hourly_cost=Decimal("250"),
    )
    assert [(b.setting, b.kind, b.limit) for b in budgets] == [
        ("limits.maxConcurrentInstances", BudgetKind.INSTANCES, Decimal(5)),
        ("limits.maxHourlyCost", BudgetKind.HOURLY_COST, Decimal(250)),
        ("limits.dailyBudget", BudgetKind.DAILY_SPEND, Decimal(100)),
        # An explicit zero in a namespace quota means none allowed, so it is kept.
        ("limits.namespaceQuotas.ml.maxInstances", BudgetKind.INSTANCES, Decimal(0)),
        ("limits.namespaceQuotas.ml.maxGPUs", BudgetKind.GPUS, Decimal(8)),
    ]


def test_instance_limit_holds_the_claim_that_would_exceed_it() -> None:
    budgets = budgets_from(limits(maxConcurrentInstances=2))
    admitted = [claim("a"), claim("b")]
    hold = hold_for(claim("c"), admitted, SpendBook(), budgets, NOW, HOUR)
    assert hold is not None
    assert hold.message == "limits.maxConcurrentInstances (2) would be exceeded: 2 in use"
    assert hold_for(claim("c"), admitted[:1], SpendBook(), budgets, NOW, HOUR) is None


def test_per_namespace_limit_counts_only_that_namespace() -> None:
    budgets = budgets_from(limits(maxInstancesPerNamespace=1))
    admitted = [claim("a", namespace="ml")]
    assert (
        hold_for(claim("b", namespace="vision"), admitted, SpendBook(), budgets, NOW, HOUR) is None
    )
    hold = hold_for(claim("b", namespace="ml"), admitted, SpendBook(), budgets, NOW, HOUR)
    assert hold is not None
    assert hold.setting == "limits.maxInstancesPerNamespace"


def test_gpu_quota_counts_gpus_and_ignores_cpu_pods() -> None:
    budgets = budgets_from(limits(namespaceQuotas={"ml": {"maxGPUs": 8}}))
    admitted = [claim("a", gpus=8)]
    assert hold_for(claim("cpu"), admitted, SpendBook(), budgets, NOW, HOUR) is None
    hold = hold_for(claim("gpu", gpus=1), admitted, SpendBook(), budgets, NOW, HOUR)
    assert hold is not None
    assert (hold.used, hold.limit) == (Decimal(8), Decimal(8))


def test_hourly_cost_is_the_sum_of_admitted_prices() -> None:
    budgets = budgets_from(limits(), max_hourly_cost=Decimal(100))
    admitted = [claim("a", price="55.04")]
    hold = hold_for(claim("b", price="55.04"), admitted, SpendBook(), budgets, NOW, HOUR)
    assert hold is not None
    assert hold.message == "limits.maxHourlyCost ($100.00) would be exceeded: $55.04 in use"
    assert hold_for(claim("b", price="44.96"), admitted, SpendBook(), budgets, NOW, HOUR) is None


def test_daily_budget_holds_when_what_is_left_cannot_pay_the_minimum_runtime() -> None:
    budgets = budgets_from(limits(dailyBudget="100"))
    spend = SpendBook()
    spend.add("ml", None, "2026-12-02", Decimal(90))
    spend.add("ml", None, "2026-12-01", Decimal(500))  # yesterday does not count
    assert hold_for(claim("a", price="9"), [], spend, budgets, NOW, HOUR) is None
    hold = hold_for(claim("a", price="11"), [], spend, budgets, NOW, HOUR)
    assert hold is not None
    assert (
        hold.message
        == "limits.dailyBudget ($100.00): $90.00 spent, not enough left to run this pod"
    )


def test_monthly_budget_sums_the_days_of_the_month_in_every_namespace() -> None:
    budgets = budgets_from(limits(monthlyBudget="1000"))
    spend = SpendBook()
    spend.add("ml", "vision", "2026-12-01", Decimal(600))
    spend.add("nlp", None, "2026-12-02", Decimal(400))
    spend.add("nlp", None, "2026-11-30", Decimal(400))
    hold = hold_for(claim("a", price="0.5"), [], spend, budgets, NOW, HOUR)
    assert hold is not None
    assert hold.used == Decimal(1000)


def test_namespace_daily_budget_counts_its_own_namespace() -> None:
    budgets = budgets_from(limits(namespaceQuotas={"ml": {"dailyBudget": "10"}}))
    spend = SpendBook()
    spend.add("vision", None, "2026-12-02", Decimal(50))
    assert hold_for(claim("a", price="5"), [], spend, budgets, NOW, HOUR) is None
    spend.add("ml", None, "2026-12-02", Decimal(8))
    assert hold_for(claim("a", price="5"), [], spend, budgets, NOW, HOUR) is not None


def test_admission_is_in_submission_order_so_a_large_pod_is_not_starved() -> None:
    budgets = budgets_from(limits(namespaceQuotas={"ml": {"maxGPUs": 8}}))
    admitted = [claim("running", gpus=4)]
    waiting = [
        claim("big", gpus=8),
        claim("small", gpus=1),
        claim("elsewhere", namespace="nlp", gpus=8),
    ]
    newly, held = admit_in_order(waiting, admitted, SpendBook(), budgets, NOW, HOUR)
    assert [c.pod for c in newly] == ["elsewhere"]
    assert held["big"].behind is None
    assert held["small"].behind == "big"
    assert "holds an earlier pod (big)" in held["small"].message
    # Once the running pod releases its GPUs, the big pod goes first and the small one still waits.
    newly, held = admit_in_order(waiting[:2], [], SpendBook(), budgets, NOW, HOUR)
    assert [c.pod for c in newly] == ["big"]
    assert set(held) == {"small"}


def test_admission_counts_claims_admitted_in_the_same_round() -> None:
    budgets = budgets_from(limits(maxConcurrentInstances=3))
    waiting = [claim(str(n)) for n in range(5)]
    newly, held = admit_in_order(waiting, [], SpendBook(), budgets, NOW, HOUR)
    assert [c.pod for c in newly] == ["0", "1", "2"]
    assert sorted(held) == ["3", "4"]


def test_accrual_splits_at_utc_midnight() -> None:
    start = datetime(2026, 12, 1, 23, 30, tzinfo=UTC)
    pieces = accrual_pieces(start, start + timedelta(hours=1, minutes=30), Decimal(10))
    assert pieces == [("2026-12-01", Decimal(5)), ("2026-12-02", Decimal(10))]
    assert accrual_pieces(start, start, Decimal(10)) == []


def test_spend_book_reports_by_team_and_forgets_old_days() -> None:
    spend = SpendBook()
    spend.add("ml", "vision", "2026-11-01", Decimal(3))
    spend.add("ml", "vision", "2026-12-01", Decimal(2))
    spend.add("ml", None, "2026-12-01", Decimal(1))
    assert spend.spent("ml", "2026-12") == Decimal(3)
    spend.forget_before("2026-12-01")
    assert sorted(spend.entries(), key=str) == [
        ("ml", "vision", "2026-12-01", Decimal(2)),
        ("ml", None, "2026-12-01", Decimal(1)),
    ]


@pytest.mark.parametrize("namespace", ["ml", "other"])
def test_cluster_budget_covers_every_namespace(namespace: str) -> None:
    budget = Budget(
        setting="limits.maxConcurrentInstances", kind=BudgetKind.INSTANCES, limit=Decimal(1)
    )
    assert budget.covers(namespace)
    assert budget.scope_of(namespace) is None


def test_a_claim_that_never_fits_does_not_hold_back_the_queue() -> None:
    budgets = budgets_from(limits(maxConcurrentGPUs=0, dailyBudget="100"))
    waiting = [claim("huge", price="150"), claim("small", price="10")]
    newly, held = admit_in_order(waiting, [], SpendBook(), budgets, NOW, HOUR)
    assert [c.pod for c in newly] == ["small"]
    assert held["huge"].never_fits
    assert "too small for this pod even with nothing else running" in held["huge"].message


def test_spend_announcements_warn_then_exhaust_once_each() -> None:
    budgets = budgets_from(limits(dailyBudget="100", namespaceQuotas={"ml": {"dailyBudget": "10"}}))
    spend = SpendBook()
    spend.add("ml", None, "2026-12-02", Decimal(9))
    spend.add("nlp", None, "2026-12-02", Decimal(75))
    announced: dict[str, str] = {}
    first = spend_announcements(budgets, spend, ["ml", "nlp"], NOW, 0.8, announced)
    assert [(a.setting, a.level) for a in first] == [
        ("limits.dailyBudget", SpendLevel.WARNING),
        ("limits.namespaceQuotas.ml.dailyBudget", SpendLevel.WARNING),
    ]
    assert first[0].message == "limits.dailyBudget ($100.00) is 84 % spent ($84.00)"
    assert first[1].covers("ml")
    assert not first[1].covers("nlp")
    announced.update({a.key: a.level for a in first})
    assert spend_announcements(budgets, spend, ["ml"], NOW, 0.8, announced) == []
    spend.add("ml", None, "2026-12-02", Decimal(1))
    exhausted = spend_announcements(budgets, spend, ["ml"], NOW, 0.8, announced)
    assert [(a.setting, a.level) for a in exhausted] == [
        ("limits.namespaceQuotas.ml.dailyBudget", SpendLevel.EXHAUSTED)
    ]
    assert "is spent ($10.00); new launches are held" in exhausted[0].message
    # The next day starts afresh.
    tomorrow = NOW + timedelta(days=1)
    assert spend_announcements(budgets, spend, ["ml"], tomorrow, 0.8, announced) == []
