"""The emulator's patches to moto (`orca_devstack.emulators.aws.moto_patches`): answers as AWS
gives them, and the same answers moto gave where the patch is only about speed."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto.core.serialize import XFormedAttributePicker
from moto.ec2.models.tags import TagBackend

from orca_devstack.emulators.aws import AwsEmulator, moto_patches
from tests.emulators.aws.test_aws_ssm import running_instance
from tests.fixtures.aws import AwsClientFactory


def test_a_command_runs_on_the_instances_it_names_only(
    aws: AwsEmulator, aws_client: AwsClientFactory
) -> None:
    ssm = aws_client("ssm")
    target, bystander = running_instance(aws, aws_client), running_instance(aws, aws_client)
    command = ssm.send_command(
        InstanceIds=[target],
        DocumentName="AWS-RunShellScript",
        Parameters={"commands": ["echo hi"]},
    )["Command"]
    assert command["InstanceIds"] == [target]
    # ORCA's calls: the command is listed for its instance only, and has no invocation elsewhere.
    listed = ssm.list_commands(InstanceId=bystander)["Commands"]
    assert command["CommandId"] not in [c["CommandId"] for c in listed]
    invocation = ssm.get_command_invocation(CommandId=command["CommandId"], InstanceId=target)
    assert invocation["InstanceId"] == target
    with pytest.raises(ClientError, match="InvocationDoesNotExist"):
        ssm.get_command_invocation(CommandId=command["CommandId"], InstanceId=bystander)


def test_commands_are_found_by_id_among_many(
    aws: AwsEmulator, aws_client: AwsClientFactory
) -> None:
    ssm = aws_client("ssm")
    instance_id = running_instance(aws, aws_client)
    sent = [
        ssm.send_command(
            InstanceIds=[instance_id],
            DocumentName="AWS-RunShellScript",
            Parameters={"commands": [f"echo {n}"]},
            Comment=f"command {n}",
        )["Command"]["CommandId"]
        for n in range(5)
    ]
    for n, command_id in enumerate(sent):
        [found] = ssm.list_commands(CommandId=command_id)["Commands"]
        assert found["Comment"] == f"command {n}"
    with pytest.raises(ClientError, match="InvalidCommandId"):
        ssm.list_commands(CommandId="00000000-0000-0000-0000-000000000000")


def test_instance_tags_read_as_moto_would_read_them(
    aws: AwsEmulator, aws_client: AwsClientFactory
) -> None:
    """moto_patches answers an instance's tags from its own entry instead of a scan of every
    tag; the answer must equal moto's own describe_tags for that resource."""
    ec2 = aws_client("ec2")
    tags = [{"Key": "team", "Value": "vision"}, {"Key": "Name", "Value": "job-1"}]
    launched = ec2.run_instances(
        ImageId=aws.defaults.ami_ids["al2023-x86_64"],
        InstanceType="t3.micro",
        MinCount=2,
        MaxCount=2,
        TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
    )
    backend = aws.middleware.ec2
    for item in launched["Instances"]:
        instance: Any = backend.get_instance(item["InstanceId"])
        scanned = TagBackend.describe_tags(backend, filters={"resource-id": [instance.id]})
        assert instance.get_tags() == scanned
        assert {t["key"]: t["value"] for t in instance.get_tags()} == {
            "team": "vision",
            "Name": "job-1",
        }
    described = ec2.describe_instances(InstanceIds=[launched["Instances"][0]["InstanceId"]])
    [instance_item] = described["Reservations"][0]["Instances"]
    assert sorted((t["Key"], t["Value"]) for t in instance_item["Tags"]) == sorted(
        (t["Key"], t["Value"]) for t in tags
    )


def test_responses_serialize_as_moto_serialized_them_without_the_key_memo(
    aws: AwsEmulator, aws_client: AwsClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Patch 10 remembers the serializer's candidate keys per (class, shape, member): every
    answer must be the one moto's own alias lookup gives, in XML (EC2) and JSON (SSM) alike."""
    ec2, ssm = aws_client("ec2"), aws_client("ssm")
    instance_id = running_instance(aws, aws_client)
    ec2.create_tags(Resources=[instance_id], Tags=[{"Key": "team", "Value": "vision"}])
    calls = {
        "instances": lambda: ec2.describe_instances(InstanceIds=[instance_id]),
        "subnets": lambda: ec2.describe_subnets(),
        "images": lambda: ec2.describe_images(ImageIds=list(aws.defaults.ami_ids.values())),
        "types": lambda: ec2.describe_instance_types(InstanceTypes=["p5.48xlarge", "g5.xlarge"]),
        "groups": lambda: ec2.describe_security_groups(),
        "commands": lambda: ssm.list_commands(InstanceId=instance_id),
        "parameters": lambda: ssm.get_parameter(Name=next(iter(aws.defaults.ami_parameters))),
    }

    def answers() -> dict[str, Any]:
        found = {}
        for name, call in calls.items():
            answer = call()
            answer.pop("ResponseMetadata")
            found[name] = answer
        return found

    remembered = answers()
    assert moto_patches._possible_keys_of  # the memo answered them
    monkeypatch.setattr(XFormedAttributePicker, "get_possible_keys", moto_patches._possible_keys)
    assert answers() == remembered
    [instance] = remembered["instances"]["Reservations"][0]["Instances"]
    assert instance["State"]["Name"] == "running"
    assert {"Key": "team", "Value": "vision"} in instance["Tags"]


def test_sqs_keeps_a_message_only_for_its_queues_retention_period(
    aws: AwsEmulator, aws_client: AwsClientFactory
) -> None:
    """Patch 11 reads the retention period from the queue itself: a message older than it is
    not received, a younger one is."""
    sqs = aws_client("sqs")
    url = sqs.create_queue(QueueName="retention", Attributes={"MessageRetentionPeriod": "60"})[
        "QueueUrl"
    ]
    sqs.send_message(QueueUrl=url, MessageBody="young")
    [young] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert young["Body"] == "young"
    sqs.delete_message(QueueUrl=url, ReceiptHandle=young["ReceiptHandle"])
    sqs.send_message(QueueUrl=url, MessageBody="old")
    [old] = aws.middleware.sqs.get_queue("retention")._messages
    old.sent_timestamp -= 61_000  # sent 61 s earlier: past the 60 s retention
    assert "Messages" not in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)


def test_a_secure_string_read_without_decryption_reveals_nothing(
    aws: AwsEmulator, aws_client: AwsClientFactory
) -> None:
    ssm = aws_client("ssm")
    ssm.put_parameter(Name="/orca/pods/u/x", Value="s3cr3t-value", Type="SecureString")
    ssm.put_parameter(Name="/orca/pods/u/plain", Value="visible", Type="String")
    listed = {
        p["Name"]: p["Value"]
        for p in ssm.get_parameters_by_path(Path="/orca/pods/u/")["Parameters"]
    }
    assert "s3cr3t" not in listed["/orca/pods/u/x"]
    assert listed["/orca/pods/u/x"].startswith("AQICAH")  # a KMS ciphertext blob
    assert listed["/orca/pods/u/plain"] == "visible"
    assert "s3cr3t" not in ssm.get_parameter(Name="/orca/pods/u/x")["Parameter"]["Value"]
    decrypted = ssm.get_parameter(Name="/orca/pods/u/x", WithDecryption=True)["Parameter"]
    assert decrypted["Value"] == "s3cr3t-value"


def test_get_metric_data_gives_motos_answers_from_an_index() -> None:
    """Patch 7 only changes how datapoints are found: the same values and timestamps as moto's
    own scan, for dimensioned and undimensioned queries, both scan orders."""
    from datetime import timedelta

    from moto.cloudwatch.models import CloudWatchBackend
    from moto.core.utils import utcnow

    from orca_devstack.emulators.aws import moto_patches

    moto_patches.install()
    backend = CloudWatchBackend("us-west-2", "123456789012")
    for pod in ("a", "b"):
        for value in (1.0, 5.0, 3.0):
            backend.put_metric_data(
                "ORCA/Pods",
                [
                    {
                        "MetricName": "cpu_usage_cores",
                        "Value": value if pod == "a" else value * 10,
                        "Dimensions": [{"Name": "Pod", "Value": pod}],
                    }
                ],
            )
    queries = [
        {
            "Id": f"q{i}",
            "MetricStat": {
                "Metric": {"Namespace": "ORCA/Pods", "MetricName": "cpu_usage_cores", **dims},
                "Period": 60,
                "Stat": stat,
            },
        }
        for i, (dims, stat) in enumerate(
            [
                ({"Dimensions": [{"Name": "Pod", "Value": "a"}]}, "Maximum"),
                ({"Dimensions": [{"Name": "Pod", "Value": "b"}]}, "Average"),
                ({"Dimensions": [{"Name": "Pod", "Value": "none"}]}, "Average"),
                ({}, "Sum"),
            ]
        )
    ]
    now = utcnow()
    for scan_by in ("TimestampAscending", "TimestampDescending"):
        arguments = (queries, now - timedelta(minutes=5), now + timedelta(minutes=1), scan_by)
        patched = backend.get_metric_data(*arguments)
        original = moto_patches._moto_get_metric_data(backend, *arguments)
        assert patched == original
    assert patched[0]["values"] == [5.0]
    assert patched[1]["values"] == [30.0]
    assert patched[2]["values"] == []
    # The index is kept across calls: data put since the last call is found, and a list moto
    # replaced (a reset) starts it afresh.
    backend.put_metric_data(
        "ORCA/Pods",
        [
            {
                "MetricName": "cpu_usage_cores",
                "Value": 9.0,
                "Dimensions": [{"Name": "Pod", "Value": "a"}],
            }
        ],
    )
    arguments = (queries, now - timedelta(minutes=5), now + timedelta(minutes=1))
    assert backend.get_metric_data(*arguments) == moto_patches._moto_get_metric_data(
        backend, *arguments
    )
    assert backend.get_metric_data(*arguments)[0]["values"] == [9.0]
    backend.metric_data = []
    assert backend.get_metric_data(*arguments)[0]["values"] == []


def test_instances_are_found_by_id_as_moto_finds_them(
    aws: AwsEmulator, aws_client: AwsClientFactory
) -> None:
    """Patch 12: the same instance objects as moto's scan, for instances launched before and
    after the index was built (several per RunInstances too), and moto's error for an unknown
    ID."""
    from moto.ec2.exceptions import InvalidInstanceIdError

    ec2, backend = aws_client("ec2"), aws.middleware.ec2

    def launch(count: int) -> list[str]:
        launched = ec2.run_instances(
            ImageId=aws.defaults.ami_ids["al2023-x86_64"],
            InstanceType="t3.micro",
            MinCount=count,
            MaxCount=count,
        )
        return [item["InstanceId"] for item in launched["Instances"]]

    first = launch(1)
    assert backend.get_instance(first[0]).id == first[0]
    ids = first + launch(3) + launch(2)
    for instance_id in ids:
        instance = backend.get_instance(instance_id)
        assert instance.id == instance_id
        assert moto_patches._moto_get_instance(backend, instance_id) is instance
    with pytest.raises(InvalidInstanceIdError):
        backend.get_instance("i-0000000000000dead")
