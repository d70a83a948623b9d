"""The pure claim rules: a pod's PersistentVolumeClaims → EBS volumes → the zone it launches in."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from orca.activities.models import LaunchPlan
from orca.activities.planning import plan_in_volume_zone
from orca.ebs_volumes import (
    EBS_CSI_DRIVER,
    PROVISIONER,
    ClaimNotReady,
    PodVolume,
    VolumeNotUsable,
    common_zone,
    persistent_volume_of_claim,
    pod_volume,
    volume_of_persistent_volume,
    zone_restriction,
)
from orca.launch_spec import LaunchSpec, SelectionMethod, pod_ref_from_pod
from orca.selection import CandidateOffering, CandidatePlan, restrict_to_zone, zone_waiting_reason
from orca.settings import LaunchType
from tests.unit.pods import pod

FIELD = "spec.volumes[0].persistentVolumeClaim"
VOL = "vol-0123456789abcdef0"


def claim(phase: str = "Bound", modes: tuple[str, ...] = ("ReadWriteOnce",)) -> dict[str, Any]:
    spec: dict[str, Any] = {"accessModes": list(modes)}
    if phase == "Bound":
        spec["volumeName"] = "pv-data"
    return {"metadata": {"name": "data"}, "spec": spec, "status": {"phase": phase}}


def csi_pv(driver: str, handle: str = VOL, fs_type: str | None = None) -> dict[str, Any]:
    csi: dict[str, Any] = {"driver": driver, "volumeHandle": handle}
    if fs_type:
        csi["fsType"] = fs_type
    return {"metadata": {"name": "pv-data"}, "spec": {"csi": csi}}


def volume(claim_name: str, volume_id: str, zone: str) -> PodVolume:
    return PodVolume(
        volume_name=claim_name,
        claim_name=claim_name,
        persistent_volume=f"pv-{claim_name}",
        volume_id=volume_id,
        zone=zone,
        device_name="/dev/sdf",
    )


def candidate(instance_type: str, zone: str) -> CandidateOffering:
    return CandidateOffering(
        instance_type=instance_type,
        zone=zone,
        subnet_id=f"subnet-{zone}",
        capacity_type=LaunchType.ON_DEMAND,
        hourly_price=Decimal("0.1"),
        max_spot_price=None,
        reason="cheapest",
    )


def plan(*candidates: CandidateOffering, waiting_reason: str | None = None) -> LaunchPlan:
    return LaunchPlan(
        spec=LaunchSpec(
            pod=pod_ref_from_pod(pod()),
            selection=SelectionMethod.EXPLICIT,
            instance_types=tuple(dict.fromkeys(c.instance_type for c in candidates))
            or ("m5.large",),
            budget_namespace="research",
            max_lifetime=timedelta(hours=1),
            termination_grace_period_seconds=20,
        ),
        candidates=candidates,
        launch_timeout=timedelta(minutes=5),
        capacity_retry_interval=timedelta(minutes=1),
        capacity_give_up_after=timedelta(hours=1),
        waiting_reason=waiting_reason,
    )


# --- persistent_volume_of_claim ------------------------------------------------------------------


def test_missing_claim_is_not_ready() -> None:
    with pytest.raises(ClaimNotReady, match="research/data does not exist"):
        persistent_volume_of_claim(FIELD, "research", "data", None)


@pytest.mark.parametrize("mode", ["ReadWriteMany", "ReadOnlyMany"])
def test_shared_access_modes_are_refused_naming_what_is_allowed(mode: str) -> None:
    with pytest.raises(VolumeNotUsable) as refused:
        persistent_volume_of_claim(FIELD, "research", "data", claim(modes=(mode,)))
    assert refused.value.field == FIELD
    assert mode in refused.value.message
    assert "allowed: ReadWriteOnce, ReadWriteOncePod" in refused.value.message


def test_pending_claim_is_not_ready() -> None:
    with pytest.raises(ClaimNotReady, match="is Pending, not Bound"):
        persistent_volume_of_claim(FIELD, "research", "data", claim(phase="Pending"))


def test_bound_claim_names_its_persistent_volume() -> None:
    assert persistent_volume_of_claim(FIELD, "research", "data", claim()) == "pv-data"
    once_pod = claim(modes=("ReadWriteOncePod",))
    assert persistent_volume_of_claim(FIELD, "research", "data", once_pod) == "pv-data"


# --- volume_of_persistent_volume -----------------------------------------------------------------


def test_missing_persistent_volume_is_not_ready() -> None:
    with pytest.raises(ClaimNotReady, match="PersistentVolume pv-data of claim 'data'"):
        volume_of_persistent_volume(FIELD, "data", "pv-data", None)


@pytest.mark.parametrize(
    "pv",
    [
        {"spec": {"nfs": {"server": "nfs.example", "path": "/data"}}},
        csi_pv("efs.csi.aws.com", handle="fs-0123456789abcdef0"),
        csi_pv(EBS_CSI_DRIVER, handle="not-a-volume"),
    ],
    ids=["nfs", "other-csi-driver", "bad-handle"],
)
def test_non_ebs_persistent_volume_is_not_usable(pv: dict[str, Any]) -> None:
    with pytest.raises(VolumeNotUsable) as refused:
        volume_of_persistent_volume(FIELD, "data", "pv-data", pv)
    assert "not an EBS volume ORCA can attach" in refused.value.message
    assert PROVISIONER in refused.value.message
    assert EBS_CSI_DRIVER in refused.value.message


@pytest.mark.parametrize(
    "pv",
    [
        csi_pv(PROVISIONER),
        csi_pv(EBS_CSI_DRIVER),
        {"spec": {"awsElasticBlockStore": {"volumeID": f"aws://us-west-2a/{VOL}"}}},
        {"spec": {"awsElasticBlockStore": {"volumeID": VOL}}},
    ],
    ids=["orca-csi", "ebs-csi", "in-tree-url", "in-tree-bare"],
)
def test_ebs_persistent_volumes_name_their_volume(pv: dict[str, Any]) -> None:
    assert volume_of_persistent_volume(FIELD, "data", "pv-data", pv) == VOL


# --- pod_volume ----------------------------------------------------------------------------------


def test_volume_missing_from_describe_volumes_is_not_usable() -> None:
    with pytest.raises(VolumeNotUsable, match=f"EBS volume {VOL} does not exist"):
        pod_volume(FIELD, "data", "data", "pv-data", csi_pv(PROVISIONER), None, "/dev/sdf", False)


def test_pod_volume_has_the_zone_and_fs_type() -> None:
    described = {"VolumeId": VOL, "AvailabilityZone": "us-west-2b"}
    got = pod_volume(
        FIELD,
        "scratch",
        "data",
        "pv-data",
        csi_pv(EBS_CSI_DRIVER, fs_type="xfs"),
        described,
        "/dev/sdg",
        True,
    )
    assert got == PodVolume(
        volume_name="scratch",
        claim_name="data",
        persistent_volume="pv-data",
        volume_id=VOL,
        zone="us-west-2b",
        device_name="/dev/sdg",
        fs_type="xfs",
        read_only=True,
    )
    default = pod_volume(
        FIELD, "data", "data", "pv-data", csi_pv(PROVISIONER), described, "/dev/sdf", False
    )
    assert default.fs_type == "ext4"


# --- common_zone ---------------------------------------------------------------------------------


def test_common_zone() -> None:
    assert common_zone([]) is None
    assert (
        common_zone([volume("a", VOL, "us-west-2a"), volume("b", "vol-0aaa1111", "us-west-2a")])
        == "us-west-2a"
    )


def test_volumes_in_two_zones_are_not_usable_naming_both() -> None:
    with pytest.raises(VolumeNotUsable) as refused:
        common_zone([volume("a", VOL, "us-west-2a"), volume("b", "vol-0aaa1111", "us-west-2b")])
    message = refused.value.message
    assert "us-west-2a" in message
    assert "us-west-2b" in message
    assert VOL in message
    assert "vol-0aaa1111" in message
    assert refused.value.field == "spec.volumes"


# --- restrict_to_zone / zone_waiting_reason ------------------------------------------------------


def test_restrict_to_zone_keeps_the_zone_and_says_why_for_the_rest() -> None:
    why = zone_restriction([volume("data", VOL, "us-west-2a")])
    restricted = restrict_to_zone(
        CandidatePlan(
            candidates=(candidate("m5.large", "us-west-2a"), candidate("m5.large", "us-west-2b")),
            skipped=("earlier",),
        ),
        "us-west-2a",
        why,
    )
    assert [c.zone for c in restricted.candidates] == ["us-west-2a"]
    assert restricted.skipped == (
        "earlier",
        f"m5.large on-demand in us-west-2b: volume {VOL} (claim data) is in us-west-2a",
    )


def test_zone_waiting_reason() -> None:
    why = f"volume {VOL} (claim data) is in us-west-2a"
    no_subnet = zone_waiting_reason("us-west-2a", why, [], has_subnet=False)
    assert "no subnet" in no_subnet
    assert "aws.subnetIDs" in no_subnet
    elsewhere = zone_waiting_reason(
        "us-west-2a", why, [candidate("m5.large", "us-west-2b")], has_subnet=True
    )
    assert elsewhere.startswith(why)
    assert "only in us-west-2b" in elsewhere
    assert "available there now" in zone_waiting_reason("us-west-2a", why, [], has_subnet=True)


# --- plan_in_volume_zone -------------------------------------------------------------------------


def test_plan_in_volume_zone_keeps_only_the_volume_zone() -> None:
    vols = [volume("data", VOL, "us-west-2a")]
    got = plan_in_volume_zone(
        plan(candidate("m5.large", "us-west-2b"), candidate("m5.large", "us-west-2a")),
        vols,
        zone_has_subnet=True,
    )
    assert [c.zone for c in got.candidates] == ["us-west-2a"]
    assert got.volumes == tuple(vols)
    assert got.waiting_reason is not None
    assert VOL in got.waiting_reason
    assert "us-west-2a" in got.waiting_reason


def test_plan_in_volume_zone_with_nothing_left_waits_naming_the_zone() -> None:
    vols = [volume("data", VOL, "us-west-2a")]
    got = plan_in_volume_zone(plan(candidate("m5.large", "us-west-2b")), vols, zone_has_subnet=True)
    assert got.candidates == ()
    assert got.waiting_reason == zone_waiting_reason(
        "us-west-2a", zone_restriction(vols), [candidate("m5.large", "us-west-2b")], True
    )


def test_plan_in_volume_zone_without_a_subnet_names_the_setting() -> None:
    vols = [volume("data", VOL, "us-west-2a")]
    got = plan_in_volume_zone(
        plan(candidate("m5.large", "us-west-2b"), waiting_reason="budget"),
        vols,
        zone_has_subnet=False,
    )
    assert got.candidates == ()
    assert got.waiting_reason is not None
    assert "aws.subnetIDs" in got.waiting_reason
    assert got.waiting_reason.endswith("(budget)")


def test_plan_in_volume_zone_without_volumes_is_unchanged() -> None:
    original = plan(candidate("m5.large", "us-west-2b"))
    assert plan_in_volume_zone(original, [], zone_has_subnet=False) is original
