"""An EBS volume's content in the emulated containers: the runner document's blockDevices must be
attached before the containers start, and a `-v` from the volume's mount point makes the
container's sandbox path the volume's directory, from one pod to the next on another instance."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest

from orca.ebs_volumes import mount_point
from orca.instance_contract import (
    RUNNER_DOCUMENT_DELIMITER,
    RunnerBlockDevice,
    RunnerContainer,
    RunnerDocument,
)
from orca_devstack.emulators.aws import AwsEmulator
from tests.emulators.aws.test_aws_ebs import ZONE, attachment_state, available_volume
from tests.emulators.aws.test_aws_exec import exec_in, started
from tests.emulators.aws.test_aws_ssm import (
    invocation,
    running_instance,
    send,
    start_script,
    status_events,
)
from tests.fixtures.aws import AwsClientFactory, wait_until


@pytest.fixture
def ebs(aws: AwsEmulator) -> AwsEmulator:
    aws.control.set_volume_delays(create=0.05, attach=0.05, detach=0.05)
    return aws


def pod_script(volume_id: str, *, sub_path: str = "") -> tuple[dict[str, Any], str]:
    """A start script whose runner document mounts `volume_id` at /data in `trainer`."""
    uid = str(uuid.uuid4())
    pod = {
        "namespace": "ml",
        "name": "train-0",
        "uid": uid,
        "annotations": {"emulator.orca.research/run-seconds": "inf"},
        "initContainers": [],
        "containers": [{"name": "trainer", "image": "busybox"}],
        "restartPolicy": "Never",
    }
    source = mount_point(volume_id) + (f"/{sub_path}" if sub_path else "")
    document = RunnerDocument(
        pod_uid=uid,
        region="us-west-2",
        status_log_group="/orca/container-status",
        pod_dir=f"/var/lib/orca/pods/{uid}",
        restart_policy="Never",
        block_devices=[
            RunnerBlockDevice(
                volume_id=volume_id, device_name="/dev/sdf", mount_point=mount_point(volume_id)
            )
        ],
        containers=[
            RunnerContainer(
                name="trainer", image="busybox", run_arguments=["-v", f"{source}:/data"]
            )
        ],
    )
    script = (
        start_script(pod)
        + f"cat > runner.json <<'{RUNNER_DOCUMENT_DELIMITER}'\n{document.to_json()}\n"
        f"{RUNNER_DOCUMENT_DELIMITER}\n"
    )
    return pod, script


def attach(ec2: Any, volume_id: str, instance_id: str) -> None:
    ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device="/dev/sdf")
    wait_until(lambda: attachment_state(ec2, volume_id) == "attached")


def detach(ec2: Any, volume_id: str) -> None:
    ec2.detach_volume(VolumeId=volume_id)
    wait_until(lambda: attachment_state(ec2, volume_id) is None)


def test_content_survives_from_one_pod_to_the_next_on_another_instance(
    ebs: AwsEmulator, aws_client: AwsClientFactory
) -> None:
    ec2, ssm = aws_client("ec2"), aws_client("ssm")
    volume_id = available_volume(ec2)
    first_instance = running_instance(ebs, aws_client)
    attach(ec2, volume_id, first_instance)
    first, script = pod_script(volume_id)
    send(ssm, first_instance, "orca start ml/train-0", script)
    wait_until(lambda: started(aws_client, first))
    wrote = exec_in(
        ssm, first_instance, first, "trainer", "sh", "-c", "echo epoch-7 > data/checkpoint"
    )
    assert wrote["ResponseCode"] == 0
    view = ebs.control.volume_view(volume_id)
    assert view["files"] == ["checkpoint"]
    assert (view["formatted"], view["filesystems_created"], view["mounts"]) == (True, 1, 1)
    ebs.control.finish_containers(first["uid"], 0)
    detach(ec2, volume_id)

    second_instance = running_instance(ebs, aws_client)
    assert second_instance != first_instance
    attach(ec2, volume_id, second_instance)
    second, script = pod_script(volume_id)
    send(ssm, second_instance, "orca start ml/train-0", script)
    wait_until(lambda: started(aws_client, second))
    read = exec_in(ssm, second_instance, second, "trainer", "cat", "data/checkpoint")
    assert (read["ResponseCode"], read["StandardOutputContent"]) == (0, "epoch-7\n")
    view = ebs.control.volume_view(volume_id)
    assert (view["filesystems_created"], view["mounts"]) == (1, 2)  # not formatted again


def test_a_sub_path_mounts_a_directory_of_the_volume(
    ebs: AwsEmulator, aws_client: AwsClientFactory
) -> None:
    ec2, ssm = aws_client("ec2"), aws_client("ssm")
    volume_id = available_volume(ec2)
    instance_id = running_instance(ebs, aws_client)
    attach(ec2, volume_id, instance_id)
    pod, script = pod_script(volume_id, sub_path="runs/a")
    send(ssm, instance_id, "orca start ml/train-0", script)
    wait_until(lambda: started(aws_client, pod))
    assert exec_in(ssm, instance_id, pod, "trainer", "touch", "data/x")["ResponseCode"] == 0
    assert ebs.control.volume_view(volume_id)["files"] == ["runs/a/x"]


def test_a_volume_not_attached_to_the_instance_fails_the_containers(
    ebs: AwsEmulator, aws_client: AwsClientFactory
) -> None:
    ec2, ssm = aws_client("ec2"), aws_client("ssm")
    volume_id = available_volume(ec2, zone=ZONE)
    instance_id = running_instance(ebs, aws_client)
    pod, script = pod_script(volume_id)
    command_id = send(ssm, instance_id, "orca start ml/train-0", script)
    wait_until(lambda: invocation(ssm, command_id, instance_id)["Status"] == "Failed")
    output = invocation(ssm, command_id, instance_id)["StandardOutputContent"]
    assert f"volume {volume_id} is not attached to this instance ({instance_id})" in output
    (event,) = status_events(aws_client("logs"), pod["uid"])
    assert (event["state"], event["reason"], event["exitCode"]) == ("terminated", "Error", 1)
    assert not ebs.control.volume_view(volume_id)["formatted"]


def test_the_control_api_shows_a_volume_and_sets_the_delays(
    ebs: AwsEmulator, aws_client: AwsClientFactory
) -> None:
    ec2 = aws_client("ec2")
    request = urllib.request.Request(
        f"{ebs.endpoint_url}/_orca/volume-delays",
        data=json.dumps({"create": 30}).encode(),
        method="POST",
    )
    with urllib.request.urlopen(request) as answer:
        assert json.loads(answer.read()) == {"ok": True}
    volume_id = ec2.create_volume(AvailabilityZone=ZONE, Size=8)["VolumeId"]
    with urllib.request.urlopen(f"{ebs.endpoint_url}/_orca/volumes/{volume_id}") as answer:
        view = json.loads(answer.read())
    assert (view["state"], view["zone"], view["formatted"], view["files"]) == (
        "creating",
        ZONE,
        False,
        [],
    )
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{ebs.endpoint_url}/_orca/volumes/vol-0123456789abcdef0")
    assert missing.value.code == 404
