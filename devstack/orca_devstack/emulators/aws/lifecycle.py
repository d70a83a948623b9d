"""Time in the emulator: instance states and the one scheduler thread that moves them.

Every delayed effect (pending → running, shutting-down → terminated, a container finishing, an
interruption's notice running out) is a callback on a single heap-ordered scheduler thread; no
thread per instance. Callbacks run under the emulator's state lock, supplied by the caller.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

STATE_CODES: dict[str, int] = {
    "pending": 0,
    "running": 16,
    "shutting-down": 32,
    "terminated": 48,
    "stopping": 64,
    "stopped": 80,
}
LIVE_STATES = frozenset({"pending", "running", "stopping", "shutting-down"})


@dataclass
class Timer:
    due: float
    action: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass(order=True)
class _Entry:
    due: float
    seq: int
    timer: Timer = field(compare=False)


class Scheduler:
    """Runs callbacks at monotonic deadlines on one daemon thread."""

    def __init__(self, lock: threading.RLock, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = lock
        self._clock = clock
        self._heap: list[_Entry] = []
        self._seq = itertools.count()
        self._wake = threading.Condition()
        self._stopped = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="aws-emulator-timers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def after(self, delay_s: float, action: Callable[[], None]) -> Timer:
        timer = Timer(self._clock() + max(0.0, delay_s), action)
        with self._wake:
            heapq.heappush(self._heap, _Entry(timer.due, next(self._seq), timer))
            self._wake.notify()
        return timer

    def cancel_all(self) -> None:
        with self._wake:
            for entry in self._heap:
                entry.timer.cancel()
            self._heap.clear()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._stopped and (not self._heap or self._heap[0].due > self._clock()):
                    timeout = self._heap[0].due - self._clock() if self._heap else None
                    self._wake.wait(timeout)
                if self._stopped:
                    return
                entry = heapq.heappop(self._heap)
            if entry.timer.cancelled:
                continue
            try:
                with self._lock:
                    if not entry.timer.cancelled:
                        entry.timer.action()
            except Exception:
                logger.exception("emulator timer failed")
