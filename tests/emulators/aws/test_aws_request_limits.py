"""EC2 request limits moto does not enforce (`orca_devstack.emulators.aws.request_limits`)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from werkzeug.datastructures import MultiDict

from orca_devstack.emulators.aws import AwsEmulator
from orca_devstack.emulators.aws.errors import AwsError
from orca_devstack.emulators.aws.request_limits import MAX_FILTER_VALUES, check_ec2_request
from tests.fixtures.aws import AwsClientFactory


def form(**fields: str) -> MultiDict[str, str]:
    return MultiDict(fields)


def filter_values(count: int, filters: int = 1) -> MultiDict[str, str]:
    values: MultiDict[str, str] = MultiDict()
    for f in range(1, filters + 1):
        values[f"Filter.{f}.Name"] = "instance-id"
        for v in range(1, count // filters + 1):
            values[f"Filter.{f}.Value.{v}"] = f"i-{f:03d}{v:014d}"
    return values


def test_two_hundred_filter_values_are_allowed_and_one_more_is_not() -> None:
    check_ec2_request("DescribeInstances", filter_values(MAX_FILTER_VALUES))
    with pytest.raises(AwsError) as raised:
        check_ec2_request("DescribeInstances", filter_values(MAX_FILTER_VALUES + 2, filters=2))
    assert raised.value.code == "FilterLimitExceeded"
    assert "200" in raised.value.message


@pytest.mark.parametrize("max_results", ["4", "1001", "many"])
def test_describe_instances_max_results_must_be_5_to_1000(max_results: str) -> None:
    with pytest.raises(AwsError) as raised:
        check_ec2_request("DescribeInstances", form(MaxResults=max_results))
    assert raised.value.code == "InvalidParameterValue"
    assert max_results in raised.value.message


def test_max_results_cannot_be_combined_with_instance_ids() -> None:
    check_ec2_request("DescribeInstances", form(MaxResults="1000"))
    with pytest.raises(AwsError) as raised:
        check_ec2_request("DescribeInstances", form(MaxResults="5", **{"InstanceId.1": "i-1"}))
    assert raised.value.code == "InvalidParameterCombination"


def test_the_limits_hold_over_http(aws: AwsEmulator, aws_client: AwsClientFactory) -> None:
    ec2 = aws_client("ec2")
    values = [f"i-{n:017d}" for n in range(MAX_FILTER_VALUES + 1)]
    with pytest.raises(ClientError, match="FilterLimitExceeded"):
        ec2.describe_instances(Filters=[{"Name": "instance-id", "Values": values}])
    with pytest.raises(ClientError, match="InvalidParameterCombination"):
        ec2.describe_instances(InstanceIds=["i-00000000000000001"], MaxResults=5)
    assert ec2.describe_instances(MaxResults=1000)["Reservations"] is not None
