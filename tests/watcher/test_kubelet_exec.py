"""`InstanceExec`: the Run Command behind `kubectl exec`, with the AWS emulator's EC2 (which
instance is the pod's) and a recording SSM double (what is sent, what each status means)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from orca.exec_command import read_exec_request
from orca.instance_tags import POD_UID
from orca.watcher.kubelet_exec import ExecOptions, ExecRefused, InstanceExec
from orca_devstack.emulators.aws import AwsEmulator
from tests.fixtures.aws import wait_until

POD = {"metadata": {"namespace": "ml", "name": "train", "uid": "uid-1"}}
OPTIONS = ExecOptions(("sh", "-c", "exit 3"), stdin=True, stdout=True, stderr=True, tty=False)


class RecordingSsm:
    """Answers GetCommandInvocation with the given invocations in turn; records SendCommand."""

    def __init__(self, *invocations: dict[str, Any]) -> None:
        self.invocations = list(invocations)
        self.sent: list[dict[str, Any]] = []

    def send_command(self, **kwargs: Any) -> dict[str, Any]:
        self.sent.append(kwargs)
        return {"Command": {"CommandId": "cmd-1"}}

    def get_command_invocation(self, **kwargs: Any) -> dict[str, Any]:
        return self.invocations.pop(0)


def ec2_with_instance(aws: AwsEmulator, pod_uid: str) -> tuple[Any, str]:
    ec2 = boto3.client(
        "ec2",
        endpoint_url=aws.endpoint_url,
        region_name=aws.region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    instance_id = str(
        ec2.run_instances(
            ImageId=image,
            InstanceType="m7i.large",
            MinCount=1,
            MaxCount=1,
            SubnetId=subnet,
            TagSpecifications=[
                {"ResourceType": "instance", "Tags": [{"Key": POD_UID, "Value": pod_uid}]}
            ],
        )["Instances"][0]["InstanceId"]
    )
    wait_until(
        lambda: (
            ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0][
                "State"
            ]["Name"]
            == "running"
        )
    )
    return ec2, instance_id


def test_the_command_goes_to_the_pods_instance_and_its_exit_code_comes_back(
    aws: AwsEmulator,
) -> None:
    ec2, instance_id = ec2_with_instance(aws, "uid-1")
    ssm = RecordingSsm(
        {"Status": "InProgress"},
        {
            "Status": "Failed",
            "ResponseCode": 3,
            "StandardOutputContent": "o",
            "StandardErrorContent": "e",
        },
    )
    runner = InstanceExec(ec2, ssm, sleep=lambda _: None)  # type: ignore[arg-type]
    result = runner.run(POD, "main", OPTIONS, b"input")
    assert (result.exit_code, result.stdout, result.stderr) == (3, b"o", b"e")
    (sent,) = ssm.sent
    assert sent["InstanceIds"] == [instance_id]
    assert sent["DocumentName"] == "AWS-RunShellScript"
    assert sent["Comment"] == "orca exec ml/train"
    request = read_exec_request(sent["Parameters"]["commands"][0])
    assert request is not None
    assert (request.pod_uid, request.container, request.command) == (
        "uid-1",
        "main",
        list(OPTIONS.command),
    )
    assert request.stdin_bytes() == b"input"


def test_a_command_that_never_ran_to_its_end_says_so(aws: AwsEmulator) -> None:
    ec2, instance_id = ec2_with_instance(aws, "uid-1")
    ssm = RecordingSsm({"Status": "Undeliverable", "StatusDetails": "Undeliverable"})
    result = InstanceExec(ec2, ssm, sleep=lambda _: None).run(POD, "main", OPTIONS, b"")  # type: ignore[arg-type]
    assert result.exit_code is None
    assert result.message is not None
    assert f"on instance {instance_id}" in result.message
    assert "is Undeliverable" in result.message


def test_a_pod_without_a_running_instance_is_refused(aws: AwsEmulator) -> None:
    ec2, _ = ec2_with_instance(aws, "someone-else")
    ssm = RecordingSsm()
    with pytest.raises(ExecRefused, match="no running instance") as refused:
        InstanceExec(ec2, ssm).run(POD, "main", OPTIONS, b"")  # type: ignore[arg-type]
    assert refused.value.code == 409
    assert not ssm.sent


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("output=1", "at least one command"),
        ("command=ls", "at least 1 of stdin, stdout, stderr"),
    ],
)
def test_exec_options_are_checked_as_the_kubelet_checks_them(query: str, message: str) -> None:
    with pytest.raises(ExecRefused, match=message):
        ExecOptions.from_query(query)


def test_exec_options_keep_every_command_argument_in_order() -> None:
    options = ExecOptions.from_query("command=sh&command=-c&command=a+b&input=1&output=1&tty=1")
    assert options.command == ("sh", "-c", "a b")
    assert (options.stdin, options.stdout, options.stderr, options.tty) == (True, True, False, True)


def test_polling_backs_off_and_stops_when_the_client_has_gone(aws: AwsEmulator) -> None:
    ec2, _ = ec2_with_instance(aws, "uid-1")
    ssm = RecordingSsm(*[{"Status": "InProgress"}] * 10)
    slept: list[float] = []
    runner = InstanceExec(ec2, ssm, sleep=slept.append)  # type: ignore[arg-type]
    result = runner.run(POD, "main", OPTIONS, b"", abandoned=lambda: len(slept) >= 6)
    assert result.exit_code is None
    assert result.message == "the client went away"
    assert slept == sorted(slept)
    assert slept[0] == 0.5
    assert slept[-1] <= 5.0
    assert slept[-1] > slept[0]
