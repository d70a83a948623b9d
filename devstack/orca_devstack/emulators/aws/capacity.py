"""The capacity model: how many instances AWS can still give per type, zone and capacity type.

Pure bookkeeping. The middleware counts the instances alive in moto (pending, running, stopping,
shutting-down) and asks this model whether one more launch fits. Rules are matched last-first so
a later ``set_capacity`` overrides the defaults; instance types may be ``fnmatch`` patterns
(``p5*``) and ``None`` for zone or capacity type means "any".

Defaults (``default_capacity_rules``): 1000 instances per (type, zone, capacity type) for
everything, but the scarce accelerator families — p5/p5e/p5en, p6, trn2 — get 2 on-demand and 1
spot per zone, so fallback to the next offering is visible in ``orca dev``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class CapacityType(StrEnum):
    ON_DEMAND = "on-demand"
    SPOT = "spot"


@dataclass(frozen=True)
class CapacityRule:
    """At most ``count`` live instances match ``instance_type`` in ``zone`` as ``capacity_type``."""

    instance_type: str
    count: int
    zone: str | None = None
    capacity_type: CapacityType | None = None

    def matches(self, instance_type: str, zone: str, capacity_type: CapacityType) -> bool:
        return (
            fnmatch.fnmatchcase(instance_type, self.instance_type)
            and (self.zone is None or self.zone == zone)
            and (self.capacity_type is None or self.capacity_type == capacity_type)
        )


GENEROUS_CAPACITY = 1000
SCARCE_FAMILIES = ("p5.*", "p5e.*", "p5en.*", "p6-*", "p6e-*", "trn2.*", "trn2u.*")


def default_capacity_rules() -> list[CapacityRule]:
    rules = [CapacityRule("*", GENEROUS_CAPACITY)]
    for pattern in SCARCE_FAMILIES:
        rules.append(CapacityRule(pattern, 2, capacity_type=CapacityType.ON_DEMAND))
        rules.append(CapacityRule(pattern, 1, capacity_type=CapacityType.SPOT))
    return rules


class CapacityModel:
    def __init__(self, rules: Iterable[CapacityRule] | None = None) -> None:
        self._rules = list(default_capacity_rules() if rules is None else rules)

    def set(self, rule: CapacityRule) -> None:
        self._rules.append(rule)

    def limit(self, instance_type: str, zone: str, capacity_type: CapacityType) -> int:
        for rule in reversed(self._rules):
            if rule.matches(instance_type, zone, capacity_type):
                return rule.count
        return 0

    def available(
        self, instance_type: str, zone: str, capacity_type: CapacityType, in_use: int
    ) -> int:
        return max(0, self.limit(instance_type, zone, capacity_type) - in_use)


def insufficient_capacity_message(
    instance_type: str, zone: str, zones_with_capacity: Iterable[str]
) -> str:
    """AWS's wording for InsufficientInstanceCapacity, naming the zones that still have some."""
    others = sorted(zones_with_capacity)
    message = (
        f"We currently do not have sufficient {instance_type} capacity in the Availability Zone "
        f"you requested ({zone}). Our system will be working on provisioning additional capacity."
    )
    if others:
        message += (
            f" You can currently get {instance_type} capacity by not specifying an Availability "
            f"Zone in your request or choosing {', '.join(others)}."
        )
    return message


def unsupported_zone_message(instance_type: str, zone: str, offered_zones: Iterable[str]) -> str:
    """AWS's wording for Unsupported when a type is not offered in a zone."""
    return (
        f"Your requested instance type ({instance_type}) is not supported in your requested "
        f"Availability Zone ({zone}). Please retry your request by not specifying an Availability "
        f"Zone or choosing {', '.join(sorted(offered_zones))}."
    )
