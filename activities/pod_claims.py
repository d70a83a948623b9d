"""A pod's PersistentVolumeClaims → the EBS volumes it mounts (`PodVolume`s), for the planner.

For each claim volume: read the claim, its PersistentVolume (`spec.volumeName`) and the EBS
volume (`DescribeVolumes`: zone, state). The rules are pure (`orca.ebs_volumes`); this class
only reads. Device names follow the pod's volume order (`DEVICE_NAMES`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes.client import CoreV1Api
from kubernetes.client.exceptions import ApiException

from orca.aws_clients import AwsClients
from orca.ebs_volumes import (
    DEVICE_NAMES,
    PodVolume,
    VolumeNotUsable,
    common_zone,
    persistent_volume_of_claim,
    pod_volume,
    volume_of_persistent_volume,
)
from orca.launch_spec import claim_volumes


class PodClaims:
    def __init__(self, core: CoreV1Api, aws: AwsClients) -> None:
        self._core = core
        self._aws = aws

    async def volumes_of(self, pod: Mapping[str, Any]) -> list[PodVolume]:
        """The pod's claim volumes, all in one zone. Raises `ClaimNotReady` (wait) or
        `VolumeNotUsable` (the pod as written can never mount them)."""
        return await asyncio.to_thread(self._volumes_of, pod)

    def _volumes_of(self, pod: Mapping[str, Any]) -> list[PodVolume]:
        spec = pod.get("spec") or {}
        claims = claim_volumes(spec)
        if not claims:
            return []
        if len(claims) > len(DEVICE_NAMES):
            raise VolumeNotUsable(
                "spec.volumes",
                f"the pod mounts {len(claims)} claims; at most {len(DEVICE_NAMES)} are allowed",
            )
        namespace = str((pod.get("metadata") or {}).get("namespace") or "default")
        indexes = {
            str(volume.get("name", "")): index
            for index, volume in enumerate(spec.get("volumes") or ())
        }
        resolved = []
        for device_name, (volume_name, claim_name, read_only) in zip(
            DEVICE_NAMES, claims, strict=False
        ):
            field = f"spec.volumes[{indexes.get(volume_name, 0)}].persistentVolumeClaim"
            claim = self._read(
                self._core.read_namespaced_persistent_volume_claim, claim_name, namespace
            )
            pv_name = persistent_volume_of_claim(field, namespace, claim_name, claim)
            pv = self._read(self._core.read_persistent_volume, pv_name)
            volume_id = volume_of_persistent_volume(field, claim_name, pv_name, pv)
            assert pv is not None  # volume_of_persistent_volume refused a missing one
            resolved.append(
                pod_volume(
                    field,
                    volume_name,
                    claim_name,
                    pv_name,
                    pv,
                    self._describe(volume_id),
                    device_name,
                    read_only,
                )
            )
        common_zone(resolved)
        return resolved

    def _read(self, read: Callable[..., Any], *names: str) -> dict[str, Any] | None:
        try:
            found = read(*names)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return dict(self._core.api_client.sanitize_for_serialization(found))

    def _describe(self, volume_id: str) -> dict[str, Any] | None:
        # A filter, not VolumeIds: a volume that is gone is an empty answer, not an error.
        response = self._aws.ec2.describe_volumes(
            Filters=[{"Name": "volume-id", "Values": [volume_id]}]
        )
        volumes = response.get("Volumes") or []
        return dict(volumes[0]) if volumes else None
