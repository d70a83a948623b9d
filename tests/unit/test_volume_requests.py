"""StorageClass parameters and a claim → the CreateVolume request, or a refusal naming the
parameter and what is allowed."""

from __future__ import annotations

from typing import Any

import pytest

from orca.ebs_volumes import CLAIM_UID_TAG, PERSISTENT_VOLUME_TAG
from orca.volume_requests import InvalidVolumeRequest, volume_request, volume_tags


def claim(storage: str = "10Gi", modes: tuple[str, ...] = ("ReadWriteOnce",)) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "ml", "name": "data", "uid": "u-1"},
        "spec": {"accessModes": list(modes), "resources": {"requests": {"storage": storage}}},
    }


def storage_class(**parameters: str) -> dict[str, Any]:
    return {"provisioner": "orca.research/ebs", "parameters": parameters}


def test_defaults_are_an_encrypted_gp3_with_ext4() -> None:
    request = volume_request(storage_class(), claim())
    assert (request.volume_type, request.size_gib, request.encrypted, request.fs_type) == (
        "gp3",
        10,
        True,
        "ext4",
    )
    kwargs = request.create_volume_kwargs("us-west-2a", "u-1", {"a": "b"})
    assert kwargs["ClientToken"] == "u-1"
    assert "Iops" not in kwargs


def test_size_rounds_up_to_whole_gib() -> None:
    assert volume_request(storage_class(), claim("1500Mi")).size_gib == 2
    assert volume_request(storage_class(), claim("1")).size_gib == 1


def test_gp3_with_iops_throughput_and_a_key() -> None:
    request = volume_request(
        storage_class(type="gp3", iops="6000", throughput="250", kmsKeyId="arn:k", fsType="xfs"),
        claim("100Gi"),
    )
    kwargs = request.create_volume_kwargs("us-west-2b", "u-1", {})
    assert (kwargs["Iops"], kwargs["Throughput"], kwargs["KmsKeyId"]) == (6000, 250, "arn:k")
    assert request.fs_type == "xfs"


@pytest.mark.parametrize(
    ("parameters", "storage", "field", "words"),
    [
        ({"type": "standard"}, "10Gi", "parameters.type", "allowed: gp3, gp2"),
        ({"type": "gp2", "iops": "3000"}, "10Gi", "parameters.iops", "only gp3, io1"),
        ({"type": "io2"}, "10Gi", "parameters.iops", "needs provisioned IOPS"),
        ({"iops": "20000"}, "100Gi", "parameters.iops", "3000 to 16000"),
        ({"iops": "8000"}, "10Gi", "parameters.iops", "500 IOPS per GiB"),
        ({"throughput": "2000"}, "10Gi", "parameters.throughput", "125 to 1000"),
        ({"encrypted": "yes"}, "10Gi", "parameters.encrypted", '"true" or "false"'),
        ({"encrypted": "false", "kmsKeyId": "k"}, "10Gi", "parameters.kmsKeyId", "encrypted"),
        ({"fsType": "btrfs"}, "10Gi", "parameters.fsType", "allowed: ext4, xfs"),
        ({"zone": "us-west-2a"}, "10Gi", "parameters.zone", "allowed: type, iops"),
        ({"type": "st1"}, "10Gi", "spec.resources.requests.storage", "125 to 16384 GiB"),
        ({}, "lots", "spec.resources.requests.storage", "not a quantity"),
    ],
)
def test_refusals_name_the_parameter_and_what_is_allowed(
    parameters: dict[str, str], storage: str, field: str, words: str
) -> None:
    with pytest.raises(InvalidVolumeRequest) as refused:
        volume_request(storage_class(**parameters), claim(storage))
    assert refused.value.field == field
    assert words in str(refused.value)


def test_shared_access_modes_are_refused() -> None:
    with pytest.raises(InvalidVolumeRequest, match="ReadWriteMany is not possible with EBS"):
        volume_request(storage_class(), claim(modes=("ReadWriteMany",)))


def test_tags_name_the_claim_and_its_persistent_volume() -> None:
    tags = volume_tags(claim(), cluster="dev")
    assert tags[CLAIM_UID_TAG] == "u-1"
    assert tags[PERSISTENT_VOLUME_TAG] == "pvc-u-1"
    assert tags["orca.research/cluster"] == "dev"
    assert tags["orca.research/managed-by"] == "orca"
