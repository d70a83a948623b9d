"""The emulator's pure parts: capacity, faults, token buckets, event JSON, pod parsing, prices."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime

from orca_devstack.emulators.aws import interruptions, prices
from orca_devstack.emulators.aws.capacity import CapacityModel, CapacityRule, CapacityType
from orca_devstack.emulators.aws.containers import (
    PodBehaviour,
    extract_pod_manifest,
    parse_comment,
    parse_stop_grace,
)
from orca_devstack.emulators.aws.faults import Ec2Throttle, FaultInjector, FaultRule, TokenBucket
from orca_devstack.emulators.aws.reservations import ReservationBook


def test_capacity_defaults_are_scarce_for_p5_and_generous_elsewhere() -> None:
    model = CapacityModel()
    assert model.limit("p5.48xlarge", "us-west-2a", CapacityType.ON_DEMAND) == 2
    assert model.limit("p5.48xlarge", "us-west-2a", CapacityType.SPOT) == 1
    assert model.limit("g6e.xlarge", "us-west-2a", CapacityType.SPOT) == 1000


def test_capacity_later_rules_override_and_usage_reduces_availability() -> None:
    model = CapacityModel([CapacityRule("*", 5)])
    model.set(CapacityRule("g5.*", 1, zone="us-west-2b", capacity_type=CapacityType.SPOT))
    assert model.available("g5.xlarge", "us-west-2b", CapacityType.SPOT, in_use=0) == 1
    assert model.available("g5.xlarge", "us-west-2b", CapacityType.SPOT, in_use=1) == 0
    assert model.available("g5.xlarge", "us-west-2a", CapacityType.SPOT, in_use=3) == 2


def test_fault_rule_counts_down_and_filters_by_instance_type() -> None:
    injector = FaultInjector(rng=random.Random(1))
    injector.add(
        FaultRule(
            "RunInstances", "InsufficientInstanceCapacity", count=2, instance_type="p5.48xlarge"
        )
    )
    assert injector.decide("RunInstances", ["g5.xlarge"]).error is None
    codes = [injector.decide("RunInstances", ["p5.48xlarge"]).error for _ in range(3)]
    assert [e.code if e else None for e in codes] == [
        "InsufficientInstanceCapacity",
        "InsufficientInstanceCapacity",
        None,
    ]
    assert codes[0] is not None
    assert codes[0].http_status == 500


def test_fractional_faults_fire_for_about_that_fraction() -> None:
    injector = FaultInjector(rng=random.Random(7))
    injector.add(FaultRule("DescribeInstances", "RequestLimitExceeded", rate=0.3))
    fired = sum(injector.decide("DescribeInstances").error is not None for _ in range(1000))
    assert 200 < fired < 400


def test_token_bucket_refills_over_time() -> None:
    bucket = TokenBucket(capacity=2, refill_per_s=1, now=0.0)
    assert bucket.take(1, 0.0)
    assert bucket.take(1, 0.0)
    assert not bucket.take(1, 0.5)
    assert bucket.take(1, 1.1)


def test_run_instances_resource_bucket_limits_instances_not_requests() -> None:
    now = [0.0]
    throttle = Ec2Throttle(lambda: now[0])
    assert throttle.admit("RunInstances", resources=1000)
    assert not throttle.admit("RunInstances", resources=1)
    now[0] = 1.0
    assert throttle.admit("RunInstances", resources=2)
    assert throttle.admit("DescribeInstances")


def test_spot_interruption_event_has_the_aws_shape() -> None:
    at = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    event = interruptions.spot_interruption_warning(
        "i-0abc", account="123456789012", region="us-west-2", zone="us-west-2b", at=at
    )
    assert set(event) == {
        "version",
        "id",
        "detail-type",
        "source",
        "account",
        "time",
        "region",
        "resources",
        "detail",
    }
    assert event["detail-type"] == "EC2 Spot Instance Interruption Warning"
    assert event["source"] == "aws.ec2"
    assert event["time"] == "2025-01-02T03:04:05Z"
    assert event["resources"] == ["arn:aws:ec2:us-west-2b:instance/i-0abc"]
    assert event["detail"] == {"instance-id": "i-0abc", "instance-action": "terminate"}
    change = interruptions.state_change_notification(
        "i-0abc", "shutting-down", account="123456789012", region="us-west-2", at=at
    )
    assert change["resources"] == ["arn:aws:ec2:us-west-2:123456789012:instance/i-0abc"]
    assert change["detail"] == {"instance-id": "i-0abc", "state": "shutting-down"}


POD = {
    "namespace": "ml",
    "name": "train",
    "uid": "u-1",
    "annotations": {
        "emulator.orca.research/run-seconds": "inf",
        "emulator.orca.research/exit-code": "3",
        "emulator.orca.research/log-lines": "a\nb",
    },
    "containers": [{"name": "trainer", "image": "busybox"}],
    "restartPolicy": "Never",
}
SCRIPT = (
    "#!/bin/bash\nset -euo pipefail\nmkdir -p /etc/orca\n"
    "cat > /etc/orca/pod.json <<'ORCA_POD_JSON'\n"
    + json.dumps(POD, indent=1)
    + "\nORCA_POD_JSON\nexec /usr/local/bin/orca-run /etc/orca/pod.json\n"
)


def test_pod_manifest_is_extracted_from_the_heredoc() -> None:
    manifest = extract_pod_manifest(SCRIPT)
    assert manifest is not None
    assert manifest["uid"] == "u-1"
    behaviour = PodBehaviour.from_annotations(manifest["annotations"])
    assert behaviour.run_seconds == float("inf")
    assert behaviour.exit_code == 3
    assert behaviour.log_lines == ("a", "b")
    assert extract_pod_manifest("echo no heredoc") is None


def test_commands_and_grace_are_parsed() -> None:
    start = parse_comment("orca start ml/train-0")
    assert start is not None
    assert (start.verb, start.namespace, start.name) == (
        "start",
        "ml",
        "train-0",
    )
    assert parse_comment("something else") is None
    assert parse_stop_grace("kill\nORCA_STOP_GRACE_SECONDS=30\n") == 30.0


def test_spot_prices_differ_by_zone_and_stay_below_on_demand() -> None:
    on_demand = prices.ON_DEMAND_USD_PER_HOUR["g5.xlarge"]
    by_zone = {
        z: prices.spot_price("g5.xlarge", z, on_demand) for z in ("us-west-2a", "us-west-2b")
    }
    assert by_zone["us-west-2a"] != by_zone["us-west-2b"]
    assert all(0 < p < on_demand for p in by_zone.values())


def test_price_list_product_filters_and_reads_back() -> None:
    product = prices.price_list_product("p5.48xlarge", "us-west-2", 55.04, {"vcpu": "192"})
    assert prices.term_matches(
        product,
        [
            {"Type": "TERM_MATCH", "Field": "instanceType", "Value": "p5.48xlarge"},
            {"Type": "TERM_MATCH", "Field": "location", "Value": "US West (Oregon)"},
        ],
    )
    assert not prices.term_matches(product, [{"Field": "operatingSystem", "Value": "Windows"}])
    term = next(iter(product["terms"]["OnDemand"].values()))
    dimension = next(iter(term["priceDimensions"].values()))
    assert float(dimension["pricePerUnit"]["USD"]) == 55.04
    json.dumps(product)


def test_open_reservations_match_and_targets_must_fit() -> None:
    book = ReservationBook("123456789012", "us-west-2")
    reservation = book.create(
        instance_type="p5.48xlarge",
        instance_platform="Linux/UNIX",
        availability_zone="us-west-2a",
        instance_count=1,
    )
    found = book.choose(
        instance_type="p5.48xlarge", zone=None, count=1, target_id=None, preference=None
    )
    assert found is reservation
    book.occupy(reservation, "i-1")
    assert reservation.available_instance_count == 0
    assert (
        book.choose(
            instance_type="p5.48xlarge", zone=None, count=1, target_id=None, preference=None
        )
        is None
    )
    book.release("i-1")
    assert reservation.available_instance_count == 1
