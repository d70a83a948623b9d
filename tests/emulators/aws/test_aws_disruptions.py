"""Spot interruptions to SQS, injected faults and throttling, through boto3."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from orca_devstack.emulators.aws import AwsEmulator
from tests.fixtures.aws import AwsClientFactory, wait_until


def launch(aws: AwsEmulator, ec2: Any, spot: bool = True) -> str:
    extra: dict[str, Any] = {"InstanceMarketOptions": {"MarketType": "spot"}} if spot else {}
    return str(
        ec2.run_instances(
            ImageId=aws.defaults.ami_ids["al2023-x86_64"],
            InstanceType="g5.xlarge",
            MinCount=1,
            MaxCount=1,
            SubnetId=aws.defaults.subnet_ids["us-west-2b"],
            **extra,
        )["Instances"][0]["InstanceId"]
    )


def drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    for message in messages:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return [json.loads(m["Body"]) for m in messages]


def test_spot_interruption_warns_on_sqs_then_terminates(
    aws: AwsEmulator, aws_client: AwsClientFactory
) -> None:
    ec2, sqs = aws_client("ec2"), aws_client("sqs")
    url = aws.defaults.interruption_queue_url
    instance_id = launch(aws, ec2)
    events: list[dict[str, Any]] = []

    def seen(detail_type: str, state: str | None = None) -> bool:
        events.extend(drain(sqs, url))
        return any(
            e["detail-type"] == detail_type
            and e["detail"]["instance-id"] == instance_id
            and (state is None or e["detail"].get("state") == state)
            for e in events
        )

    wait_until(lambda: seen("EC2 Instance State-change Notification", "running"))
    aws.control.interrupt(instance_id, "spot-interruption", notice_seconds=0.3)
    wait_until(lambda: seen("EC2 Spot Instance Interruption Warning"))
    warning = next(
        e for e in events if e["detail-type"] == "EC2 Spot Instance Interruption Warning"
    )
    assert warning["source"] == "aws.ec2"
    assert warning["account"] == aws.defaults.account_id
    assert warning["region"] == "us-west-2"
    assert warning["detail"]["instance-action"] == "terminate"
    wait_until(lambda: seen("EC2 Instance State-change Notification", "terminated"))
    assert seen("EC2 Instance State-change Notification", "shutting-down")
    instance = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    assert instance["State"]["Name"] == "terminated"
    assert instance["StateReason"]["Code"] == "Server.SpotInstanceTermination"


def test_rebalance_recommendation_leaves_the_instance_running(
    aws: AwsEmulator, aws_client: AwsClientFactory
) -> None:
    ec2, sqs = aws_client("ec2"), aws_client("sqs")
    instance_id = launch(aws, ec2)
    aws.control.interrupt(instance_id, "rebalance")
    events: list[dict[str, Any]] = []
    wait_until(
        lambda: (
            events.extend(drain(sqs, aws.defaults.interruption_queue_url))
            or any(e["detail-type"] == "EC2 Instance Rebalance Recommendation" for e in events)
        )
    )
    state = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    assert state["State"]["Name"] in ("pending", "running")
    with pytest.raises(ValueError, match="not a spot instance"):
        aws.control.interrupt(launch(aws, ec2, spot=False), "spot-interruption")


def test_injected_faults_fail_then_stop(aws: AwsEmulator, aws_client: AwsClientFactory) -> None:
    ec2 = aws_client("ec2")
    aws.control.inject_fault("DescribeInstances", "RequestLimitExceeded", count=2)
    for _ in range(2):
        with pytest.raises(ClientError) as raised:
            ec2.describe_instances()
        assert raised.value.response["Error"]["Code"] == "RequestLimitExceeded"
        assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    ec2.describe_instances()
    aws.control.inject_fault("RunInstances", "InstanceLimitExceeded", instance_type="p5.48xlarge")
    with pytest.raises(ClientError, match="InstanceLimitExceeded"):
        ec2.run_instances(
            ImageId=aws.defaults.ami_ids["dlami-gpu"],
            InstanceType="p5.48xlarge",
            MinCount=1,
            MaxCount=1,
        )
    assert launch(aws, ec2)
    aws.control.inject_fault("SendCommand", "InternalServerError")
    with pytest.raises(ClientError) as raised:
        aws_client("ssm").send_command(InstanceIds=["i-1"], DocumentName="AWS-RunShellScript")
    assert raised.value.response["Error"]["Code"] == "InternalServerError"


def test_botocore_retries_through_transient_throttling(
    aws: AwsEmulator, aws_client: AwsClientFactory
) -> None:
    aws.control.inject_fault("DescribeSubnets", "RequestLimitExceeded", count=1)
    subnets = aws_client("ec2", retries=3).describe_subnets()["Subnets"]
    assert subnets
