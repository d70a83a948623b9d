"""Injected faults and EC2-style API throttling.

Two independent mechanisms, both pure (time and randomness are passed in):

* ``FaultInjector`` — rules set by tests or the control API: "fail ``RunInstances`` for
  ``p5.48xlarge`` with ``InsufficientInstanceCapacity`` 3 times", "answer 30% of
  ``DescribeInstances`` with ``RequestLimitExceeded``", "add 2 s to every ``SendCommand``".
* ``Ec2Throttle`` — EC2's documented request-rate limiting: a token bucket per action category
  per account and region, plus the *resource* buckets of RunInstances (1000 instances, refilled
  at 2 per second) and TerminateInstances (1000, refilled at 20 per second). Bucket sizes follow
  the EC2 API reference "Request throttling" page (2025), rounded:
  non-mutating 100 / 20 s⁻¹, mutating 50 / 5 s⁻¹. Off by default; ``EmulatorConfig.throttling``
  turns it on.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from orca_devstack.emulators.aws.errors import AwsError


@dataclass
class FaultRule:
    """Make ``operation`` (an API action name, or ``*``) fail or slow down."""

    operation: str
    error_code: str | None = None
    rate: float = 1.0
    count: int | None = None
    instance_type: str | None = None
    latency_s: float = 0.0
    message: str | None = None

    def matches(self, operation: str, instance_types: Sequence[str]) -> bool:
        if self.count is not None and self.count <= 0:
            return False
        if self.operation not in ("*", operation):
            return False
        return self.instance_type is None or self.instance_type in instance_types


@dataclass(frozen=True)
class FaultDecision:
    latency_s: float = 0.0
    error: AwsError | None = None


@dataclass
class FaultInjector:
    rules: list[FaultRule] = field(default_factory=list)
    rng: random.Random = field(default_factory=random.Random)

    def add(self, rule: FaultRule) -> None:
        self.rules.append(rule)

    def clear(self) -> None:
        self.rules.clear()

    def decide(self, operation: str, instance_types: Sequence[str] = ()) -> FaultDecision:
        """Latency adds up over matching rules; the first matching error rule that fires wins."""
        latency = 0.0
        error: AwsError | None = None
        for rule in self.rules:
            if not rule.matches(operation, instance_types):
                continue
            if rule.rate < 1.0 and self.rng.random() >= rule.rate:
                continue
            latency += rule.latency_s
            if rule.error_code is not None and error is None:
                error = AwsError.of(rule.error_code, rule.message)
            if rule.count is not None:
                rule.count -= 1
        return FaultDecision(latency_s=latency, error=error)


class TokenBucket:
    def __init__(self, capacity: float, refill_per_s: float, now: float) -> None:
        self.capacity = capacity
        self.refill_per_s = refill_per_s
        self._tokens = capacity
        self._at = now

    def tokens(self, now: float) -> float:
        elapsed = max(0.0, now - self._at)
        self._tokens = min(self.capacity, self._tokens + elapsed * self.refill_per_s)
        self._at = now
        return self._tokens

    def take(self, amount: float, now: float) -> bool:
        if self.tokens(now) < amount:
            return False
        self._tokens -= amount
        return True


NON_MUTATING_PREFIXES = ("Describe", "Get", "List", "Search")
RESOURCE_BUCKETS: dict[str, tuple[float, float]] = {
    "RunInstances": (1000, 2),
    "TerminateInstances": (1000, 20),
    "StartInstances": (1000, 2),
    "StopInstances": (1000, 20),
}
REQUEST_BUCKETS: dict[str, tuple[float, float]] = {
    "non-mutating": (100, 20),
    "mutating": (50, 5),
}


def request_category(action: str) -> str:
    return "non-mutating" if action.startswith(NON_MUTATING_PREFIXES) else "mutating"


class Ec2Throttle:
    """EC2's per-account, per-region request and resource token buckets."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        now = clock()
        self._requests = {
            name: TokenBucket(size, rate, now) for name, (size, rate) in REQUEST_BUCKETS.items()
        }
        self._resources = {
            name: TokenBucket(size, rate, now) for name, (size, rate) in RESOURCE_BUCKETS.items()
        }

    def admit(self, action: str, resources: int = 1) -> bool:
        """Take a request token (and ``resources`` resource tokens); False means throttled."""
        now = self._clock()
        resource_bucket = self._resources.get(action)
        if resource_bucket is not None and resource_bucket.tokens(now) < resources:
            return False
        if not self._requests[request_category(action)].take(1, now):
            return False
        if resource_bucket is not None:
            resource_bucket.take(resources, now)
        return True
