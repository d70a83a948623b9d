"""The usage aggregation of `orca usage`, `orca status` and the ledger metrics: clipping to a
window, grouping, totals, the running pods of a summary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from orca.usage_report import (
    UsageDimension,
    clipped,
    cost_by_pod,
    cost_by_scope,
    day_window,
    month_window,
    running_instances,
    running_pods,
    total,
    usage_rows,
)
from orca.workflows.ledger_models import LedgerSummary, PodCost

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def pod(
    name: str,
    hours_ago: float,
    hours: float,
    dollars: str,
    namespace: str = "ml",
    team: str | None = None,
    instance_type: str = "g5.xlarge",
) -> PodCost:
    started = NOW - timedelta(hours=hours_ago)
    return PodCost(
        pod=f"pod/{namespace}/{name}/uid-{name}",
        namespace=namespace,
        team=team,
        instance_type=instance_type,
        started=started,
        ended=started + timedelta(hours=hours),
        cost=Decimal(dollars),
    )


def summary(pods: list[PodCost], launched: int = 0) -> LedgerSummary:
    return LedgerSummary(
        admitted=launched,
        launched=launched,
        waiting=[],
        holds={},
        hourly_cost=Decimal(0),
        spent_today=Decimal(0),
        spent_this_month=Decimal(0),
        budgets=[],
        pods=pods,
    )


def test_a_pod_inside_the_window_counts_whole() -> None:
    assert clipped(pod("a", 5, 2, "10"), NOW - timedelta(days=1), NOW) == (
        Decimal(2),
        Decimal(10),
    )


def test_a_pod_across_the_window_start_counts_its_share() -> None:
    # Ran 4 h, 1 h of it inside the window: a quarter of its cost.
    hours, dollars = clipped(pod("a", 4, 4, "8"), NOW - timedelta(hours=1), NOW)
    assert hours == Decimal(1)
    assert dollars == Decimal(2)


def test_a_pod_before_the_window_counts_nothing() -> None:
    rows = usage_rows([pod("old", 48, 1, "5")], UsageDimension.NAMESPACE, NOW - timedelta(1), NOW)
    assert rows == []


def test_rows_are_grouped_and_sorted_by_cost_with_a_total() -> None:
    pods = [
        pod("a", 3, 1, "1", namespace="ml", team="vision", instance_type="g5.xlarge"),
        pod("b", 3, 2, "5", namespace="nlp", team="text", instance_type="p5.48xlarge"),
        pod("c", 2, 1, "2", namespace="ml", team=None, instance_type="g5.xlarge"),
    ]
    window = (NOW - timedelta(days=30), NOW)
    by_namespace = usage_rows(pods, UsageDimension.NAMESPACE, *window)
    assert [(r.key, r.cost, r.instance_hours, r.pods) for r in by_namespace] == [
        ("nlp", Decimal(5), Decimal(2), 1),
        ("ml", Decimal(3), Decimal(2), 2),
    ]
    assert [r.key for r in usage_rows(pods, UsageDimension.TEAM, *window)] == [
        "text",
        "-",
        "vision",
    ]
    by_type = usage_rows(pods, UsageDimension.INSTANCE_TYPE, *window)
    assert [(r.key, r.cost) for r in by_type] == [
        ("p5.48xlarge", Decimal(5)),
        ("g5.xlarge", Decimal(3)),
    ]
    by_pod = usage_rows(pods, UsageDimension.POD, *window)
    assert [r.key for r in by_pod] == ["nlp/b", "ml/c", "ml/a"]
    summed = total(by_namespace)
    assert (summed.cost, summed.instance_hours, summed.pods) == (Decimal(8), Decimal(4), 3)


def test_a_relaunched_pod_is_one_pod_with_both_instances() -> None:
    first = pod("a", 5, 1, "1")
    second = pod("a", 3, 1, "2")
    [row] = usage_rows([first, second], UsageDimension.POD, NOW - timedelta(1), NOW)
    assert (row.key, row.cost, row.pods) == ("ml/a", Decimal(3), 1)
    assert cost_by_pod(summary([first, second])) == {first.pod: Decimal(3)}


def test_the_running_pods_are_those_the_summary_marks_running() -> None:
    released = pod("done", 5, 1, "1")
    running = [
        pod("r1", 1, 1, "1", instance_type="p5.48xlarge").model_copy(update={"running": True}),
        pod("r2", 1, 1, "1").model_copy(update={"running": True}),
    ]
    assert running_pods(summary([released, *running], launched=2)) == running
    assert running_pods(summary([released], launched=0)) == []
    assert running_instances(summary([released, *running], launched=2)) == {
        ("p5.48xlarge", "ml"): 1,
        ("g5.xlarge", "ml"): 1,
    }


def test_day_and_month_windows_start_at_utc_midnight() -> None:
    assert day_window(NOW) == (datetime(2026, 12, 2, tzinfo=UTC), NOW)
    assert month_window(NOW) == (datetime(2026, 12, 1, tzinfo=UTC), NOW)


def test_cost_by_scope_splits_by_namespace_and_team() -> None:
    pods = [
        pod("a", 14, 10, "10", team="vision"),  # 22:00 to 08:00: 8 of its 10 hours today
        pod("b", 2, 1, "3", namespace="nlp"),
    ]
    today = cost_by_scope(pods, *day_window(NOW))
    assert today == {("ml", "vision"): Decimal(8), ("nlp", "-"): Decimal(3)}


@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=24 * 40),
            st.floats(min_value=0, max_value=100),
            st.integers(min_value=0, max_value=10_000),
        ),
        max_size=20,
    ),
    st.integers(min_value=1, max_value=24 * 40),
)
def test_clipped_costs_never_exceed_the_whole_and_the_total_adds_up(
    specs: list[tuple[float, float, int]], window_hours: int
) -> None:
    pods = [
        pod(f"p{i}", ago, length, str(cents / 100)) for i, (ago, length, cents) in enumerate(specs)
    ]
    start = NOW - timedelta(hours=window_hours)
    rows = usage_rows(pods, UsageDimension.POD, start, NOW + timedelta(days=100))
    whole = sum((p.cost for p in pods if p.ended >= start), Decimal(0))
    assert total(rows).cost <= whole + Decimal("1e-9")
    for row in rows:
        assert row.cost >= 0
        assert row.instance_hours >= 0
