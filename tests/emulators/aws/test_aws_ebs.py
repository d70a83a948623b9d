"""EBS volumes in the AWS emulator, through boto3: as strict as EC2 (zones, parameter limits,
ClientToken, states, attachment limit, termination) — each refusal with EC2's code and message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from orca_devstack.emulators.aws import AwsEmulator
from tests.fixtures.aws import AwsClientFactory, wait_until

ZONE = "us-west-2a"


@pytest.fixture
def ebs(aws: AwsEmulator) -> AwsEmulator:
    aws.control.set_volume_delays(create=0.1, attach=0.1, detach=0.1)
    return aws


def refused(call: Any, **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as raised:
        call(**kwargs)
    error = raised.value.response["Error"]
    return str(error["Code"]), str(error["Message"])


def volume(ec2: Any, volume_id: str) -> dict[str, Any]:
    return dict(ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0])


def available_volume(ec2: Any, zone: str = ZONE, **extra: Any) -> str:
    volume_id = str(ec2.create_volume(AvailabilityZone=zone, Size=8, **extra)["VolumeId"])
    wait_until(lambda: volume(ec2, volume_id)["State"] == "available")
    return volume_id


def running(ec2: Any, aws: AwsEmulator, zone: str = ZONE, instance_type: str = "m7i.large") -> str:
    instance_id = str(
        ec2.run_instances(
            ImageId=aws.defaults.ami_ids["al2023-x86_64"],
            InstanceType=instance_type,
            MinCount=1,
            MaxCount=1,
            SubnetId=aws.defaults.subnet_ids[zone],
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
    return instance_id


def attachment_state(ec2: Any, volume_id: str) -> str | None:
    attachments = volume(ec2, volume_id)["Attachments"]
    return str(attachments[0]["State"]) if attachments else None


def test_create_volume_is_creating_then_available_with_its_tags(
    ebs: AwsEmulator, aws_client: AwsClientFactory
) -> None:
    ec2 = aws_client("ec2")
    created = ec2.create_volume(
        AvailabilityZone=ZONE,
        Size=20,
        VolumeType="gp3",
        Iops=4000,
        Throughput=250,
        TagSpecifications=[
            {"ResourceType": "volume", "Tags": [{"Key": "orca.research/claim-uid", "Value": "u1"}]}
        ],
    )
    assert created["State"] == "creating"
    assert volume(ec2, created["VolumeId"])["State"] == "creating"
    wait_until(lambda: volume(ec2, created["VolumeId"])["State"] == "available")
    described = volume(ec2, created["VolumeId"])
    assert (described["Iops"], described["Throughput"], described["Size"]) == (4000, 250, 20)
    assert described["Tags"] == [{"Key": "orca.research/claim-uid", "Value": "u1"}]
    view = ebs.control.volume_view(created["VolumeId"])
    assert view["files"] == []
    assert not view["formatted"]


@pytest.mark.parametrize(
    ("parameters", "code", "message"),
    [
        ({"AvailabilityZone": "us-west-2z", "Size": 8}, "InvalidZone.NotFound", "us-west-2z"),
        ({"Size": 20000, "VolumeType": "gp3"}, "InvalidParameterValue", "maximum is 16384GiB"),
        ({"Size": 0, "VolumeType": "gp3"}, "InvalidParameterValue", "minimum is 1GiB"),
        ({"Size": 100, "VolumeType": "st1"}, "InvalidParameterValue", "minimum is 125GiB"),
        (
            {"Size": 100, "VolumeType": "gp3", "Iops": 20000},
            "InvalidParameterValue",
            "Volume iops of 20000 is too high; maximum is 16000.",
        ),
        (
            {"Size": 100, "VolumeType": "gp3", "Iops": 2000},
            "InvalidParameterValue",
            "Volume iops of 2000 is too low; minimum is 3000.",
        ),
        (
            {"Size": 20, "VolumeType": "gp3", "Iops": 15000},
            "InvalidParameterValue",
            "Iops to volume size ratio of 750.000000 is too high; maximum is 500",
        ),
        (
            {"Size": 100, "VolumeType": "gp3", "Throughput": 1001},
            "InvalidParameterValue",
            "Throughput (MiBps) of 1001 is too high; maximum is 1000.",
        ),
        (
            {"Size": 100, "VolumeType": "gp3", "Iops": 3000, "Throughput": 1000},
            "InvalidParameterValue",
            "Throughput (MiBps) to iops ratio of 0.333333 is too high; maximum is 0.250000 "
            "MiBps per iops.",
        ),
        (
            {"Size": 100, "VolumeType": "io2"},
            "InvalidParameterCombination",
            "The parameter iops must be specified for io2 volumes.",
        ),
        (
            {"Size": 100, "VolumeType": "gp2", "Iops": 3000},
            "InvalidParameterCombination",
            "The parameter iops is not supported for gp2 volumes.",
        ),
        (
            {"Size": 100, "VolumeType": "io1", "Iops": 1000, "Throughput": 200},
            "InvalidParameterCombination",
            "throughput can only be specified for volumeType gp3.",
        ),
    ],
)
def test_create_volume_refuses_what_ec2_refuses(
    ebs: AwsEmulator,
    aws_client: AwsClientFactory,
    parameters: dict[str, Any],
    code: str,
    message: str,
) -> None:
    ec2 = aws_client("ec2")
    answer = refused(ec2.create_volume, **{"AvailabilityZone": ZONE, **parameters})
    assert answer[0] == code
    assert message in answer[1]
    assert ec2.describe_volumes()["Volumes"] == []


def test_client_token_returns_the_same_volume_or_a_mismatch(
    ebs: AwsEmulator, aws_client: AwsClientFactory
) -> None:
    ec2 = aws_client("ec2")
    first = ec2.create_volume(AvailabilityZone=ZONE, Size=8, ClientToken="claim-1")
    again = ec2.create_volume(AvailabilityZone=ZONE, Size=8, ClientToken="claim-1")
    assert again["VolumeId"] == first["VolumeId"]
    assert len(ec2.describe_volumes()["Volumes"]) == 1
    wait_until(lambda: volume(ec2, first["VolumeId"])["State"] == "available")
    assert ec2.create_volume(AvailabilityZone=ZONE, Size=8, ClientToken="claim-1")["State"] == (
        "available"
    )
    code, message = refused(ec2.create_volume, AvailabilityZone=ZONE, Size=9, ClientToken="claim-1")
    assert code == "IdempotentParameterMismatch"
    assert "inconsistent with arguments used in previous request" in message


def test_an_unknown_kms_key_makes_the_volume_vanish_after_creating(
    ebs: AwsEmulator, aws_client: AwsClientFactory
) -> None:
    """As EC2: the call succeeds (the key is checked asynchronously), the volume goes away."""
    ec2, kms = aws_client("ec2"), aws_client("kms")
    key = kms.create_key()["KeyMetadata"]["Arn"]
    good = available_volume(ec2, Encrypted=True, KmsKeyId=key)
    assert volume(ec2, good)["KmsKeyId"] == key
    missing = "arn:aws:kms:us-west-2:123456789012:key/00000000-0000-0000-0000-000000000000"
    created = ec2.create_volume(
        AvailabilityZone=ZONE, Size=8, Encrypted=True, KmsKeyId=missing, ClientToken="k"
    )
    assert created["State"] == "creating"

    def gone() -> bool:
        try:
            volume(ec2, created["VolumeId"])
        except ClientError as error:
            return error.response["Error"]["Code"] == "InvalidVolume.NotFound"
        return False

    wait_until(gone)
    code, message = refused(
        ec2.create_volume,
        AvailabilityZone=ZONE,
        Size=8,
        Encrypted=True,
        KmsKeyId=missing,
        ClientToken="k",
    )
    assert (code, message.split(".")[0]) == (
        "IdempotentParameterMismatch",
        "The client token you have provided is associated with a resource that is already deleted",
    )


def test_attach_and_detach_pass_through_attaching_and_detaching(
    ebs: AwsEmulator, aws_client: AwsClientFactory
) -> None:
    ec2 = aws_client("ec2")
    instance_id = running(ec2, ebs)
    volume_id = available_volume(ec2)
    attached = ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device="/dev/sdf")
    assert attached["State"] == "attaching"
    assert volume(ec2, volume_id)["State"] == "in-use"
    assert attachment_state(ec2, volume_id) == "attaching"
    wait_until(lambda: attachment_state(ec2, volume_id) == "attached")
    listed = ec2.describe_volumes(
        Filters=[
            {"Name": "attachment.instance-id", "Values": [instance_id]},
            {"Name": "status", "Values": ["in-use"]},
        ]
    )["Volumes"]
    assert volume_id in {v["VolumeId"] for v in listed}  # with the root volume, as on EC2
    detached = ec2.detach_volume(VolumeId=volume_id, InstanceId=instance_id)
    assert detached["State"] == "detaching"
    assert attachment_state(ec2, volume_id) == "detaching"
    wait_until(lambda: volume(ec2, volume_id)["State"] == "available")
    assert volume(ec2, volume_id)["Attachments"] == []
    code, message = refused(ec2.detach_volume, VolumeId=volume_id)
    assert (code, message) == (
        "IncorrectState",
        f"Volume '{volume_id}' is in the 'available' state.",
    )


def test_attach_refuses_zone_state_and_device_conflicts(
    ebs: AwsEmulator, aws_client: AwsClientFactory
) -> None:
    ec2 = aws_client("ec2")
    instance_id = running(ec2, ebs)
    other_zone = available_volume(ec2, zone="us-west-2b")
    assert refused(
        ec2.attach_volume, VolumeId=other_zone, InstanceId=instance_id, Device="/dev/sdf"
    ) == (
        "InvalidVolume.ZoneMismatch",
        f"The volume '{other_zone}' is not in the same availability zone as instance "
        f"'{instance_id}'",
    )
    ebs.control.set_volume_delays(create=60)
    creating = ec2.create_volume(AvailabilityZone=ZONE, Size=8)["VolumeId"]
    assert refused(
        ec2.attach_volume, VolumeId=creating, InstanceId=instance_id, Device="/dev/sdf"
    ) == ("IncorrectState", f"{creating} is not 'available'.")
    ebs.control.set_volume_delays(create=0.1)
    first, second = available_volume(ec2), available_volume(ec2)
    ec2.attach_volume(VolumeId=first, InstanceId=instance_id, Device="/dev/sdf")
    assert refused(
        ec2.attach_volume, VolumeId=first, InstanceId=instance_id, Device="/dev/sdg"
    ) == ("VolumeInUse", f"{first} is already attached to an instance")
    assert refused(
        ec2.attach_volume, VolumeId=second, InstanceId=instance_id, Device="/dev/sdf"
    ) == (
        "InvalidParameterValue",
        "Invalid value '/dev/sdf' for unixDevice. Attachment point /dev/sdf is already in use",
    )
    assert refused(ec2.delete_volume, VolumeId=first) == (
        "VolumeInUse",
        f"Volume {first} is currently attached to {instance_id}",
    )
    ebs.control.set_launch_delay(None, 60)
    pending = ec2.run_instances(
        ImageId=ebs.defaults.ami_ids["al2023-x86_64"],
        InstanceType="m7i.large",
        MinCount=1,
        MaxCount=1,
        SubnetId=ebs.defaults.subnet_ids[ZONE],
    )["Instances"][0]["InstanceId"]
    assert refused(ec2.attach_volume, VolumeId=second, InstanceId=pending, Device="/dev/sdh") == (
        "IncorrectState",
        f"Instance '{pending}' is not 'running'.",
    )


def test_the_nitro_attachment_limit_counts_the_root_volume_and_the_interface(
    ebs: AwsEmulator, aws_client: AwsClientFactory
) -> None:
    """28 attachments shared: one network interface and the root volume leave 26 data volumes."""
    ec2 = aws_client("ec2")
    instance_id = running(ec2, ebs)
    volumes = [str(ec2.create_volume(AvailabilityZone=ZONE, Size=1)["VolumeId"]) for _ in range(27)]
    wait_until(
        lambda: all(
            v["State"] == "available" for v in ec2.describe_volumes(VolumeIds=volumes)["Volumes"]
        )
    )
    devices = [f"/dev/sd{a}{b}" for a in "fg" for b in "abcdefghijklmnop"]
    for volume_id, device in zip(volumes[:26], devices, strict=False):
        ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device=device)
    code, message = refused(
        ec2.attach_volume, VolumeId=volumes[26], InstanceId=instance_id, Device=devices[26]
    )
    assert code == "AttachmentLimitExceeded"
    assert message.startswith("You may attach up to 27 devices for this instance type.")


def test_termination_detaches_volumes_once_the_instance_is_terminated(
    ebs: AwsEmulator, aws_client: AwsClientFactory
) -> None:
    ec2 = aws_client("ec2")
    instance_id = running(ec2, ebs)
    volume_id = available_volume(
        ec2,
        TagSpecifications=[
            {"ResourceType": "volume", "Tags": [{"Key": "orca.research/cluster", "Value": "c1"}]}
        ],
    )
    ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device="/dev/sdf")
    wait_until(lambda: attachment_state(ec2, volume_id) == "attached")
    ebs.middleware.config.terminate_delay_s = 60
    try:
        ec2.terminate_instances(InstanceIds=[instance_id])
        assert volume(ec2, volume_id)["State"] == "in-use"  # still shutting-down
        with ebs.middleware.lock:  # the shutting-down delay runs out
            ebs.middleware._became_terminated(instance_id)
    finally:
        ebs.middleware.config.terminate_delay_s = 0.2
    assert volume(ec2, volume_id)["State"] == "available"
    tagged = ec2.describe_volumes(
        Filters=[
            {"Name": "tag:orca.research/cluster", "Values": ["c1"]},
            {"Name": "tag-key", "Values": ["orca.research/cluster"]},
            {"Name": "availability-zone", "Values": [ZONE]},
            {"Name": "volume-id", "Values": [volume_id]},
            {"Name": "status", "Values": ["available"]},
        ]
    )["Volumes"]
    assert [v["VolumeId"] for v in tagged] == [volume_id]
    directory = ebs.control.volume_view(volume_id)["directory"]
    ec2.delete_volume(VolumeId=volume_id)
    assert ec2.describe_volumes()["Volumes"] == []
    assert not Path(directory).exists()
    assert refused(ec2.delete_volume, VolumeId=volume_id)[0] == "InvalidVolume.NotFound"
