"""attach_volumes / detach_volumes against the moto-based AWS emulator."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from orca.activities.models import VolumeAttachmentsInput
from orca.activities.volume_attachments import VolumeAttachmentActivities
from orca.aws_clients import AwsClients
from orca.ebs_volumes import PodVolume
from orca.failure_types import FailureType
from orca.launch_spec import PodRef
from orca_devstack.emulators.aws import AwsEmulator
from tests.activities.test_activities import settings_for

POD = PodRef(namespace="default", name="trainer", uid="uid-1")
FAST = timedelta(seconds=0.05)


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


def _instance(ec2: Any, aws: AwsEmulator, zone: str) -> str:
    answer = ec2.run_instances(
        ImageId=next(iter(aws.defaults.ami_ids.values())),
        InstanceType="m5.large",
        MinCount=1,
        MaxCount=1,
        SubnetId=aws.defaults.subnet_ids[zone],
    )
    instance_id = str(answer["Instances"][0]["InstanceId"])
    # EC2 attaches volumes only to a running (or stopped) instance.
    for _ in range(200):
        reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
        if reservations[0]["Instances"][0]["State"]["Name"] == "running":
            return instance_id
        time.sleep(0.05)
    raise AssertionError(f"{instance_id} never ran")


def _volume(ec2: Any, zone: str, device: str = "/dev/sdf") -> PodVolume:
    volume_id = ec2.create_volume(AvailabilityZone=zone, Size=10, VolumeType="gp3")["VolumeId"]
    for _ in range(200):  # creating → available
        if _state(ec2, volume_id)[0] == "available":
            break
        time.sleep(0.05)
    return PodVolume(
        volume_name="data",
        claim_name="data-claim",
        persistent_volume="pvc-1",
        volume_id=volume_id,
        zone=zone,
        device_name=device,
    )


def _state(ec2: Any, volume_id: str) -> tuple[str, list[tuple[str, str]]]:
    volume = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]
    return volume["State"], [(a["InstanceId"], a["State"]) for a in volume["Attachments"]]


async def test_attach_is_idempotent_and_detach_makes_the_volume_available(
    aws: AwsEmulator, aws_client: Any
) -> None:
    ec2 = aws_client("ec2")
    zone = next(iter(aws.defaults.subnet_ids))
    instance_id = _instance(ec2, aws, zone)
    volumes = (_volume(ec2, zone), _volume(ec2, zone, "/dev/sdg"))
    activities = VolumeAttachmentActivities(AwsClients(settings_for(aws).aws))
    request = VolumeAttachmentsInput(
        pod=POD, instance_id=instance_id, volumes=volumes, poll_interval=FAST
    )
    env = ActivityEnvironment()
    attached = await env.run(activities.attach_volumes, request)
    assert attached.volume_ids == tuple(v.volume_id for v in volumes)
    for volume in volumes:
        assert _state(ec2, volume.volume_id) == ("in-use", [(instance_id, "attached")])
    again = await env.run(activities.attach_volumes, request)  # a retry: already attached
    assert again.volume_ids == attached.volume_ids
    detached = await env.run(activities.detach_volumes, request)
    assert set(detached.volume_ids) == {v.volume_id for v in volumes}
    for volume in volumes:
        assert _state(ec2, volume.volume_id) == ("available", [])
    assert (await env.run(activities.detach_volumes, request)).volume_ids == ()


async def test_attach_waits_for_a_volume_held_by_a_previous_instance(
    aws: AwsEmulator, aws_client: Any
) -> None:
    ec2 = aws_client("ec2")
    zone = next(iter(aws.defaults.subnet_ids))
    previous, current = _instance(ec2, aws, zone), _instance(ec2, aws, zone)
    volume = _volume(ec2, zone)
    ec2.attach_volume(VolumeId=volume.volume_id, InstanceId=previous, Device="/dev/sdf")
    activities = VolumeAttachmentActivities(AwsClients(settings_for(aws).aws))
    told_to_wait = asyncio.Event()

    def on_heartbeat(*details: Any) -> None:
        if any("still attached to" in str(beat) for beat in details):
            told_to_wait.set()

    env = ActivityEnvironment()
    env.on_heartbeat = on_heartbeat
    request = VolumeAttachmentsInput(
        pod=POD, instance_id=current, volumes=(volume,), poll_interval=FAST
    )
    attach = asyncio.create_task(env.run(activities.attach_volumes, request))
    await asyncio.wait_for(told_to_wait.wait(), timeout=30)
    assert not attach.done()
    ec2.detach_volume(VolumeId=volume.volume_id, InstanceId=previous)
    outcome = await attach
    assert outcome.waited_for == (volume.volume_id,)
    assert _state(ec2, volume.volume_id) == ("in-use", [(current, "attached")])


async def test_a_missing_volume_fails_without_retry(aws: AwsEmulator, aws_client: Any) -> None:
    ec2 = aws_client("ec2")
    zone = next(iter(aws.defaults.subnet_ids))
    instance_id = _instance(ec2, aws, zone)
    volume = _volume(ec2, zone).model_copy(update={"volume_id": "vol-0123456789abcdef0"})
    activities = VolumeAttachmentActivities(AwsClients(settings_for(aws).aws))
    request = VolumeAttachmentsInput(
        pod=POD, instance_id=instance_id, volumes=(volume,), poll_interval=FAST
    )
    with pytest.raises(ApplicationError) as failure:
        await ActivityEnvironment().run(activities.attach_volumes, request)
    assert failure.value.non_retryable
    assert failure.value.type == FailureType.CONFIGURATION
    assert "does not exist" in str(failure.value)
