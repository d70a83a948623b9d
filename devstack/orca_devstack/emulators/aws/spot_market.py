"""The emulator's spot prices over time, as DescribeSpotPriceHistory shows them.

Every offering starts at its derived price (`prices.spot_price`) from `origin` (the hour the
emulator was started or reset); `POST /_orca/spot-price` (or `EmulatorControl.set_spot_price`)
changes one offering's price from now on, as the real market does a few times a day. A history
query answers as EC2 does: the entries within [StartTime, EndTime] and the last change before
StartTime, which is the price in effect at StartTime.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class PriceEntry:
    at: datetime
    price: float


class SpotMarket:
    def __init__(self, origin: datetime) -> None:
        self.origin = origin
        self._changes: dict[tuple[str, str], list[PriceEntry]] = {}
        self._lock = threading.Lock()

    def set_price(self, instance_type: str, zone: str, price: float, at: datetime) -> None:
        """From `at` on (kept to the second: EC2's history has no finer timestamps)."""
        at = at.replace(microsecond=0)
        with self._lock:
            self._changes.setdefault((instance_type, zone), []).append(PriceEntry(at, price))

    def current(self, instance_type: str, zone: str, base: float) -> float:
        with self._lock:
            changes = self._changes.get((instance_type, zone))
            return changes[-1].price if changes else base

    def history(
        self,
        instance_type: str,
        zone: str,
        base: float,
        start: datetime | None,
        end: datetime | None,
    ) -> list[PriceEntry]:
        with self._lock:
            entries = [PriceEntry(self.origin, base), *self._changes.get((instance_type, zone), [])]
        if end is not None:
            entries = [e for e in entries if e.at <= end]
        if start is None:
            return entries
        before = [e for e in entries if e.at <= start]
        within = [e for e in entries if e.at > start]
        return [*before[-1:], *within]
