"""The provisioner's activities: read a claim and its StorageClass, choose the zone from the
claim's first consumer, create the EBS volume and its PersistentVolume; and, for a released
PersistentVolume with `Delete`, wait for the volume to be detached and delete both.

Every call is idempotent: `CreateVolume` carries the claim's UID as ClientToken and is preceded
by a look-up of the volume tagged with that UID (a retry finds the same volume); the
PersistentVolume's `409 AlreadyExists` is success; a `DeleteVolume` or PersistentVolume deletion
that finds nothing is done. A refusal that no retry changes (a class parameter ORCA cannot
honour, a `CreateVolume` refusal by EBS, a claim without a consumer) is
returned to the workflow, which posts the `ProvisioningFailed` event and fails.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime
from typing import Any, cast

import botocore.exceptions
from kubernetes import client as kube
from temporalio import activity
from temporalio.exceptions import ApplicationError

from orca import aws_errors, instance_tags, pod_names
from orca.activities.aws_failures import fails_on_aws_errors
from orca.activities.heartbeats import heartbeating
from orca.activities.models import PlanLaunchInput
from orca.activities.planning import PlanningActivities
from orca.activities.volume_models import (
    ClaimEvent,
    ClaimPreparation,
    ClaimRef,
    CreatedVolume,
    CreatePersistentVolumeInput,
    CreateVolumeInput,
    ReclaimInput,
    ReclaimOutcome,
    ZoneChoice,
)
from orca.aws_clients import AwsClients
from orca.ebs_volumes import (
    CLAIM_UID_TAG,
    PROVISIONED_BY_ANNOTATION,
    PROVISIONER,
    SELECTED_NODE_ANNOTATION,
    ZONE_LABEL,
    persistent_volume_name,
)
from orca.logging import get_logger
from orca.pod_phase import TERMINAL_PHASES
from orca.volume_requests import InvalidVolumeRequest, volume_request, volume_tags
from orca.watcher.kube_json import read_json, read_json_or_none

log = get_logger(__name__)

EVENT_SOURCE = "orca"
POLL_SECONDS = 2.0


def claim_event_body(event: ClaimEvent, node_name: str, now: datetime) -> dict[str, Any]:
    """A core/v1 Event about the claim (pure); named once per claim, reason and message."""
    claim = event.claim
    digest = hashlib.sha1(f"{claim.uid}/{event.reason}/{event.message}".encode()).hexdigest()[:10]
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": pod_names.event_name(claim.name, digest),
            "namespace": claim.namespace,
        },
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "namespace": claim.namespace,
            "name": claim.name,
            "uid": claim.uid,
        },
        "reason": event.reason,
        "message": event.message[:1024],
        "type": event.type,
        "source": {"component": EVENT_SOURCE, "host": node_name},
        "reportingComponent": EVENT_SOURCE,
        "reportingInstance": node_name,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


def claim_consumers(pods: list[dict[str, Any]], claim_name: str) -> list[dict[str, Any]]:
    """The pods (of the claim's namespace) that mount the claim and are not finished, oldest
    first (pure)."""
    found = []
    for pod in pods:
        if (pod.get("status") or {}).get("phase") in TERMINAL_PHASES:
            continue
        volumes = (pod.get("spec") or {}).get("volumes") or []
        if any(
            (v.get("persistentVolumeClaim") or {}).get("claimName") == claim_name for v in volumes
        ):
            found.append(pod)
    return sorted(
        found, key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"])
    )


def persistent_volume_body(input: CreatePersistentVolumeInput) -> dict[str, Any]:
    """The PersistentVolume an external provisioner writes for the claim (pure)."""
    claim = input.claim
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": persistent_volume_name(claim.uid),
            "labels": {ZONE_LABEL: input.zone},
            "annotations": {PROVISIONED_BY_ANNOTATION: PROVISIONER},
        },
        "spec": {
            "capacity": {"storage": f"{input.request.size_gib}Gi"},
            "accessModes": list(input.access_modes) or ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": input.reclaim_policy,
            "storageClassName": input.storage_class,
            "volumeMode": "Filesystem",
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": claim.namespace,
                "name": claim.name,
                "uid": claim.uid,
            },
            "csi": {
                "driver": PROVISIONER,
                "volumeHandle": input.volume_id,
                "fsType": input.request.fs_type,
            },
        },
    }


def preparation(
    claim: dict[str, Any] | None,
    storage_class: dict[str, Any] | None,
    ref: ClaimRef,
    node_name: str,
) -> ClaimPreparation:
    """Whether the claim still needs a volume, and the validated request (pure)."""
    if claim is None or claim["metadata"].get("uid") != ref.uid:
        return ClaimPreparation(done="the claim is gone")
    if claim["metadata"].get("deletionTimestamp"):
        return ClaimPreparation(done="the claim is being deleted")
    spec = claim.get("spec") or {}
    if spec.get("volumeName"):
        return ClaimPreparation(done=f"the claim is bound to {spec['volumeName']}")
    annotations = claim["metadata"].get("annotations") or {}
    if annotations.get(SELECTED_NODE_ANNOTATION) != node_name:
        return ClaimPreparation(done="the claim is not for ORCA's node")
    class_name = str(spec.get("storageClassName") or "")
    if storage_class is None:
        return ClaimPreparation(refusal=f"StorageClass {class_name!r} does not exist")
    if storage_class.get("provisioner") != PROVISIONER:
        return ClaimPreparation(done=f"StorageClass {class_name} is not {PROVISIONER}'s")
    try:
        request = volume_request(storage_class, claim)
    except InvalidVolumeRequest as error:
        return ClaimPreparation(refusal=f"StorageClass {class_name}: {error}")
    return ClaimPreparation(
        request=request,
        access_modes=tuple(spec.get("accessModes") or ()),
        storage_class=class_name,
        reclaim_policy=str(storage_class.get("reclaimPolicy") or "Delete"),
    )


class VolumeProvisioning:
    def __init__(
        self,
        aws: AwsClients,
        api: kube.ApiClient,
        planning: PlanningActivities,
        *,
        cluster_name: str,
        node_name: str,
    ) -> None:
        self._aws = aws
        self._core = kube.CoreV1Api(api)
        self._storage = kube.StorageV1Api(api)
        self._planning = planning
        self._cluster = cluster_name
        self._node = node_name

    # -- claims -----------------------------------------------------------------------------
    @activity.defn(name="prepare_claim")
    async def prepare_claim(self, ref: ClaimRef) -> ClaimPreparation:
        claim = await asyncio.to_thread(
            read_json_or_none,
            self._core.read_namespaced_persistent_volume_claim,
            ref.name,
            ref.namespace,
        )
        storage_class = None
        if claim is not None:
            name = (claim.get("spec") or {}).get("storageClassName")
            if name:
                storage_class = await asyncio.to_thread(
                    read_json_or_none, self._storage.read_storage_class, name
                )
        return preparation(claim, storage_class, ref, self._node)

    @activity.defn(name="choose_volume_zone")
    @fails_on_aws_errors()
    async def choose_volume_zone(self, ref: ClaimRef) -> ZoneChoice:
        listed = await asyncio.to_thread(read_json, self._core.list_namespaced_pod, ref.namespace)
        consumers = claim_consumers(list(listed.get("items") or []), ref.name)
        if not consumers:
            return ZoneChoice(
                refusal=f"no pod in namespace {ref.namespace} mounts claim {ref.name}: "
                "ORCA creates the volume in the zone its first consumer launches in"
            )
        pod = consumers[0]
        consumer = f"{ref.namespace}/{pod['metadata']['name']}"
        try:
            plan = await self._planning.plan_without_claims(
                PlanLaunchInput(pod={"apiVersion": "v1", "kind": "Pod", **pod})
            )
        except ApplicationError as error:
            if error.non_retryable:
                return ZoneChoice(refusal=f"pod {consumer} cannot launch: {error.message}")
            raise
        if not plan.candidates:
            raise ApplicationError(
                f"pod {consumer} has no offering now ({plan.waiting_reason}); "
                "the zone is chosen when one is available"
            )
        return ZoneChoice(zone=plan.candidates[0].zone, consumer=consumer)

    @activity.defn(name="record_claim_event")
    async def record_claim_event(self, event: ClaimEvent) -> None:
        body = claim_event_body(event, self._node, datetime.now(UTC))
        try:
            await asyncio.to_thread(
                self._core.create_namespaced_event, event.claim.namespace, cast(Any, body)
            )
        except kube.ApiException as error:
            if error.status not in (404, 409):
                raise

    # -- volumes ----------------------------------------------------------------------------
    @activity.defn(name="create_volume")
    @fails_on_aws_errors()
    async def create_volume(self, input: CreateVolumeInput) -> CreatedVolume:
        claim = {
            "metadata": {
                "namespace": input.claim.namespace,
                "name": input.claim.name,
                "uid": input.claim.uid,
            }
        }
        kwargs = input.request.create_volume_kwargs(
            input.zone, input.claim.uid, volume_tags(claim, cluster=self._cluster)
        )
        existing = await asyncio.to_thread(self._claim_volume, input.claim.uid)
        if existing is not None:  # a retry after a CreateVolume whose answer was lost
            return CreatedVolume(volume_id=existing)
        try:
            created = await asyncio.to_thread(self._aws.ec2.create_volume, **kwargs)
        except botocore.exceptions.ClientError as error:
            if aws_errors.is_volume_refusal(error):
                return CreatedVolume(
                    refusal=f"EBS refused the volume: {aws_errors.describe(error)}"
                )
            raise
        volume_id = str(created["VolumeId"])
        log.info("volume created", volume_id=volume_id, zone=input.zone, claim=input.claim.uid)
        return CreatedVolume(volume_id=volume_id)

    def _claim_volume(self, claim_uid: str) -> str | None:
        """The live volume already created for the claim (by its tags), if any."""
        response = self._aws.ec2.describe_volumes(
            Filters=[
                {"Name": f"tag:{CLAIM_UID_TAG}", "Values": [claim_uid]},
                {"Name": f"tag:{instance_tags.CLUSTER}", "Values": [self._cluster]},
                {"Name": "status", "Values": ["creating", "available", "in-use"]},
            ]
        )
        volumes = sorted(response.get("Volumes") or [], key=lambda v: str(v["VolumeId"]))
        return str(volumes[0]["VolumeId"]) if volumes else None

    @activity.defn(name="wait_volume_available")
    @fails_on_aws_errors()
    async def wait_volume_available(self, volume_id: str) -> None:
        with heartbeating():
            while True:
                state = await asyncio.to_thread(self._volume_state, volume_id)
                if state == "available":
                    return
                if state in ("error", "deleting", "deleted"):
                    raise ApplicationError(
                        f"volume {volume_id} is {state}, not available",
                        type="VolumeFailed",
                        non_retryable=True,
                    )
                await asyncio.sleep(POLL_SECONDS)

    def _volume_state(self, volume_id: str) -> str | None:
        """The volume's state; None when DescribeVolumes does not (yet, or any more) know it."""
        try:
            response = self._aws.ec2.describe_volumes(VolumeIds=[volume_id])
        except botocore.exceptions.ClientError as error:
            if aws_errors.is_not_found(error):
                return None
            raise
        volumes = response.get("Volumes") or []
        return str(volumes[0]["State"]) if volumes else None

    @activity.defn(name="create_persistent_volume")
    async def create_persistent_volume(self, input: CreatePersistentVolumeInput) -> str:
        body = persistent_volume_body(input)
        try:
            await asyncio.to_thread(self._core.create_persistent_volume, cast(Any, body))
        except kube.ApiException as error:
            if error.status != 409:
                raise
        name = str(body["metadata"]["name"])
        log.info("persistent volume created", persistent_volume=name, volume_id=input.volume_id)
        return name

    # -- reclaim ----------------------------------------------------------------------------
    @activity.defn(name="wait_volume_detached")
    @fails_on_aws_errors()
    async def wait_volume_detached(self, volume_id: str) -> None:
        with heartbeating():
            while True:
                state = await asyncio.to_thread(self._volume_state, volume_id)
                if state in (None, "available", "deleting", "deleted", "error"):
                    return
                await asyncio.sleep(POLL_SECONDS)

    @activity.defn(name="delete_volume")
    @fails_on_aws_errors()
    async def delete_volume(self, volume_id: str) -> bool:
        """DeleteVolume; False when it was already gone. An attached volume is retried."""
        try:
            await asyncio.to_thread(self._aws.ec2.delete_volume, VolumeId=volume_id)
        except botocore.exceptions.ClientError as error:
            if aws_errors.is_not_found(error):
                return False
            if aws_errors.is_volume_busy(error):
                raise ApplicationError(f"volume {volume_id} is still in use") from None
            raise
        log.info("volume deleted", volume_id=volume_id)
        return True

    @activity.defn(name="delete_persistent_volume")
    async def delete_persistent_volume(self, input: ReclaimInput) -> ReclaimOutcome:
        try:
            await asyncio.to_thread(self._core.delete_persistent_volume, input.persistent_volume)
        except kube.ApiException as error:
            if error.status != 404:
                raise
            return ReclaimOutcome(volume_deleted=True, persistent_volume_deleted=False)
        log.info("persistent volume deleted", persistent_volume=input.persistent_volume)
        return ReclaimOutcome(volume_deleted=True, persistent_volume_deleted=True)
