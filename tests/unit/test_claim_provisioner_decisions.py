"""What the claim provisioner starts for one listing of claims and PersistentVolumes (pure)."""

from __future__ import annotations

from typing import Any

from orca.activities.volume_models import ClaimRef, ReclaimInput
from orca.watcher.claim_provisioner import StartClaim, StartReclaim, provisioning_decisions

NODE = "orca-burst"
CLASSES = {"orca-ebs": "orca.research/ebs", "gp2": "ebs.csi.aws.com"}


def claim(
    name: str, *, node: str | None = NODE, cls: str = "orca-ebs", **spec: Any
) -> dict[str, Any]:
    annotations = {"volume.kubernetes.io/selected-node": node} if node else {}
    return {
        "metadata": {
            "namespace": "ml",
            "name": name,
            "uid": f"u-{name}",
            "annotations": annotations,
        },
        "spec": {"storageClassName": cls, **spec},
        "status": {"phase": "Pending"},
    }


def pv(
    name: str, *, phase: str = "Released", policy: str = "Delete", ours: bool = True
) -> dict[str, Any]:
    annotations = {"pv.kubernetes.io/provisioned-by": "orca.research/ebs"} if ours else {}
    return {
        "metadata": {"name": name, "annotations": annotations},
        "spec": {
            "persistentVolumeReclaimPolicy": policy,
            "csi": {"driver": "orca.research/ebs", "volumeHandle": "vol-0123456789abcdef0"},
        },
        "status": {"phase": phase},
    }


def test_only_unbound_claims_for_orcas_node_and_class_are_provisioned() -> None:
    claims = [
        claim("mine"),
        claim("other-node", node="kind-worker"),
        claim("not-selected", node=None),
        claim("other-class", cls="gp2"),
        claim("bound", volumeName="pvc-u-bound"),
        claim("unknown-class", cls="nope"),
    ]
    assert provisioning_decisions(claims, [], CLASSES, NODE) == [
        StartClaim(ClaimRef(namespace="ml", name="mine", uid="u-mine"))
    ]


def test_only_released_delete_volumes_orca_provisioned_are_reclaimed() -> None:
    volumes = [
        pv("pvc-a"),
        pv("pvc-bound", phase="Bound"),
        pv("pvc-retain", policy="Retain"),
        pv("static", ours=False),
    ]
    assert provisioning_decisions([], volumes, CLASSES, NODE) == [
        StartReclaim(ReclaimInput(persistent_volume="pvc-a", volume_id="vol-0123456789abcdef0"))
    ]
