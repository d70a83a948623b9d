"""EC2 through boto3: default content, catalog, launch delay, capacity, CreateFleet, ClientToken."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from orca_devstack.emulators.aws import AwsEmulator
from tests.fixtures.aws import AwsClientFactory, wait_until


def state_of(ec2: Any, instance_id: str) -> str:
    reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    return str(reservations[0]["Instances"][0]["State"]["Name"])


def launch(ec2: Any, aws: AwsEmulator, instance_type: str, zone: str, **extra: Any) -> Any:
    return ec2.run_instances(
        ImageId=aws.defaults.ami_ids["al2023-x86_64"],
        InstanceType=instance_type,
        MinCount=1,
        MaxCount=1,
        SubnetId=aws.defaults.subnet_ids[zone],
        **extra,
    )


def test_default_content_is_seeded_and_stable_across_resets(
    aws: AwsEmulator, aws_client: AwsClientFactory
) -> None:
    ec2, ssm, sqs, logs = (aws_client(s) for s in ("ec2", "ssm", "sqs", "logs"))
    defaults = aws.defaults
    subnets = ec2.describe_subnets(SubnetIds=list(defaults.subnet_ids.values()))["Subnets"]
    assert {s["AvailabilityZone"] for s in subnets} == {"us-west-2a", "us-west-2b", "us-west-2c"}
    assert {s["VpcId"] for s in subnets} == {defaults.vpc_id}
    groups = ec2.describe_security_groups(GroupIds=[defaults.security_group_id])["SecurityGroups"]
    assert groups[0]["VpcId"] == defaults.vpc_id
    images = ec2.describe_images(ImageIds=list(defaults.ami_ids.values()))["Images"]
    assert {i["Architecture"] for i in images} == {"x86_64", "arm64"}
    for name, ami_id in defaults.ami_parameters.items():
        assert ssm.get_parameter(Name=name)["Parameter"]["Value"] == ami_id
    assert sqs.get_queue_url(QueueName="orca-interruptions")["QueueUrl"].endswith(
        "/orca-interruptions"
    )
    names = {g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]}
    assert {"/orca/pods", "/orca/container-status"} <= names
    before = defaults.model_dump()
    aws.control.reset()
    assert aws.defaults.model_dump() == before


def test_catalog_knows_accelerated_types(aws: AwsEmulator, aws_client: AwsClientFactory) -> None:
    ec2 = aws_client("ec2")
    wanted = [
        "p5.48xlarge",
        "g5.xlarge",
        "g6e.12xlarge",
        "trn1.32xlarge",
        "inf2.xlarge",
        "f2.6xlarge",
    ]
    types = {
        t["InstanceType"]: t
        for t in ec2.describe_instance_types(InstanceTypes=wanted)["InstanceTypes"]
    }
    assert types["p5.48xlarge"]["GpuInfo"]["Gpus"][0]["Count"] == 8
    assert types["trn1.32xlarge"]["NeuronInfo"]["NeuronDevices"][0]["Count"] == 16
    assert types["f2.6xlarge"]["FpgaInfo"]["Fpgas"][0]["Count"] == 1
    offerings = ec2.describe_instance_type_offerings(
        LocationType="availability-zone",
        Filters=[{"Name": "instance-type", "Values": ["p5.48xlarge"]}],
    )["InstanceTypeOfferings"]
    assert {"us-west-2a", "us-west-2b"} <= {o["Location"] for o in offerings}


def test_instances_stay_pending_then_run_and_terminate_through_shutting_down(
    aws: AwsEmulator, aws_client: AwsClientFactory
) -> None:
    ec2 = aws_client("ec2")
    instance = launch(ec2, aws, "m7i.large", "us-west-2a")["Instances"][0]
    assert instance["State"]["Name"] == "pending"
    assert state_of(ec2, instance["InstanceId"]) == "pending"
    wait_until(lambda: state_of(ec2, instance["InstanceId"]) == "running")
    terminated = ec2.terminate_instances(InstanceIds=[instance["InstanceId"]])
    assert terminated["TerminatingInstances"][0]["CurrentState"]["Name"] == "shutting-down"
    assert state_of(ec2, instance["InstanceId"]) == "shutting-down"
    wait_until(lambda: state_of(ec2, instance["InstanceId"]) == "terminated")


def test_per_type_launch_delay(aws: AwsEmulator, aws_client: AwsClientFactory) -> None:
    ec2 = aws_client("ec2")
    aws.control.set_launch_delay("g5.xlarge", 60)
    slow = launch(ec2, aws, "g5.xlarge", "us-west-2a")["Instances"][0]["InstanceId"]
    fast = launch(ec2, aws, "m7i.large", "us-west-2a")["Instances"][0]["InstanceId"]
    wait_until(lambda: state_of(ec2, fast) == "running")
    assert state_of(ec2, slow) == "pending"


def test_run_instances_beyond_capacity_raises_ice_until_capacity_returns(
    aws: AwsEmulator, aws_client: AwsClientFactory
) -> None:
    ec2 = aws_client("ec2")
    aws.control.set_capacity("g6e.xlarge", "us-west-2a", "on-demand", 1)
    first = launch(ec2, aws, "g6e.xlarge", "us-west-2a")["Instances"][0]["InstanceId"]
    with pytest.raises(ClientError) as raised:
        launch(ec2, aws, "g6e.xlarge", "us-west-2a")
    error = raised.value.response
    assert error["Error"]["Code"] == "InsufficientInstanceCapacity"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert "us-west-2b" in error["Error"]["Message"]
    spot = launch(
        ec2, aws, "g6e.xlarge", "us-west-2a", InstanceMarketOptions={"MarketType": "spot"}
    )["Instances"][0]
    assert spot["InstanceLifecycle"] == "spot"
    ec2.terminate_instances(InstanceIds=[first])
    wait_until(lambda: state_of(ec2, first) == "terminated")
    assert launch(ec2, aws, "g6e.xlarge", "us-west-2a")["Instances"]


def test_max_count_is_trimmed_to_capacity_and_min_count_enforced(
    aws: AwsEmulator, aws_client: AwsClientFactory
) -> None:
    ec2 = aws_client("ec2")
    aws.control.set_capacity("c7i.large", "us-west-2b", None, 2)
    common = {
        "ImageId": aws.defaults.ami_ids["al2023-x86_64"],
        "InstanceType": "c7i.large",
        "SubnetId": aws.defaults.subnet_ids["us-west-2b"],
    }
    assert len(ec2.run_instances(MinCount=1, MaxCount=5, **common)["Instances"]) == 2
    with pytest.raises(ClientError, match="InsufficientInstanceCapacity"):
        ec2.run_instances(MinCount=1, MaxCount=1, **common)


def test_unknown_types_and_zones_without_the_type_are_rejected(
    aws: AwsEmulator, aws_client: AwsClientFactory
) -> None:
    ec2 = aws_client("ec2")
    with pytest.raises(ClientError) as raised:
        launch(ec2, aws, "trn1.32xlarge", "us-west-2a")
    assert raised.value.response["Error"]["Code"] == "Unsupported"
    with pytest.raises(ClientError) as raised:
        launch(ec2, aws, "x9.huge", "us-west-2a")
    assert raised.value.response["Error"]["Code"] == "InvalidParameterValue"


def test_client_token_makes_run_instances_idempotent(
    aws: AwsEmulator, aws_client: AwsClientFactory
) -> None:
    ec2 = aws_client("ec2")
    first = launch(ec2, aws, "m7i.large", "us-west-2a", ClientToken="wf-1-attempt-1")
    again = launch(ec2, aws, "m7i.large", "us-west-2a", ClientToken="wf-1-attempt-1")
    assert again["Instances"][0]["InstanceId"] == first["Instances"][0]["InstanceId"]
    assert again["ReservationId"] == first["ReservationId"]
    running = ec2.describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}]
    )["Reservations"]
    assert sum(len(r["Instances"]) for r in running) == 1
    with pytest.raises(ClientError) as raised:
        launch(ec2, aws, "m7i.xlarge", "us-west-2a", ClientToken="wf-1-attempt-1")
    assert raised.value.response["Error"]["Code"] == "IdempotentParameterMismatch"
