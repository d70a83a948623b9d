"""Offerings that just ran out of capacity, remembered for a few minutes (Karpenter: 3 min).

Shared by every activity in a worker process: when one pod's launch of `p5.48xlarge` spot in
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

    def mark(self, offering: Offering) -> None:
        with self._lock:
            self._until[offering] = self._clock() + self._ttl

    def current(self) -> frozenset[Offering]:
        now = self._clock()
        with self._lock:
            for offering in [o for o, until in self._until.items() if until <= now]:
                del self._until[offering]
            return frozenset(self._until)
