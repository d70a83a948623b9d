"""Spot accrual corrected by price history (`orca.spot_accrual.reprice`): plain functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from orca.spot_accrual import SpotPricePoint, SpotPricing, reprice

LAUNCH = datetime(2026, 12, 1, 22, 0, tzinfo=UTC)


def point(minutes_after_launch: float, price: str) -> SpotPricePoint:
    return SpotPricePoint(
        instance_type="g5.xlarge",
        zone="us-east-1a",
        at=LAUNCH + timedelta(minutes=minutes_after_launch),
        price=Decimal(price),
    )


def total(corrections: list[tuple[str, Decimal]]) -> Decimal:
    return sum((dollars for _day, dollars in corrections), Decimal(0))


def test_the_price_in_effect_at_launch_replaces_the_plans_price() -> None:
    pricing = SpotPricing(price=Decimal("1.00"), since=LAUNCH)
    # Accrued one hour at the plan's $1.00; the history says $0.40 was in effect (set earlier).
    out = reprice(pricing, [point(-600, "0.55"), point(-30, "0.40")], LAUNCH + timedelta(hours=1))
    assert total(out.corrections) == Decimal("-0.60")
    assert out.pricing == SpotPricing(price=Decimal("0.40"), since=LAUNCH, from_history=True)


def test_a_change_while_running_corrects_only_the_time_after_it() -> None:
    pricing = SpotPricing(price=Decimal("0.40"), since=LAUNCH, from_history=True)
    out = reprice(pricing, [point(-30, "0.40"), point(30, "1.00")], LAUNCH + timedelta(hours=1))
    assert total(out.corrections) == Decimal("0.30")  # half an hour at $0.60 more
    assert out.pricing.price == Decimal("1.00")
    assert out.pricing.since == LAUNCH + timedelta(minutes=30)


def test_a_history_read_again_changes_nothing() -> None:
    first = reprice(
        SpotPricing(price=Decimal("0.40"), since=LAUNCH, from_history=True),
        [point(30, "1.00")],
        LAUNCH + timedelta(hours=1),
    )
    again = reprice(
        first.pricing, [point(-30, "0.40"), point(30, "1.00")], LAUNCH + timedelta(hours=2)
    )
    assert again.corrections == []
    assert again.pricing == first.pricing


def test_changes_beyond_what_was_accrued_wait_for_the_next_read() -> None:
    pricing = SpotPricing(price=Decimal("0.40"), since=LAUNCH, from_history=True)
    out = reprice(pricing, [point(90, "2.00")], LAUNCH + timedelta(hours=1))
    assert out.corrections == []
    assert out.pricing == pricing


def test_corrections_are_split_at_utc_midnight() -> None:
    pricing = SpotPricing(price=Decimal("1.00"), since=LAUNCH, from_history=True)
    # From 23:00 to 01:00 at $2.00 instead of $1.00: $1 on each day.
    out = reprice(pricing, [point(60, "2.00")], LAUNCH + timedelta(hours=3))
    assert out.corrections == [("2026-12-01", Decimal("1.00")), ("2026-12-02", Decimal("1.00"))]


def test_several_changes_apply_in_time_order() -> None:
    pricing = SpotPricing(price=Decimal("1.00"), since=LAUNCH, from_history=True)
    history = [point(40, "0.50"), point(20, "2.00")]  # out of order, as pages may be
    out = reprice(pricing, history, LAUNCH + timedelta(hours=1))
    # $1.00 more for the last 40 min, then $1.50 less for the last 20: 2/3 - 1/2 = 1/6.
    assert abs(total(out.corrections) - Decimal(1) / 6) < Decimal("1e-9")
    assert out.pricing.price == Decimal("0.50")
