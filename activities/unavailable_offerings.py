"""Offerings that just ran out of capacity, remembered for a few minutes (Karpenter: 3 min).

Shared by every activity in a worker process, and through the budget ledger by every worker of
the cluster (`orca.activities.shared_offerings`): when one pod's launch of `p5.48xlarge` spot in
`us-west-2a` fails with InsufficientInstanceCapacity, the next pods' plans put that offering
last instead of spending a RunInstances call on it first.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from orca.selection import Offering


class UnavailableOfferings:
    def __init__(self, ttl_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_seconds
        self._clock = clock
        self._until: dict[Offering, float] = {}
        self._lock = threading.Lock()

    def mark(self, offering: Offering, for_seconds: float | None = None) -> None:
        """Unavailable for the TTL (or `for_seconds`, as another worker reported it)."""
        until = self._clock() + (self._ttl if for_seconds is None else for_seconds)
        with self._lock:
            self._until[offering] = max(until, self._until.get(offering, until))

    def current(self) -> frozenset[Offering]:
        now = self._clock()
        with self._lock:
            for offering in [o for o, until in self._until.items() if until <= now]:
                del self._until[offering]
            return frozenset(self._until)
