"""Spot spend over time: the ledger's accrual corrected by the zone's spot price history.

A spot instance is billed at the spot price of its zone, which changes while it runs. The
ledger accrues every claim at a known price as time passes (`orca.budgets.accrual_pieces`); for
a spot claim that price is the one its plan saw at launch until the ledger's upkeep reads the
zone's price history (DescribeSpotPriceHistory, which also returns the price in effect at its
StartTime). `reprice` then turns what was accrued at the old price into what the history says
it cost: for every change the dollars of the overlap are corrected, per UTC day, by the price
difference. So a pod's spend matches the bill up to the changes made since the last upkeep.

Pure functions and models: no clock, no I/O; the ledger passes the history and the times in.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from orca.budgets import accrual_pieces


class SpotPricePoint(BaseModel):
    """One entry of an offering's spot price history: `price` per hour from `at` on."""

    model_config = ConfigDict(frozen=True)

    instance_type: str
    zone: str
    at: datetime
    price: Decimal


class SpotPricing(BaseModel):
    """Where a spot claim's accrual stands: the price it accrues at now, since when, and
    whether the history has priced it yet (before that, the price is the plan's)."""

    price: Decimal
    since: datetime
    from_history: bool = False


class Repriced(BaseModel):
    pricing: SpotPricing
    corrections: list[tuple[str, Decimal]]
    """Dollars to add (or, for a price that fell, take back) per UTC day."""


def reprice(
    pricing: SpotPricing, history: Iterable[SpotPricePoint], accrued_until: datetime
) -> Repriced:
    """Apply an offering's price history to a claim that accrued at `pricing.price` from
    `pricing.since` up to `accrued_until`.

    The first time, the latest point at or before `pricing.since` (the launch) sets the price
    from then on; after that, only points later than `pricing.since` are news (a history read
    again returns the ones already applied). Points after `accrued_until` wait for the next
    call, once accrual has reached them."""
    points = sorted(history, key=lambda p: p.at)
    current = pricing
    corrections: list[tuple[str, Decimal]] = []
    if not current.from_history:
        at_start = [p for p in points if p.at <= current.since]
        if at_start:
            corrections += _difference(current.since, accrued_until, at_start[-1].price, current)
            current = SpotPricing(price=at_start[-1].price, since=current.since)
        current = current.model_copy(update={"from_history": True})
    for point in points:
        if point.at <= current.since or point.at > accrued_until:
            continue
        corrections += _difference(point.at, accrued_until, point.price, current)
        current = SpotPricing(price=point.price, since=point.at, from_history=True)
    return Repriced(pricing=current, corrections=_by_day(corrections))


def _difference(
    start: datetime, end: datetime, new_price: Decimal, current: SpotPricing
) -> list[tuple[str, Decimal]]:
    if new_price == current.price or end <= start:
        return []
    return accrual_pieces(start, end, new_price - current.price)


def _by_day(pieces: list[tuple[str, Decimal]]) -> list[tuple[str, Decimal]]:
    days: dict[str, Decimal] = {}
    for day, dollars in pieces:
        days[day] = days.get(day, Decimal(0)) + dollars
    return sorted(days.items())
