"""Activities that attach a pod's EBS volumes to its instance and detach them again.

`attach_volumes` runs after the instance is running and before the containers start; it is
idempotent: a volume already attached to this instance (an earlier try whose answer was lost)
is fine, one attached to *another* instance (the pod's previous incarnation, or a previous pod
whose instance is still being terminated) is waited for until it is `available`, heartbeating
with a message saying so. It returns once every attachment is `attached`.

`detach_volumes` runs after the containers stopped and before the instance is terminated: it
detaches each volume still attached to the instance and waits until it is `available`; a
volume that is not attached (any more) is done.

Errors are classified in `orca.aws_errors`: `VolumeInUse` means wait; a zone mismatch, the
instance's attachment limit or a missing volume can never succeed and fail the pod
(non-retryable `ConfigurationError` with what to do); everything else goes through
`fails_on_aws_errors`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import botocore.exceptions
import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from orca.activities.aws_failures import fails_on_aws_errors
from orca.activities.models import VolumeAttachmentsInput, VolumeAttachmentsOutcome
from orca.aws_clients import AwsClients
from orca.aws_errors import is_volume_in_use, is_volume_not_attached, volume_attach_refusal
from orca.ebs_volumes import PodVolume
from orca.failure_types import FailureType
from orca.logging import bind_work_context

log = structlog.get_logger(__name__)


def attachment_to(volume: dict[str, Any], instance_id: str) -> dict[str, Any] | None:
    """The volume's attachment to `instance_id`, if any (a volume has at most one, except
    multi-attach io2 volumes, which ORCA does not attach)."""
    for attachment in volume.get("Attachments") or []:
        if attachment.get("InstanceId") == instance_id:
            return dict(attachment)
    return None


def other_attachment(volume: dict[str, Any], instance_id: str) -> dict[str, Any] | None:
    """An attachment of the volume to some other instance, still holding it."""
    for attachment in volume.get("Attachments") or []:
        if attachment.get("InstanceId") != instance_id and attachment.get("State") in (
            "attaching",
            "attached",
            "busy",
            "detaching",
        ):
            return dict(attachment)
    return None


class VolumeAttachmentActivities:
    def __init__(self, aws: AwsClients) -> None:
        self._aws = aws

    def _describe(self, volume_ids: list[str]) -> dict[str, dict[str, Any]]:
        answer = self._aws.ec2.describe_volumes(VolumeIds=volume_ids)
        return {v["VolumeId"]: dict(v) for v in answer.get("Volumes", [])}

    @activity.defn(name="attach_volumes")
    @fails_on_aws_errors()
    async def attach_volumes(self, request: VolumeAttachmentsInput) -> VolumeAttachmentsOutcome:
        instance_id = request.instance_id
        wanted = {v.volume_id: v for v in request.volumes}
        waited: set[str] = set()
        with bind_work_context(
            pod=request.pod.key, workflow_id=activity.info().workflow_id, instance_id=instance_id
        ):
            while True:
                try:
                    volumes = await asyncio.to_thread(self._describe, list(wanted))
                except botocore.exceptions.ClientError as error:
                    refusal = volume_attach_refusal(error)
                    if refusal is None:
                        raise
                    raise ApplicationError(
                        f"Cannot attach the volumes of {request.pod.key} to {instance_id}: "
                        f"{refusal}",
                        type=FailureType.CONFIGURATION,
                        non_retryable=True,
                    ) from error
                pending: list[str] = []
                for volume_id, spec in wanted.items():
                    volume = volumes.get(volume_id, {})
                    mine = attachment_to(volume, instance_id)
                    if mine is not None and mine.get("State") == "attached":
                        continue
                    pending.append(volume_id)
                    if mine is not None:
                        continue  # attaching: wait for it
                    holder = other_attachment(volume, instance_id)
                    if holder is not None:
                        waited.add(volume_id)
                        self._waiting(spec, holder)
                        continue
                    if volume.get("State") == "available":
                        await self._attach(spec, instance_id, waited)
                if not pending:
                    log.info("Volumes attached", volume_ids=list(wanted), waited_for=sorted(waited))
                    return VolumeAttachmentsOutcome(
                        volume_ids=tuple(wanted), waited_for=tuple(sorted(waited))
                    )
                activity.heartbeat(f"waiting for {', '.join(pending)} to attach")
                await asyncio.sleep(request.poll_interval.total_seconds())

    def _waiting(self, spec: PodVolume, holder: dict[str, Any]) -> None:
        message = (
            f"{spec.volume_id} ({spec.claim_name}) is still attached to "
            f"{holder.get('InstanceId')} ({holder.get('State')}); waiting until it is available"
        )
        log.info(
            "Volume attached elsewhere; waiting",
            volume_id=spec.volume_id,
            other_instance=holder.get("InstanceId"),
            attachment_state=holder.get("State"),
        )
        activity.heartbeat(message)

    async def _attach(self, spec: PodVolume, instance_id: str, waited: set[str]) -> None:
        try:
            await asyncio.to_thread(
                self._aws.ec2.attach_volume,
                VolumeId=spec.volume_id,
                InstanceId=instance_id,
                Device=spec.device_name,
            )
            log.info("Attaching volume", volume_id=spec.volume_id, device=spec.device_name)
        except botocore.exceptions.ClientError as error:
            if is_volume_in_use(error):
                # Taken between our read and the call: the next round waits for it.
                waited.add(spec.volume_id)
                log.info("Volume in use; waiting", volume_id=spec.volume_id)
                return
            refusal = volume_attach_refusal(error)
            if refusal is not None:
                log.warning("Volume cannot be attached", volume_id=spec.volume_id, error=refusal)
                raise ApplicationError(
                    f"Cannot attach {spec.volume_id} (claim {spec.claim_name}, volume "
                    f"{spec.volume_name}) to {instance_id} at {spec.device_name}: {refusal}",
                    type=FailureType.CONFIGURATION,
                    non_retryable=True,
                ) from error
            raise

    @activity.defn(name="detach_volumes")
    @fails_on_aws_errors(permanent=False)
    async def detach_volumes(self, request: VolumeAttachmentsInput) -> VolumeAttachmentsOutcome:
        instance_id = request.instance_id
        volume_ids = [v.volume_id for v in request.volumes]
        detached: list[str] = []
        with bind_work_context(
            pod=request.pod.key, workflow_id=activity.info().workflow_id, instance_id=instance_id
        ):
            while True:
                try:
                    volumes = await asyncio.to_thread(self._describe, volume_ids)
                except botocore.exceptions.ClientError as error:
                    if volume_attach_refusal(error) is None:
                        raise
                    log.info("Volume gone; nothing to detach", error=str(error))
                    return VolumeAttachmentsOutcome(volume_ids=tuple(detached))
                pending: list[str] = []
                for volume_id in volume_ids:
                    mine = attachment_to(volumes.get(volume_id, {}), instance_id)
                    if mine is None:
                        continue
                    pending.append(volume_id)
                    if mine.get("State") in ("attaching", "attached", "busy"):
                        await self._detach(volume_id, instance_id)
                        if volume_id not in detached:
                            detached.append(volume_id)
                if not pending:
                    log.info("Volumes detached", volume_ids=volume_ids)
                    return VolumeAttachmentsOutcome(volume_ids=tuple(detached))
                activity.heartbeat(f"waiting for {', '.join(pending)} to detach")
                await asyncio.sleep(request.poll_interval.total_seconds())

    async def _detach(self, volume_id: str, instance_id: str) -> None:
        try:
            await asyncio.to_thread(
                self._aws.ec2.detach_volume, VolumeId=volume_id, InstanceId=instance_id
            )
            log.info("Detaching volume", volume_id=volume_id)
        except botocore.exceptions.ClientError as error:
            if is_volume_not_attached(error):
                return
            raise
