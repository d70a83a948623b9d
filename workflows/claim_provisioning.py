"""`ClaimProvisioning` (ID `claim-<claim uid>`) and `VolumeReclaim` (ID `reclaim-<pv name>`):
ORCA as the external provisioner of the `orca.research/ebs` StorageClass (docs/volumes.md).

    prepare_claim ─► choose_volume_zone ─► create_volume ─► wait_volume_available
                  ─► create_persistent_volume

A refusal that no retry changes (a class parameter ORCA cannot honour, EBS refusing the volume,
no consumer pod) is a `ProvisioningFailed` Warning event on the claim and the workflow fails
(`ProvisioningRefused`), with no volume. Transient errors retry in the activities.

    wait_volume_detached ─► delete_volume ─► delete_persistent_volume
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from orca.activities.volume_models import (
        CLAIM_PROVISIONING_WORKFLOW,
        PROVISIONING_FAILED_REASON,
        PROVISIONING_REFUSED,
        PROVISIONING_SUCCEEDED_REASON,
        VOLUME_RECLAIM_WORKFLOW,
        ClaimEvent,
        ClaimPreparation,
        ClaimRef,
        CreatedVolume,
        CreatePersistentVolumeInput,
        CreateVolumeInput,
        ProvisioningOutcome,
        ReclaimInput,
        ReclaimOutcome,
        ZoneChoice,
    )
    from orca.activities.volume_provisioning import VolumeProvisioning

RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), maximum_interval=timedelta(minutes=1))
SHORT = timedelta(minutes=2)


@workflow.defn(name=CLAIM_PROVISIONING_WORKFLOW)
class ClaimProvisioning:
    @workflow.run
    async def run(self, claim: ClaimRef) -> ProvisioningOutcome:
        prep: ClaimPreparation = await workflow.execute_activity_method(
            VolumeProvisioning.prepare_claim,
            claim,
            start_to_close_timeout=SHORT,
            retry_policy=RETRY,
            summary="Read the claim and its StorageClass",
        )
        if prep.done is not None:
            return ProvisioningOutcome(skipped=prep.done)
        if prep.refusal is not None or prep.request is None:
            await self._refuse(claim, prep.refusal or "nothing to provision")
        assert prep.request is not None
        zone: ZoneChoice = await workflow.execute_activity_method(
            VolumeProvisioning.choose_volume_zone,
            claim,
            start_to_close_timeout=SHORT,
            heartbeat_timeout=timedelta(seconds=30),
            retry_policy=RETRY,
            summary="Plan the claim's first consumer: its first candidate's zone",
        )
        if zone.zone is None:
            await self._refuse(claim, zone.refusal or "no zone")
        assert zone.zone is not None
        created: CreatedVolume = await workflow.execute_activity_method(
            VolumeProvisioning.create_volume,
            CreateVolumeInput(claim=claim, zone=zone.zone, request=prep.request),
            start_to_close_timeout=SHORT,
            retry_policy=RETRY,
            summary=f"CreateVolume {prep.request.size_gib} GiB {prep.request.volume_type} "
            f"in {zone.zone}",
        )
        if created.volume_id is None:
            await self._refuse(claim, created.refusal or "no volume")
        assert created.volume_id is not None
        await workflow.execute_activity_method(
            VolumeProvisioning.wait_volume_available,
            created.volume_id,
            start_to_close_timeout=timedelta(minutes=10),
            heartbeat_timeout=timedelta(seconds=30),
            retry_policy=RETRY,
            summary=f"Wait until {created.volume_id} is available",
        )
        name: str = await workflow.execute_activity_method(
            VolumeProvisioning.create_persistent_volume,
            CreatePersistentVolumeInput(
                claim=claim,
                volume_id=created.volume_id,
                zone=zone.zone,
                request=prep.request,
                access_modes=prep.access_modes,
                storage_class=prep.storage_class,
                reclaim_policy=prep.reclaim_policy,
            ),
            start_to_close_timeout=SHORT,
            retry_policy=RETRY,
            summary="Create the PersistentVolume",
        )
        await self._event(
            claim,
            "Normal",
            PROVISIONING_SUCCEEDED_REASON,
            f"Successfully provisioned volume {name} ({created.volume_id} in {zone.zone})",
        )
        return ProvisioningOutcome(
            volume_id=created.volume_id, persistent_volume=name, zone=zone.zone
        )

    async def _event(self, claim: ClaimRef, type: str, reason: str, message: str) -> None:
        await workflow.execute_activity_method(
            VolumeProvisioning.record_claim_event,
            ClaimEvent(claim=claim, type=type, reason=reason, message=message),
            start_to_close_timeout=SHORT,
            retry_policy=RetryPolicy(maximum_attempts=5),
            summary=f"Event {reason}",
        )

    async def _refuse(self, claim: ClaimRef, message: str) -> None:
        await self._event(claim, "Warning", PROVISIONING_FAILED_REASON, message)
        raise ApplicationError(message, type=PROVISIONING_REFUSED, non_retryable=True)


@workflow.defn(name=VOLUME_RECLAIM_WORKFLOW)
class VolumeReclaim:
    @workflow.run
    async def run(self, input: ReclaimInput) -> ReclaimOutcome:
        deleted = False
        if input.volume_id is not None:
            await workflow.execute_activity_method(
                VolumeProvisioning.wait_volume_detached,
                input.volume_id,
                start_to_close_timeout=timedelta(days=1),
                heartbeat_timeout=timedelta(seconds=30),
                retry_policy=RETRY,
                summary=f"Wait until {input.volume_id} is detached",
            )
            deleted = await workflow.execute_activity_method(
                VolumeProvisioning.delete_volume,
                input.volume_id,
                start_to_close_timeout=SHORT,
                retry_policy=RETRY,
                summary=f"DeleteVolume {input.volume_id}",
            )
        outcome: ReclaimOutcome = await workflow.execute_activity_method(
            VolumeProvisioning.delete_persistent_volume,
            input,
            start_to_close_timeout=SHORT,
            retry_policy=RETRY,
            summary=f"Delete PersistentVolume {input.persistent_volume}",
        )
        return outcome.model_copy(update={"volume_deleted": deleted})
