"""Plan checks: a named type smaller than the requests; what a reservation can serve."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from orca.activities.planning import reserved_candidates, undersized_warnings
from orca.launch_spec import InvalidPodSpec
from orca.selection import CandidateOffering
from orca.settings import LaunchType
from orca.units import format_number
from tests.unit.test_selection import catalog, spec_for


@pytest.mark.parametrize(
    ("value", "text"),
    [(Decimal("9E+2"), "900"), (Decimal("64.000"), "64"), (Decimal("0.50"), "0.5"), (16, "16")],
)
def test_format_number_writes_numbers_as_people_do(value: Decimal | int, text: str) -> None:
    assert format_number(value) == text


def test_explicit_type_smaller_than_the_requests_is_named_with_what_it_lacks() -> None:
    spec = spec_for({"orca.research/instance-type": "t3.small"}, {"cpu": "900", "memory": "64Gi"})
    (warning,) = undersized_warnings(spec, catalog())
    assert "t3.small" in warning
    assert "900 CPUs requested, it has 2 vCPUs" in warning
    assert "64 GiB of memory requested, it has 2 GiB" in warning
    assert "E+" not in warning


def test_gpu_shortfall_and_fitting_types_say_nothing() -> None:
    short = spec_for(
        {"orca.research/instance-type": "g6.2xlarge"}, {"cpu": "1", "nvidia.com/gpu": "4"}
    )
    (warning,) = undersized_warnings(short, catalog())
    assert "4 nvidia.com/gpu requested, it has 1" in warning
    fits = spec_for({"orca.research/instance-type": "m7i.2xlarge"}, {"cpu": "8", "memory": "8Gi"})
    assert undersized_warnings(fits, catalog()) == []
    auto = spec_for({}, {"cpu": "900"}, selection_mode="auto")
    assert undersized_warnings(auto, catalog()) == []


def test_a_capacity_block_not_yet_started_waits_and_an_expired_one_fails() -> None:
    offer = CandidateOffering(
        instance_type="p5.48xlarge",
        zone="us-west-2b",
        subnet_id="subnet-b",
        capacity_type=LaunchType.ON_DEMAND,
        hourly_price=None,
        max_spot_price=None,
        reason="capacity block",
    )
    block = {
        "InstanceType": "p5.48xlarge",
        "AvailabilityZone": "us-west-2b",
        "ReservationType": "capacity-block",
        "State": "scheduled",
        "StartDate": datetime(2026, 12, 3, 11, 30, tzinfo=UTC),
    }
    now = datetime(2026, 12, 2, tzinfo=UTC)
    zones = ["us-west-2a", "us-west-2b"]
    candidates, waiting = reserved_candidates("cr-1", block, [offer], zones, now)
    assert candidates == []
    assert waiting == "capacity block cr-1 is scheduled (starts 2026-12-03 11:30 UTC)"
    active = {**block, "State": "active"}
    assert reserved_candidates("cr-1", active, [offer], zones, now) == ([offer], None)
    with pytest.raises(InvalidPodSpec, match="is expired"):
        reserved_candidates("cr-1", {**block, "State": "expired"}, [offer], zones, now)
    with pytest.raises(InvalidPodSpec, match="where ORCA has no subnet"):
        reserved_candidates("cr-1", active, [offer], ["us-west-2a"], now)
