"""`PodClaims.volumes_of` and `plan_launch` for a pod with claims, against the Kubernetes API
emulator and the AWS emulator (moto's EBS), over real HTTP."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from kubernetes import client
from temporalio.testing import ActivityEnvironment

from orca.activities.models import LaunchPlan, PlanLaunchInput
from orca.activities.planning import PlanningActivities
from orca.activities.pod_claims import PodClaims
from orca.ebs_volumes import ClaimNotReady, VolumeNotUsable
from orca.watcher.kube_json import read_json
from orca_devstack.emulators.aws import AwsEmulator
from tests.activities.test_activities import Wiring, pod_manifest
from tests.fixtures.kube import eventually

NAMESPACE = "default"


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


def create_claim(core: client.CoreV1Api, volume_name: str | None = None) -> str:
    name = f"data-{uuid.uuid4().hex[:6]}"
    spec: dict[str, Any] = {
        "storageClassName": "",
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "1Gi"}},
    }
    if volume_name:
        spec["volumeName"] = volume_name
    body = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": spec,
    }
    core.create_namespaced_persistent_volume_claim(NAMESPACE, body)  # type: ignore[arg-type]
    return name


def bound_claim(core: client.CoreV1Api, volume_id: str) -> str:
    """A claim bound (by the emulator's controller-manager binder) to a static PV naming
    `volume_id`."""
    pv_name = f"pv-{uuid.uuid4().hex[:6]}"
    claim_name = create_claim(core, pv_name)
    create_static_pv(core, pv_name, volume_id, claim_name)
    eventually(
        lambda: (
            read_json(core.read_namespaced_persistent_volume_claim, claim_name, NAMESPACE)
            .get("status", {})
            .get("phase")
            == "Bound"
        )
    )
    return claim_name


def create_static_pv(core: client.CoreV1Api, name: str, volume_id: str, claim_name: str) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "",
            "persistentVolumeReclaimPolicy": "Retain",
            "claimRef": {"namespace": NAMESPACE, "name": claim_name},
            "csi": {"driver": "ebs.csi.aws.com", "volumeHandle": volume_id, "fsType": "ext4"},
        },
    }
    core.create_persistent_volume(body)  # type: ignore[arg-type]


def claim_pod(claim_name: str) -> dict[str, Any]:
    pod = pod_manifest({"orca.research/instance-type": "m5.large"})
    pod["metadata"]["namespace"] = NAMESPACE
    pod["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    pod["spec"]["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": claim_name}}]
    return pod


def real_volume(wiring: Wiring, zone: str) -> str:
    created = wiring.aws.ec2.create_volume(AvailabilityZone=zone, Size=1, VolumeType="gp3")
    return str(created["VolumeId"])


async def test_a_bound_claim_resolves_to_its_volume_in_its_zone(
    aws: AwsEmulator, kube_core: client.CoreV1Api
) -> None:
    wiring = Wiring(aws)
    zone = sorted(aws.defaults.subnet_ids)[-1]
    volume_id = real_volume(wiring, zone)
    claim_name = bound_claim(kube_core, volume_id)
    pod = claim_pod(claim_name)

    [volume] = await PodClaims(kube_core, wiring.aws).volumes_of(pod)
    assert volume.volume_id == volume_id
    assert volume.zone == zone
    assert volume.device_name == "/dev/sdf"
    assert volume.claim_name == claim_name

    planning = PlanningActivities(
        wiring.settings, wiring.catalog, wiring.unavailable, claims=PodClaims(kube_core, wiring.aws)
    )
    plan: LaunchPlan = await ActivityEnvironment().run(
        planning.plan_launch, PlanLaunchInput(pod=pod)
    )
    assert plan.candidates
    assert {c.zone for c in plan.candidates} == {zone}
    assert plan.volumes == (volume,)
    wiring.aws.ec2.delete_volume(VolumeId=volume_id)


async def test_an_unbound_claim_is_not_ready(aws: AwsEmulator, kube_core: client.CoreV1Api) -> None:
    wiring = Wiring(aws)
    pod = claim_pod(create_claim(kube_core))
    with pytest.raises(ClaimNotReady, match="not Bound"):
        await PodClaims(kube_core, wiring.aws).volumes_of(pod)


async def test_a_persistent_volume_naming_a_missing_volume_is_not_usable(
    aws: AwsEmulator, kube_core: client.CoreV1Api
) -> None:
    wiring = Wiring(aws)
    claim_name = bound_claim(kube_core, "vol-0123456789abcdef0")
    with pytest.raises(VolumeNotUsable, match="vol-0123456789abcdef0 does not exist"):
        await PodClaims(kube_core, wiring.aws).volumes_of(claim_pod(claim_name))
