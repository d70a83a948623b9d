"""`orca exec` Run Commands in the emulated containers' sandboxes (orca.exec_command)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from orca.exec_command import ExecRequest, exec_comment, render_exec_script
from orca_devstack.emulators.aws import AwsEmulator
from tests.emulators.aws.test_aws_ssm import (
    invocation,
    make_pod,
    running_instance,
    send,
    start_script,
    status_events,
)
from tests.fixtures.aws import AwsClientFactory, wait_until


def exec_in(
    ssm: Any,
    instance_id: str,
    pod: dict[str, Any],
    container: str,
    *command: str,
    stdin: bytes = b"",
) -> dict[str, Any]:
    request = ExecRequest(
        pod_uid=pod["uid"],
        container=container,
        command=list(command),
        stdin=base64.b64encode(stdin).decode(),
    )
    command_id = send(
        ssm, instance_id, exec_comment(pod["namespace"], pod["name"]), render_exec_script(request)
    )
    return wait_until(
        lambda: (
            found
            if (found := invocation(ssm, command_id, instance_id))["Status"]
            in ("Success", "Failed")
            else None
        )
    )


def started(aws_client: AwsClientFactory, pod: dict[str, Any]) -> bool:
    return any(e["state"] == "running" for e in status_events(aws_client("logs"), pod["uid"]))


def test_exec_runs_in_the_containers_sandbox_and_ends_with_the_pod(
    aws: AwsEmulator, aws_client: AwsClientFactory
) -> None:
    ssm = aws_client("ssm")
    instance_id = running_instance(aws, aws_client)
    pod = make_pod({"emulator.orca.research/run-seconds": "inf"})
    send(ssm, instance_id, "orca start ml/train", start_script(pod))
    wait_until(lambda: started(aws_client, pod))

    made = exec_in(ssm, instance_id, pod, "trainer", "sh", "-c", "pwd; echo oops >&2; exit 7")
    assert made["ResponseCode"] == 7
    assert made["Status"] == "Failed"
    assert made["StandardErrorContent"] == "oops\n"
    sandbox = Path(made["StandardOutputContent"].strip())
    assert sandbox.name == "trainer"
    assert sandbox.is_dir()

    piped = exec_in(ssm, instance_id, pod, "sidecar", "cat", stdin=b"to the sidecar")
    assert (piped["ResponseCode"], piped["StandardOutputContent"]) == (0, "to the sidecar")

    other = exec_in(ssm, instance_id, pod, "nope", "true")
    assert other["ResponseCode"] == 126
    assert "container nope is not running" in other["StandardErrorContent"]

    aws.control.finish_containers(pod["uid"], 0)
    assert not sandbox.exists()  # thrown away with the containers
    after = exec_in(ssm, instance_id, pod, "trainer", "true")
    assert after["ResponseCode"] == 126


def test_the_sandbox_goes_with_the_instance(aws: AwsEmulator, aws_client: AwsClientFactory) -> None:
    ssm, ec2 = aws_client("ssm"), aws_client("ec2")
    instance_id = running_instance(aws, aws_client)
    pod = make_pod({"emulator.orca.research/run-seconds": "inf"})
    send(ssm, instance_id, "orca start ml/train", start_script(pod))
    wait_until(lambda: started(aws_client, pod))
    where = exec_in(ssm, instance_id, pod, "trainer", "pwd")
    sandbox = Path(where["StandardOutputContent"].strip())
    assert sandbox.is_dir()
    ec2.terminate_instances(InstanceIds=[instance_id])
    wait_until(lambda: not sandbox.exists())
