"""EBS-backed PersistentVolumes: the vocabulary shared by the provisioner, the planner, the pod
lifecycle and the instance runner (docs/volumes.md tells the whole story).

* A StorageClass whose provisioner is `PROVISIONER` (`orca.research/ebs`) makes claims ORCA
  provisions: one EBS volume per claim, created in the zone the claim's first consumer will
  launch in, described by a PersistentVolume `pvc-<claim uid>` whose CSI source names the volume.
* A static PersistentVolume names an existing volume: CSI driver `PROVISIONER` or the EBS CSI
  driver's `EBS_CSI_DRIVER` with `volumeHandle: vol-...`, or the legacy in-tree
  `awsElasticBlockStore.volumeID` (`aws://<zone>/vol-...` or `vol-...`).
* A pod's claims resolve to `PodVolume`s (in its `LaunchPlan`): the workflow attaches each to the
  instance at `device_name`, the runner mounts it at `mount_point(volume_id)` (creating a
  filesystem only when the device has none) and bind-mounts that into the containers.

Pure: no AWS or Kubernetes calls here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

PROVISIONER = "orca.research/ebs"
"""The StorageClass provisioner (and CSI driver name on the PersistentVolumes ORCA writes)."""
EBS_CSI_DRIVER = "ebs.csi.aws.com"
"""The AWS EBS CSI driver's name: static PersistentVolumes written for it work unchanged."""
PROVISIONED_BY_ANNOTATION = "pv.kubernetes.io/provisioned-by"
SELECTED_NODE_ANNOTATION = "volume.kubernetes.io/selected-node"
"""Set on a WaitForFirstConsumer claim by kube-scheduler once it picked the node."""
STORAGE_PROVISIONER_ANNOTATION = "volume.kubernetes.io/storage-provisioner"
"""Set on a claim by kube-controller-manager: which provisioner is to provision it."""
ZONE_LABEL = "topology.kubernetes.io/zone"
VOLUME_MOUNT_ROOT = "/var/lib/orca/volumes"
DEFAULT_FS_TYPE = "ext4"
FS_TYPES = ("ext4", "xfs")

CLAIM_UID_TAG = "orca.research/claim-uid"
CLAIM_NAMESPACE_TAG = "orca.research/claim-namespace"
CLAIM_NAME_TAG = "orca.research/claim-name"
PERSISTENT_VOLUME_TAG = "orca.research/persistent-volume"
"""Volumes carry these with the instance tags' `cluster` and `managed-by`, so the orphan sweep
finds a volume whose claim and PersistentVolume are gone."""

DEVICE_NAMES = tuple(f"/dev/sd{letter}" for letter in "fghijklmnopqrstuvwxyz")
"""Device names EC2 recommends for EBS data volumes on Linux (`/dev/sd[f-z]`); on Nitro
instances the volume shows up as an NVMe device whose serial is the volume ID without its dash,
which is how the runner finds it."""

_VOLUME_ID = re.compile(r"^vol-[0-9a-f]{8,17}$")


class PodVolume(BaseModel):
    """One EBS volume a pod mounts, resolved from its claim (recorded in the LaunchPlan)."""

    model_config = ConfigDict(frozen=True)

    volume_name: str
    """The pod's `spec.volumes[].name`."""
    claim_name: str
    persistent_volume: str
    volume_id: str
    zone: str
    device_name: str
    fs_type: str = DEFAULT_FS_TYPE
    read_only: bool = False


def is_volume_id(value: str) -> bool:
    return bool(_VOLUME_ID.match(value))


def mount_point(volume_id: str) -> str:
    """Where the runner mounts the volume on the instance (the containers bind-mount from it)."""
    return f"{VOLUME_MOUNT_ROOT}/{volume_id}"


def nvme_serial(volume_id: str) -> str:
    """The NVMe serial a Nitro instance shows for the volume: `vol0123...` (no dash)."""
    return volume_id.replace("-", "", 1)


def persistent_volume_name(claim_uid: str) -> str:
    """The name external provisioners give the PersistentVolume of a claim."""
    return f"pvc-{claim_uid}"


def volume_id_from_persistent_volume(pv: Mapping[str, Any]) -> str | None:
    """The EBS volume a PersistentVolume names, or None when it is not an EBS volume ORCA can
    attach (another CSI driver, NFS, hostPath, ...)."""
    spec = pv.get("spec") or {}
    csi = spec.get("csi") or {}
    if csi.get("driver") in (PROVISIONER, EBS_CSI_DRIVER):
        handle = str(csi.get("volumeHandle") or "")
        return handle if is_volume_id(handle) else None
    legacy = spec.get("awsElasticBlockStore") or {}
    if legacy.get("volumeID"):
        handle = str(legacy["volumeID"]).rsplit("/", 1)[-1]
        return handle if is_volume_id(handle) else None
    return None


def fs_type_of_persistent_volume(pv: Mapping[str, Any]) -> str:
    spec = pv.get("spec") or {}
    source = spec.get("csi") or spec.get("awsElasticBlockStore") or {}
    return str(source.get("fsType") or DEFAULT_FS_TYPE)


# --- a pod's claims → PodVolumes ---------------------------------------------------------------

ACCESS_MODES = ("ReadWriteOnce", "ReadWriteOncePod")
"""An EBS volume attaches to one instance at a time."""


class ClaimNotReady(Exception):  # noqa: N818 - names the outcome, like NoCandidates
    """The claim (or its PersistentVolume) is missing or not bound yet: retryable, the pod waits
    (kube-scheduler normally binds a pod only once its claims are bound)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class VolumeNotUsable(ValueError):  # noqa: N818 - mapped to InvalidPodSpec by the planner
    """The claim can never be mounted as written. `field` is the pod field it comes from."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def persistent_volume_of_claim(
    field: str, namespace: str, claim_name: str, claim: Mapping[str, Any] | None
) -> str:
    """The name of the PersistentVolume a claim is bound to (pure). Raises `ClaimNotReady`
    while the claim is missing or unbound, `VolumeNotUsable` for access modes EBS cannot serve."""
    if claim is None:
        raise ClaimNotReady(
            f"PersistentVolumeClaim {namespace}/{claim_name} does not exist (yet); the pod "
            "waits for it"
        )
    spec = claim.get("spec") or {}
    modes = list(spec.get("accessModes") or ())
    bad = [mode for mode in modes if mode not in ACCESS_MODES]
    if bad:
        raise VolumeNotUsable(
            field,
            f"claim {claim_name!r} asks for access mode {bad[0]}; an EBS volume attaches to "
            f"one instance, so allowed: {', '.join(ACCESS_MODES)}",
        )
    phase = (claim.get("status") or {}).get("phase")
    volume_name = spec.get("volumeName")
    if phase != "Bound" or not volume_name:
        raise ClaimNotReady(
            f"PersistentVolumeClaim {namespace}/{claim_name} is {phase or 'Pending'}, not "
            "Bound to a PersistentVolume yet; the pod waits for it"
        )
    return str(volume_name)


def volume_of_persistent_volume(
    field: str, claim_name: str, pv_name: str, pv: Mapping[str, Any] | None
) -> str:
    """The EBS volume ID a bound claim's PersistentVolume names (pure)."""
    if pv is None:
        raise ClaimNotReady(
            f"PersistentVolume {pv_name} of claim {claim_name!r} does not exist (yet); the pod "
            "waits for it"
        )
    volume_id = volume_id_from_persistent_volume(pv)
    if volume_id is None:
        raise VolumeNotUsable(
            field,
            f"claim {claim_name!r} is bound to PersistentVolume {pv_name}, which is not an EBS "
            f"volume ORCA can attach; allowed: CSI driver {PROVISIONER} or {EBS_CSI_DRIVER} "
            "with volumeHandle vol-..., or awsElasticBlockStore.volumeID",
        )
    return volume_id


def pod_volume(
    field: str,
    volume_name: str,
    claim_name: str,
    pv_name: str,
    pv: Mapping[str, Any],
    described: Mapping[str, Any] | None,
    device_name: str,
    read_only: bool,
) -> PodVolume:
    """A `PodVolume` from the claim's PersistentVolume and its `DescribeVolumes` entry (pure)."""
    volume_id = volume_id_from_persistent_volume(pv) or ""
    if described is None:
        raise VolumeNotUsable(
            field,
            f"claim {claim_name!r} is bound to PersistentVolume {pv_name}, whose EBS volume "
            f"{volume_id} does not exist in this account and region",
        )
    return PodVolume(
        volume_name=volume_name,
        claim_name=claim_name,
        persistent_volume=pv_name,
        volume_id=volume_id,
        zone=str(described.get("AvailabilityZone") or ""),
        device_name=device_name,
        fs_type=fs_type_of_persistent_volume(pv),
        read_only=read_only,
    )


def common_zone(volumes: Sequence[PodVolume]) -> str | None:
    """The one zone all of a pod's volumes are in (pure); None for no volumes. Raises
    `VolumeNotUsable` naming two volumes in different zones."""
    if not volumes:
        return None
    first = volumes[0]
    for other in volumes[1:]:
        if other.zone != first.zone:
            raise VolumeNotUsable(
                "spec.volumes",
                f"volume {first.volume_id} (claim {first.claim_name!r}) is in {first.zone} and "
                f"volume {other.volume_id} (claim {other.claim_name!r}) is in {other.zone}; an "
                "instance is in one zone, so all of a pod's volumes must be in the same zone",
            )
    return first.zone


def zone_restriction(volumes: Sequence[PodVolume]) -> str:
    """The phrase explaining why a pod launches only in its volumes' zone."""
    named = ", ".join(f"{v.volume_id} (claim {v.claim_name})" for v in volumes)
    noun = "volume" if len(volumes) == 1 else "volumes"
    return f"{noun} {named} {'is' if len(volumes) == 1 else 'are'} in {volumes[0].zone}"
