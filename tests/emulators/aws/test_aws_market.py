"""Prices (spot price history, Pricing GetProducts) and capacity reservations through boto3."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError

from orca_devstack.emulators.aws import AwsEmulator
from tests.fixtures.aws import AwsClientFactory, wait_until


def test_spot_price_history_differs_by_zone(aws: AwsEmulator, aws_client: AwsClientFactory) -> None:
    ec2 = aws_client("ec2")
    history = ec2.describe_spot_price_history(
        InstanceTypes=["g5.xlarge", "p5.48xlarge"],
        ProductDescriptions=["Linux/UNIX"],
        StartTime=datetime.now(UTC),
    )["SpotPriceHistory"]
    prices = {(h["InstanceType"], h["AvailabilityZone"]): float(h["SpotPrice"]) for h in history}
    g5 = {zone: price for (t, zone), price in prices.items() if t == "g5.xlarge"}
    assert len(g5) >= 3
    assert len(set(g5.values())) == len(g5)
    assert min(p for (t, _), p in prices.items() if t == "p5.48xlarge") > max(g5.values())


def test_on_demand_price_from_the_pricing_api(
    aws: AwsEmulator, aws_client: AwsClientFactory
) -> None:
    pricing = aws_client("pricing", region="us-east-1")
    response = pricing.get_products(
        ServiceCode="AmazonEC2",
        Filters=[
            {"Type": "TERM_MATCH", "Field": "instanceType", "Value": "g6e.xlarge"},
            {"Type": "TERM_MATCH", "Field": "regionCode", "Value": "us-west-2"},
            {"Type": "TERM_MATCH", "Field": "operatingSystem", "Value": "Linux"},
            {"Type": "TERM_MATCH", "Field": "tenancy", "Value": "Shared"},
            {"Type": "TERM_MATCH", "Field": "preInstalledSw", "Value": "NA"},
            {"Type": "TERM_MATCH", "Field": "capacitystatus", "Value": "Used"},
        ],
    )
    [product] = [json.loads(p) for p in response["PriceList"]]
    assert product["product"]["attributes"]["instanceType"] == "g6e.xlarge"
    term = next(iter(product["terms"]["OnDemand"].values()))
    price = float(next(iter(term["priceDimensions"].values()))["pricePerUnit"]["USD"])
    spot = aws_client("ec2").describe_spot_price_history(
        InstanceTypes=["g6e.xlarge"], AvailabilityZone="us-west-2a"
    )["SpotPriceHistory"]
    assert 0 < float(spot[0]["SpotPrice"]) < price


def test_targeted_capacity_reservation_is_consumed_and_released(
    aws: AwsEmulator, aws_client: AwsClientFactory
) -> None:
    ec2 = aws_client("ec2")
    reservation = ec2.create_capacity_reservation(
        InstanceType="p5.48xlarge",
        InstancePlatform="Linux/UNIX",
        AvailabilityZone="us-west-2a",
        InstanceCount=1,
        InstanceMatchCriteria="targeted",
    )["CapacityReservation"]
    reservation_id = reservation["CapacityReservationId"]
    assert reservation["AvailableInstanceCount"] == 1
    target = {
        "CapacityReservationSpecification": {
            "CapacityReservationTarget": {"CapacityReservationId": reservation_id}
        }
    }
    common = {
        "ImageId": aws.defaults.ami_ids["dlami-gpu"],
        "InstanceType": "p5.48xlarge",
        "MinCount": 1,
        "MaxCount": 1,
    }
    instance = ec2.run_instances(**common, **target)["Instances"][0]
    assert instance["Placement"]["AvailabilityZone"] == "us-west-2a"

    def available() -> int:
        described = ec2.describe_capacity_reservations(CapacityReservationIds=[reservation_id])
        return int(described["CapacityReservations"][0]["AvailableInstanceCount"])

    assert available() == 0
    with pytest.raises(ClientError) as raised:
        ec2.run_instances(**common, **target)
    assert raised.value.response["Error"]["Code"] == "ReservationCapacityExceeded"
    ec2.terminate_instances(InstanceIds=[instance["InstanceId"]])
    wait_until(lambda: available() == 1)


def test_a_spot_price_change_shows_in_the_history_from_its_time_on(
    aws: AwsEmulator, aws_client: AwsClientFactory
) -> None:
    ec2 = aws_client("ec2")

    def history(**window: datetime) -> list[tuple[datetime, float]]:
        items = ec2.describe_spot_price_history(
            InstanceTypes=["g5.xlarge"],
            Filters=[{"Name": "availability-zone", "Values": ["us-west-2a"]}],
            ProductDescriptions=["Linux/UNIX"],
            **window,
        )["SpotPriceHistory"]
        return [(h["Timestamp"], float(h["SpotPrice"])) for h in items]

    [(_, base)] = history(StartTime=datetime.now(UTC))
    changed_at = aws.control.set_spot_price("g5.xlarge", "us-west-2a", base * 2)
    # As EC2: newest first; the last change before StartTime is the price in effect at it.
    assert history(StartTime=changed_at - timedelta(seconds=1)) == [
        (changed_at, base * 2),
        (history()[-1][0], base),
    ]
    assert history(StartTime=datetime.now(UTC) + timedelta(seconds=1)) == [(changed_at, base * 2)]
    # The other zones keep their price.
    [(_, other)] = [
        (h["Timestamp"], float(h["SpotPrice"]))
        for h in ec2.describe_spot_price_history(
            InstanceTypes=["g5.xlarge"], AvailabilityZone="us-west-2b", StartTime=datetime.now(UTC)
        )["SpotPriceHistory"]
    ]
    assert other != base * 2
    with pytest.raises(KeyError, match="not offered"):
        aws.control.set_spot_price("g5.xlarge", "us-west-2z", 1.0)
