"""SSM agent, the container lifecycle of docs/instance-contract.md and CloudWatch Logs output."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from orca.instance_contract import (
    new_status_key,
    split_status_line,
    status_key_parameter,
    verify_status_line,
)
from orca_devstack.emulators.aws import AwsEmulator
from tests.fixtures.aws import AwsClientFactory, wait_until


def running_instance(aws: AwsEmulator, aws_client: AwsClientFactory) -> str:
    ec2, ssm = aws_client("ec2"), aws_client("ssm")
    instance_id = str(
        ec2.run_instances(
            ImageId=aws.defaults.ami_ids["al2023-x86_64"],
            InstanceType="m7i.large",
            MinCount=1,
            MaxCount=1,
            SubnetId=aws.defaults.subnet_ids["us-west-2a"],
        )["Instances"][0]["InstanceId"]
    )

    def online() -> bool:
        info = ssm.describe_instance_information(
            Filters=[{"Key": "InstanceIds", "Values": [instance_id]}]
        )["InstanceInformationList"]
        return bool(info) and info[0]["PingStatus"] == "Online"

    wait_until(online)
    return instance_id


def start_script(pod: dict[str, Any]) -> str:
    return (
        "#!/bin/bash\nset -euo pipefail\nmkdir -p /etc/orca\n"
        f"cat > /etc/orca/pod.json <<'ORCA_POD_JSON'\n{json.dumps(pod)}\nORCA_POD_JSON\n"
        "exec orca-run /etc/orca/pod.json\n"
    )


def make_pod(annotations: dict[str, str], init: bool = False) -> dict[str, Any]:
    return {
        "namespace": "ml",
        "name": "train",
        "uid": str(uuid.uuid4()),
        "annotations": annotations,
        "initContainers": [{"name": "fetch"}] if init else [],
        "containers": [{"name": "trainer", "image": "busybox"}, {"name": "sidecar", "image": "x"}],
        "restartPolicy": "Never",
    }


def send(ssm: Any, instance_id: str, comment: str, script: str) -> str:
    return str(
        ssm.send_command(
            InstanceIds=[instance_id],
            DocumentName="AWS-RunShellScript",
            Comment=comment,
            Parameters={"commands": [script]},
        )["Command"]["CommandId"]
    )


def invocation(ssm: Any, command_id: str, instance_id: str) -> dict[str, Any]:
    return dict(ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id))


def status_events(logs: Any, pod_uid: str) -> list[dict[str, Any]]:
    events = logs.filter_log_events(
        logGroupName="/orca/container-status", logStreamNames=[pod_uid]
    )["events"]
    return [json.loads(split_status_line(e["message"]).report) for e in events]


def test_status_reports_are_signed_with_the_pods_key_from_its_parameter(
    aws: AwsEmulator, aws_client: AwsClientFactory
) -> None:
    """As the runner does: the key is the pod's SSM parameter, each line carries the HMAC."""
    ssm, logs = aws_client("ssm"), aws_client("logs")
    instance_id = running_instance(aws, aws_client)
    pod = make_pod({"emulator.orca.research/run-seconds": "0.1"})
    key = new_status_key()
    ssm.put_parameter(
        Name=status_key_parameter(pod["uid"]), Value=key, Type="SecureString", Overwrite=True
    )
    command_id = send(ssm, instance_id, "orca start ml/train", start_script(pod))
    wait_until(lambda: invocation(ssm, command_id, instance_id)["Status"] == "Success")
    messages = [
        e["message"]
        for e in logs.filter_log_events(
            logGroupName="/orca/container-status", logStreamNames=[pod["uid"]]
        )["events"]
    ]
    assert messages
    events = [verify_status_line(split_status_line(m), key, pod["uid"]) for m in messages]
    assert all(e is not None and e.pod_uid == pod["uid"] for e in events)
    assert not any(
        verify_status_line(split_status_line(m), new_status_key(), pod["uid"]) for m in messages
    )


def test_agent_goes_online_only_after_running(
    aws: AwsEmulator, aws_client: AwsClientFactory
) -> None:
    ec2, ssm = aws_client("ec2"), aws_client("ssm")
    aws.control.set_launch_delay(None, 60)
    pending = ec2.run_instances(
        ImageId=aws.defaults.ami_ids["al2023-x86_64"],
        InstanceType="m7i.large",
        MinCount=1,
        MaxCount=1,
    )["Instances"][0]["InstanceId"]
    listed = ssm.describe_instance_information()["InstanceInformationList"]
    assert pending not in {i["InstanceId"] for i in listed}
    with pytest.raises(ClientError) as raised:
        send(ssm, pending, "orca start ml/train", start_script(make_pod({})))
    assert raised.value.response["Error"]["Code"] == "InvalidInstanceId"
    aws.control.set_launch_delay(None, 0.1)
    instance_id = running_instance(aws, aws_client)
    info = ssm.describe_instance_information()["InstanceInformationList"]
    online = next(i for i in info if i["InstanceId"] == instance_id)
    assert online["PlatformType"] == "Linux"


def test_start_command_runs_containers_to_success_with_status_events_and_logs(
    aws: AwsEmulator, aws_client: AwsClientFactory
) -> None:
    ssm, logs = aws_client("ssm"), aws_client("logs")
    instance_id = running_instance(aws, aws_client)
    pod = make_pod(
        {
            "emulator.orca.research/run-seconds": "0.2",
            "emulator.orca.research/log-lines": "epoch 1\nepoch 2",
        },
        init=True,
    )
    command_id = send(ssm, instance_id, "orca start ml/train", start_script(pod))
    assert invocation(ssm, command_id, instance_id)["Status"] == "InProgress"
    wait_until(lambda: invocation(ssm, command_id, instance_id)["Status"] == "Success")
    assert invocation(ssm, command_id, instance_id)["ResponseCode"] == 0
    events = status_events(logs, pod["uid"])
    trainer = [(e["state"], e["reason"]) for e in events if e["container"] == "trainer"]
    assert trainer == [
        ("waiting", "PullingImage"),
        ("running", "Started"),
        ("terminated", "Completed"),
    ]
    fetch = [e for e in events if e["container"] == "fetch"]
    assert all(e["init"] for e in fetch)
    assert fetch[-1]["reason"] == "Completed"
    assert events.index(fetch[-1]) < events.index(
        next(e for e in events if e["container"] == "trainer")
    )
    stream = f"ml/train/{pod['uid']}/trainer"
    lines = logs.get_log_events(logGroupName="/orca/pods", logStreamName=stream)["events"]
    assert [e["message"] for e in lines] == ["epoch 1", "epoch 2"]


def test_exit_code_annotation_fails_the_invocation(
    aws: AwsEmulator, aws_client: AwsClientFactory
) -> None:
    ssm, logs = aws_client("ssm"), aws_client("logs")
    instance_id = running_instance(aws, aws_client)
    pod = make_pod(
        {"emulator.orca.research/run-seconds": "0.1", "emulator.orca.research/exit-code": "137"}
    )
    command_id = send(ssm, instance_id, "orca start ml/train", start_script(pod))
    wait_until(lambda: invocation(ssm, command_id, instance_id)["Status"] == "Failed")
    assert invocation(ssm, command_id, instance_id)["ResponseCode"] == 137
    last = status_events(logs, pod["uid"])[-1]
    assert (last["state"], last["reason"], last["exitCode"]) == ("terminated", "OOMKilled", 137)


def test_stop_command_kills_running_containers(
    aws: AwsEmulator, aws_client: AwsClientFactory
) -> None:
    ssm, logs = aws_client("ssm"), aws_client("logs")
    instance_id = running_instance(aws, aws_client)
    pod = make_pod({"emulator.orca.research/run-seconds": "inf"})
    start = send(ssm, instance_id, "orca start ml/train", start_script(pod))
    wait_until(lambda: any(e["state"] == "running" for e in status_events(logs, pod["uid"])))
    stop = send(ssm, instance_id, "orca stop ml/train", "ORCA_STOP_GRACE_SECONDS=30\nkill\n")
    wait_until(lambda: invocation(ssm, stop, instance_id)["Status"] == "Success")
    assert invocation(ssm, start, instance_id)["ResponseCode"] == 143
    killed = [e for e in status_events(logs, pod["uid"]) if e["state"] == "terminated"]
    assert {(e["container"], e["reason"]) for e in killed} == {
        ("trainer", "Killed"),
        ("sidecar", "Killed"),
    }


def test_control_finishes_containers_with_an_exit_code(
    aws: AwsEmulator, aws_client: AwsClientFactory
) -> None:
    ssm = aws_client("ssm")
    instance_id = running_instance(aws, aws_client)
    pod = make_pod({"emulator.orca.research/run-seconds": "inf"})
    command_id = send(ssm, instance_id, "orca start ml/train", start_script(pod))
    wait_until(lambda: aws.middleware.containers.runs[pod["uid"]].group_started)
    aws.control.finish_containers(pod["uid"], 2)
    result = invocation(ssm, command_id, instance_id)
    assert (result["Status"], result["ResponseCode"]) == ("Failed", 2)
    with pytest.raises(KeyError):
        aws.control.finish_containers(pod["uid"], 0)


@pytest.fixture
def quick_back_off(aws: AwsEmulator) -> Iterator[float]:
    """A 0.2 s first back-off instead of the kubelet's 10 s."""
    before = aws.middleware.config.restart_back_off_s
    aws.middleware.config.restart_back_off_s = 0.2
    yield 0.2
    aws.middleware.config.restart_back_off_s = before


def test_failing_containers_restart_with_the_kubelets_back_off(
    aws: AwsEmulator, aws_client: AwsClientFactory, quick_back_off: float
) -> None:
    """OnFailure, exits 1, 1, 1 then 0: restarted at once, then after a back-off of 1x and 2x
    the first delay reported as waiting/CrashLoopBackOff; the invocation ends with the 0."""
    ssm, logs = aws_client("ssm"), aws_client("logs")
    instance_id = running_instance(aws, aws_client)
    pod = make_pod(
        {
            "emulator.orca.research/run-seconds": "0.1",
            "emulator.orca.research/exit-codes": "1,1,1,0",
        }
    )
    pod["restartPolicy"] = "OnFailure"
    command_id = send(ssm, instance_id, "orca start ml/train", start_script(pod))
    wait_until(lambda: invocation(ssm, command_id, instance_id)["Status"] == "Success", timeout=15)
    trainer = [
        (e["state"], e["reason"], e["exitCode"], e["backOffSeconds"])
        for e in status_events(logs, pod["uid"])
        if e["container"] == "trainer"
    ]
    started = ("running", "Started", None, None)
    failed = ("terminated", "Error", 1, None)
    assert trainer == [
        ("waiting", "PullingImage", None, None),
        started,
        failed,
        started,
        failed,
        ("waiting", "CrashLoopBackOff", None, quick_back_off),
        started,
        failed,
        ("waiting", "CrashLoopBackOff", None, 2 * quick_back_off),
        started,
        ("terminated", "Completed", 0, None),
    ]


def test_a_stop_during_the_back_off_ends_the_run_without_a_restart(
    aws: AwsEmulator, aws_client: AwsClientFactory
) -> None:
    """Always, every run exits 2: in the (10 s) back-off the stop command ends the run at once,
    with nothing more reported, as the runner's supervisor does."""
    ssm, logs = aws_client("ssm"), aws_client("logs")
    instance_id = running_instance(aws, aws_client)
    pod = make_pod(
        {"emulator.orca.research/run-seconds": "0.1", "emulator.orca.research/exit-code": "2"}
    )
    pod["restartPolicy"] = "Always"
    start = send(ssm, instance_id, "orca start ml/train", start_script(pod))
    wait_until(
        lambda: any(e["reason"] == "CrashLoopBackOff" for e in status_events(logs, pod["uid"]))
    )
    assert invocation(ssm, start, instance_id)["Status"] == "InProgress"
    stop = send(ssm, instance_id, "orca stop ml/train", "ORCA_STOP_GRACE_SECONDS=30\nkill\n")
    wait_until(lambda: invocation(ssm, stop, instance_id)["Status"] == "Success")
    assert invocation(ssm, start, instance_id)["Status"] == "Failed"
    last = [e for e in status_events(logs, pod["uid"]) if e["container"] == "trainer"][-1]
    assert (last["state"], last["reason"], last["backOffSeconds"]) == (
        "waiting",
        "CrashLoopBackOff",
        10,
    )
    assert sum(1 for e in status_events(logs, pod["uid"]) if e["reason"] == "Started") == 4
