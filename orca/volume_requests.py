"""An `orca.research/ebs` StorageClass and a claim → a validated EBS `CreateVolume` request (pure).

The StorageClass parameters of docs/volumes.md (`type`, `iops`, `throughput`, `encrypted`,
`kmsKeyId`, `fsType`) are checked against what EBS accepts for the volume type and size, so a
class ORCA cannot honour is refused before any AWS call, with a message naming the parameter and
what is allowed (posted as a `ProvisioningFailed` event on the claim). The claim's storage request
is rounded up to whole GiB, as EBS sizes are.

Pure: no AWS or Kubernetes calls here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, ConfigDict

from orca import instance_tags
from orca.ebs_volumes import (
    CLAIM_NAME_TAG,
    CLAIM_NAMESPACE_TAG,
    CLAIM_UID_TAG,
    DEFAULT_FS_TYPE,
    FS_TYPES,
    PERSISTENT_VOLUME_TAG,
    persistent_volume_name,
)
from orca.units import GIB, parse_quantity

DEFAULT_VOLUME_TYPE = "gp3"
ACCESS_MODES = ("ReadWriteOnce", "ReadWriteOncePod")
"""An EBS volume attaches to one instance at a time."""
PARAMETERS = ("type", "iops", "throughput", "encrypted", "kmsKeyId", "fsType")


class _Limits(BaseModel):
    model_config = ConfigDict(frozen=True)

    min_gib: int
    max_gib: int
    iops: tuple[int, int] | None = None
    """Provisioned IOPS allowed (None: the type takes no `iops`)."""
    iops_per_gib: int | None = None
    throughput: tuple[int, int] | None = None
    """MiB/s allowed (None: the type takes no `throughput`)."""


VOLUME_TYPES: dict[str, _Limits] = {
    "gp3": _Limits(
        min_gib=1, max_gib=16384, iops=(3000, 16000), iops_per_gib=500, throughput=(125, 1000)
    ),
    "gp2": _Limits(min_gib=1, max_gib=16384),
    "io1": _Limits(min_gib=4, max_gib=16384, iops=(100, 64000), iops_per_gib=50),
    "io2": _Limits(min_gib=4, max_gib=65536, iops=(100, 256000), iops_per_gib=1000),
    "st1": _Limits(min_gib=125, max_gib=16384),
    "sc1": _Limits(min_gib=125, max_gib=16384),
}
"""EBS's limits per volume type (the EC2 user guide, "Amazon EBS volume types")."""


class InvalidVolumeRequest(ValueError):  # noqa: N818 - reads as the refusal it is
    """The class or claim asks for something ORCA cannot provision; `str()` says what."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class VolumeRequest(BaseModel):
    """What `CreateVolume` is called with, and what the PersistentVolume then says."""

    model_config = ConfigDict(frozen=True)

    size_gib: int
    volume_type: str
    iops: int | None = None
    throughput: int | None = None
    encrypted: bool = True
    kms_key_id: str | None = None
    fs_type: str = DEFAULT_FS_TYPE

    def create_volume_kwargs(
        self, zone: str, client_token: str, tags: Mapping[str, str]
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "AvailabilityZone": zone,
            "Size": self.size_gib,
            "VolumeType": self.volume_type,
            "Encrypted": self.encrypted,
            "ClientToken": client_token,
            "TagSpecifications": [
                {
                    "ResourceType": "volume",
                    "Tags": [{"Key": k, "Value": v} for k, v in sorted(tags.items())],
                }
            ],
        }
        if self.iops is not None:
            kwargs["Iops"] = self.iops
        if self.throughput is not None:
            kwargs["Throughput"] = self.throughput
        if self.kms_key_id is not None:
            kwargs["KmsKeyId"] = self.kms_key_id
        return kwargs


def size_gib(claim: Mapping[str, Any]) -> int:
    """The claim's `spec.resources.requests.storage`, rounded up to whole GiB."""
    field = "spec.resources.requests.storage"
    spec = claim.get("spec") or {}
    raw = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    if raw is None:
        raise InvalidVolumeRequest(field, "the claim requests no storage; set e.g. 10Gi")
    try:
        amount = parse_quantity(str(raw))
    except (ValueError, InvalidOperation):
        raise InvalidVolumeRequest(
            field, f"{raw!r} is not a quantity; use e.g. 10Gi or 500Mi"
        ) from None
    if amount <= 0:
        raise InvalidVolumeRequest(field, f"{raw} must be more than zero")
    return max(1, math.ceil(Decimal(amount) / GIB))


def _whole(parameter: str, value: str) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise InvalidVolumeRequest(
            f"parameters.{parameter}", f"{value!r} is not a whole number"
        ) from None
    if number <= 0:
        raise InvalidVolumeRequest(f"parameters.{parameter}", f"{value} must be positive")
    return number


def _boolean(parameter: str, value: str) -> bool:
    text = str(value).strip().lower()
    if text in ("true", "false"):
        return text == "true"
    raise InvalidVolumeRequest(f"parameters.{parameter}", f'{value!r} is not "true" or "false"')


def volume_request(storage_class: Mapping[str, Any], claim: Mapping[str, Any]) -> VolumeRequest:
    """The validated request for `claim` under `storage_class`; `InvalidVolumeRequest` names the
    parameter (or claim field) ORCA cannot honour and what is allowed."""
    parameters = {str(k): str(v) for k, v in (storage_class.get("parameters") or {}).items()}
    unknown = sorted(set(parameters) - set(PARAMETERS))
    if unknown:
        raise InvalidVolumeRequest(
            f"parameters.{unknown[0]}",
            f"ORCA does not know this parameter; allowed: {', '.join(PARAMETERS)}",
        )
    modes = list((claim.get("spec") or {}).get("accessModes") or [])
    wrong = [m for m in modes if m not in ACCESS_MODES]
    if wrong:
        raise InvalidVolumeRequest(
            "spec.accessModes",
            f"{wrong[0]} is not possible with EBS (a volume attaches to one instance); "
            f"allowed: {', '.join(ACCESS_MODES)}",
        )
    volume_type = parameters.get("type", DEFAULT_VOLUME_TYPE).strip().lower()
    limits = VOLUME_TYPES.get(volume_type)
    if limits is None:
        raise InvalidVolumeRequest(
            "parameters.type",
            f"{volume_type!r} is not an EBS volume type ORCA provisions; "
            f"allowed: {', '.join(VOLUME_TYPES)}",
        )
    size = size_gib(claim)
    if not limits.min_gib <= size <= limits.max_gib:
        raise InvalidVolumeRequest(
            "spec.resources.requests.storage",
            f"{size} GiB is outside what {volume_type} allows "
            f"({limits.min_gib} to {limits.max_gib} GiB)",
        )
    iops = None
    if "iops" in parameters:
        iops = _whole("iops", parameters["iops"])
        if limits.iops is None:
            raise InvalidVolumeRequest(
                "parameters.iops",
                f"{volume_type} takes no provisioned IOPS; only gp3, io1 and io2 do",
            )
        low, high = limits.iops
        if not low <= iops <= high:
            raise InvalidVolumeRequest(
                "parameters.iops", f"{iops} is outside {low} to {high} for {volume_type}"
            )
        assert limits.iops_per_gib is not None
        if iops > limits.iops_per_gib * size and iops > low:
            raise InvalidVolumeRequest(
                "parameters.iops",
                f"{iops} IOPS on {size} GiB exceeds {volume_type}'s {limits.iops_per_gib} IOPS "
                f"per GiB (at most {max(low, limits.iops_per_gib * size)} for this size)",
            )
    elif volume_type in ("io1", "io2"):
        raise InvalidVolumeRequest(
            "parameters.iops", f'{volume_type} needs provisioned IOPS; set e.g. iops: "3000"'
        )
    throughput = None
    if "throughput" in parameters:
        throughput = _whole("throughput", parameters["throughput"])
        if limits.throughput is None:
            raise InvalidVolumeRequest(
                "parameters.throughput", f"{volume_type} takes no throughput; only gp3 does"
            )
        low, high = limits.throughput
        if not low <= throughput <= high:
            raise InvalidVolumeRequest(
                "parameters.throughput",
                f"{throughput} MiB/s is outside {low} to {high} for {volume_type}",
            )
        if iops is not None and throughput * 4 > iops and throughput > low:
            raise InvalidVolumeRequest(
                "parameters.throughput",
                f"{throughput} MiB/s needs at least {throughput * 4} IOPS on gp3 "
                f"(0.25 MiB/s per IOPS); iops is {iops}",
            )
    encrypted = _boolean("encrypted", parameters.get("encrypted", "true"))
    kms_key_id = parameters.get("kmsKeyId") or None
    if kms_key_id is not None and not encrypted:
        raise InvalidVolumeRequest(
            "parameters.kmsKeyId", 'a KMS key needs encrypted: "true"; remove one of them'
        )
    fs_type = parameters.get("fsType", DEFAULT_FS_TYPE).strip().lower()
    if fs_type not in FS_TYPES:
        raise InvalidVolumeRequest(
            "parameters.fsType", f"{fs_type!r} is not supported; allowed: {', '.join(FS_TYPES)}"
        )
    return VolumeRequest(
        size_gib=size,
        volume_type=volume_type,
        iops=iops,
        throughput=throughput,
        encrypted=encrypted,
        kms_key_id=kms_key_id,
        fs_type=fs_type,
    )


def volume_tags(claim: Mapping[str, Any], *, cluster: str) -> dict[str, str]:
    """The provisioned volume's tags: its claim and PersistentVolume, the cluster, managed-by."""
    metadata = claim.get("metadata") or {}
    uid = str(metadata["uid"])
    return {
        "Name": f"{metadata.get('namespace')}/{metadata.get('name')}",
        CLAIM_UID_TAG: uid,
        CLAIM_NAMESPACE_TAG: str(metadata.get("namespace") or ""),
        CLAIM_NAME_TAG: str(metadata.get("name") or ""),
        PERSISTENT_VOLUME_TAG: persistent_volume_name(uid),
        instance_tags.CLUSTER: cluster,
        instance_tags.MANAGED_BY: instance_tags.MANAGED_BY_VALUE,
    }
