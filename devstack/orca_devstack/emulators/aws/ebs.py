"""EBS volumes as strict as EC2: the parameter rules of CreateVolume, the per-instance attachment
limit, and each volume's record (state, attachment, host directory holding its content).

The middleware's CreateVolume/AttachVolume/DetachVolume/DeleteVolume handlers use these; moto
keeps the volumes themselves (DescribeVolumes and its filters are moto's, with the states set
here). Error codes and messages are EC2's as seen in the wild (``InvalidZone.NotFound``,
``InvalidParameterValue``, ``InvalidParameterCombination``, ``IncorrectState``, ``VolumeInUse``,
``InvalidVolume.ZoneMismatch``, ``AttachmentLimitExceeded``).

Attachment limit (docs: "Amazon EBS volume limits for Amazon EC2 instances"): Nitro instances
share 28 attachments between network interfaces, EBS volumes (the root volume included) and
NVMe instance store volumes; the Xen families in ``XEN_FAMILIES`` take up to 40 EBS volumes of
their own. Instance types with a dedicated EBS limit are not modelled (they get the shared 28).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from orca_devstack.emulators.aws.errors import AwsError

NITRO_SHARED_ATTACHMENTS = 28
XEN_EBS_ATTACHMENTS = 40
XEN_FAMILIES = frozenset(
    {"t1", "t2", "m1", "m2", "m3", "m4", "c1", "c3", "c4", "r3", "r4", "x1", "x1e", "i2", "i3"}
    | {"d2", "h1", "g2", "g3", "p2", "p3", "f1"}
)
LIMITS_URL = "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/volume_limits.html"


@dataclass(frozen=True)
class VolumeTypeLimits:
    min_size: int
    max_size: int
    min_iops: int | None = None
    max_iops: int | None = None
    iops_per_gib: int | None = None
    iops_required: bool = False
    min_throughput: int | None = None
    max_throughput: int | None = None


VOLUME_TYPES: dict[str, VolumeTypeLimits] = {
    "gp3": VolumeTypeLimits(1, 16384, 3000, 16000, 500, False, 125, 1000),
    "gp2": VolumeTypeLimits(1, 16384),
    "io1": VolumeTypeLimits(4, 16384, 100, 64000, 50, True),
    "io2": VolumeTypeLimits(4, 65536, 100, 256000, 1000, True),
    "st1": VolumeTypeLimits(125, 16384),
    "sc1": VolumeTypeLimits(125, 16384),
    "standard": VolumeTypeLimits(1, 1024),
}
GP3_BASELINE_IOPS = 3000
GP3_MAX_THROUGHPUT_PER_IOPS = 0.25


def _invalid(message: str) -> AwsError:
    return AwsError.of("InvalidParameterValue", message)


def _combination(message: str) -> AwsError:
    return AwsError.of("InvalidParameterCombination", message)


def check_create_volume(
    *,
    zone: str,
    zones: set[str],
    volume_type: str,
    size: int | None,
    iops: int | None,
    throughput: int | None,
) -> None:
    """Raise the error EC2 answers for CreateVolume parameters it refuses."""
    if zone not in zones:
        raise AwsError.of("InvalidZone.NotFound", f"The zone '{zone}' does not exist.")
    limits = VOLUME_TYPES.get(volume_type)
    if limits is None:
        raise _invalid(
            f"Value ({volume_type}) for parameter volumeType is invalid. Valid values: "
            f"{', '.join(sorted(VOLUME_TYPES))}."
        )
    if size is None:
        raise AwsError.of(
            "MissingParameter", "The request must contain the parameter size/snapshot"
        )
    if size < limits.min_size:
        raise _invalid(f"Volume of {size}GiB is too small; minimum is {limits.min_size}GiB.")
    if size > limits.max_size:
        raise _invalid(f"Volume of {size}GiB is too large; maximum is {limits.max_size}GiB.")
    if iops is not None and limits.max_iops is None:
        raise _combination(f"The parameter iops is not supported for {volume_type} volumes.")
    if iops is None and limits.iops_required:
        raise _combination(f"The parameter iops must be specified for {volume_type} volumes.")
    if throughput is not None and limits.max_throughput is None:
        raise _combination("throughput can only be specified for volumeType gp3.")
    if iops is not None and limits.min_iops is not None and limits.max_iops is not None:
        if iops < limits.min_iops:
            raise _invalid(f"Volume iops of {iops} is too low; minimum is {limits.min_iops}.")
        if iops > limits.max_iops:
            raise _invalid(f"Volume iops of {iops} is too high; maximum is {limits.max_iops}.")
        baseline = GP3_BASELINE_IOPS if volume_type == "gp3" else 0
        if limits.iops_per_gib is not None and iops > max(baseline, limits.iops_per_gib * size):
            raise _invalid(
                f"Iops to volume size ratio of {iops / size:f} is too high; maximum is "
                f"{limits.iops_per_gib}"
            )
    if throughput is not None and limits.min_throughput is not None:
        assert limits.max_throughput is not None
        if throughput < limits.min_throughput:
            raise _invalid(
                f"Throughput (MiBps) of {throughput} is too low; minimum is "
                f"{limits.min_throughput}."
            )
        if throughput > limits.max_throughput:
            raise _invalid(
                f"Throughput (MiBps) of {throughput} is too high; maximum is "
                f"{limits.max_throughput}."
            )
        effective_iops = iops if iops is not None else GP3_BASELINE_IOPS
        ratio = throughput / effective_iops
        if ratio > GP3_MAX_THROUGHPUT_PER_IOPS:
            raise _invalid(
                f"Throughput (MiBps) to iops ratio of {ratio:f} is too high; maximum is "
                f"{GP3_MAX_THROUGHPUT_PER_IOPS:f} MiBps per iops."
            )


def attachment_limit(instance_type: str) -> tuple[int, bool]:
    """(limit, shared): how many attachments the type takes, and whether network interfaces
    and NVMe instance store volumes count against it (Nitro) or not (Xen)."""
    family = instance_type.split(".", 1)[0]
    if family in XEN_FAMILIES:
        return XEN_EBS_ATTACHMENTS, False
    return NITRO_SHARED_ATTACHMENTS, True


def attachment_limit_message(devices: int) -> str:
    return (
        f"You may attach up to {devices} devices for this instance type. Please use a larger "
        f"instance size to attach more volumes. For a detailed list of limits please see "
        f"{LIMITS_URL}"
    )


@dataclass
class VolumeRecord:
    """What the emulator keeps about a volume beyond moto's model."""

    volume_id: str
    directory: Path
    """The volume's content on the host (created with the volume, removed with it)."""
    delete_when_available: bool = False
    """Encrypted with a KMS key that does not exist: EC2 accepts the call, then the volume
    goes away once creating ends (DescribeVolumes: InvalidVolume.NotFound)."""
    formatted: bool = False
    """A filesystem was created on the volume (by its first mount)."""
    filesystems_created: int = 0
    mounts: int = 0
    """How many pod runs mounted it."""
    fs_type: str | None = None

    def files(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(
            str(path.relative_to(self.directory))
            for path in self.directory.rglob("*")
            if path.is_file()
        )

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
