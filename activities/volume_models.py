"""Inputs and outputs of the provisioner's workflows (`orca.workflows.claim_provisioning`) and
activities (`orca.activities.volume_provisioning`). Imported by workflow code through the
sandbox, so no side effects here."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from orca.volume_requests import VolumeRequest

CLAIM_PROVISIONING_WORKFLOW = "ClaimProvisioning"
VOLUME_RECLAIM_WORKFLOW = "VolumeReclaim"
PROVISIONING_FAILED_REASON = "ProvisioningFailed"
PROVISIONING_SUCCEEDED_REASON = "ProvisioningSucceeded"
PROVISIONING_REFUSED = "ProvisioningRefused"
"""The ApplicationError type of a refusal that no retry changes (the claim has the event)."""


def claim_workflow_id(claim_uid: str) -> str:
    return f"claim-{claim_uid}"


def reclaim_workflow_id(persistent_volume: str) -> str:
    return f"reclaim-{persistent_volume}"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class ClaimRef(_Model):
    namespace: str
    name: str
    uid: str


class ClaimPreparation(_Model):
    """What `prepare_claim` found: nothing to do, a refusal, or what to create."""

    done: str | None = None
    """Why nothing is to be done (bound, gone, replaced, not ORCA's); None: provision."""
    refusal: str | None = None
    """A class parameter or claim field ORCA cannot honour (the event's message)."""
    request: VolumeRequest | None = None
    access_modes: tuple[str, ...] = ()
    storage_class: str = ""
    reclaim_policy: str = "Delete"


class ZoneChoice(_Model):
    zone: str | None = None
    refusal: str | None = None
    consumer: str | None = None
    """`<namespace>/<name>` of the pod the zone was planned for."""


class CreateVolumeInput(_Model):
    claim: ClaimRef
    zone: str
    request: VolumeRequest


class CreatedVolume(_Model):
    volume_id: str | None = None
    refusal: str | None = None


class CreatePersistentVolumeInput(_Model):
    claim: ClaimRef
    volume_id: str
    zone: str
    request: VolumeRequest
    access_modes: tuple[str, ...]
    storage_class: str
    reclaim_policy: str


class ClaimEvent(_Model):
    claim: ClaimRef
    type: str
    reason: str
    message: str


class ProvisioningOutcome(_Model):
    volume_id: str | None = None
    persistent_volume: str | None = None
    zone: str | None = None
    skipped: str | None = None


class ReclaimInput(_Model):
    persistent_volume: str
    volume_id: str | None


class ReclaimOutcome(_Model):
    volume_deleted: bool
    persistent_volume_deleted: bool
