"""EC2 instances: launch (idempotent), describe (batched by the caller), terminate (idempotent).

Every launched instance requires IMDSv2, has an encrypted gp3 root volume, carries ORCA's tags
(`orca.instance_tags`) on the instance and its volumes, and is launched with a ClientToken the
workflow derives from its ID and attempt number. A retried launch first looks for an instance
already tagged with the pod's UID in the cluster listing (`orca.activities.cluster_instances`): an
activity whose first try launched an instance (and then lost the answer) finds it instead of
creating a second one.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from orca import instance_tags
from orca.activities.models import InstanceStatus, LaunchRequest
from orca.aws_clients import AwsClients
from orca.aws_errors import is_not_found
from orca.instance_state import InstanceState
from orca.launch_spec import CapacityReservationPreference
from orca.settings import LaunchType, Settings


@dataclass(frozen=True)
class ListedInstance:
    """One instance as the cluster listing shows it: its status and the pod it was launched for."""

    status: InstanceStatus
    pod_uid: str | None = None
    pod_namespace: str | None = None
    pod_name: str | None = None


class Ec2Instances:
    def __init__(self, aws: AwsClients, settings: Settings) -> None:
        self._aws = aws
        self._settings = settings
        self._cluster = settings.kubernetes.cluster_name

    # -- the cluster's instances ---------------------------------------------------------
    def describe_cluster(self) -> dict[str, ListedInstance]:
        """Every ORCA instance of this cluster, terminated ones included, by instance ID: one
        DescribeInstances per 1000 instances (see `orca.activities.cluster_instances`).

        Tags, not instance IDs: a filter takes at most 200 values (`FilterLimitExceeded`), and
        `InstanceIds` fails the whole call when one ID is not visible yet (EC2 is eventually
        consistent right after RunInstances). An instance launched a moment ago is simply absent
        until EC2 lists it. Terminated instances stay listed for about an hour."""
        filters: list[Any] = [
            {"Name": f"tag:{instance_tags.CLUSTER}", "Values": [self._cluster]},
            {"Name": f"tag:{instance_tags.MANAGED_BY}", "Values": [instance_tags.MANAGED_BY_VALUE]},
        ]
        paginator = self._aws.ec2.get_paginator("describe_instances")
        listed: dict[str, ListedInstance] = {}
        for page in paginator.paginate(Filters=filters, PaginationConfig={"PageSize": 1000}):
            for reservation in page["Reservations"]:
                for item in reservation["Instances"]:
                    tags = {t["Key"]: t["Value"] for t in item.get("Tags", [])}
                    status = instance_status_from_api(dict(item))
                    listed[status.instance_id] = ListedInstance(
                        status=status,
                        pod_uid=tags.get(instance_tags.POD_UID),
                        pod_namespace=tags.get(instance_tags.POD_NAMESPACE),
                        pod_name=tags.get(instance_tags.POD_NAME),
                    )
        return listed

    # -- launch -----------------------------------------------------------------------------
    def run(self, request: LaunchRequest, ami_id: str, root_device: str) -> str:
        """RunInstances for one candidate; returns the instance ID. Raises botocore errors."""
        params = run_instances_params(request, self._settings, ami_id, root_device)
        response = self._aws.ec2.run_instances(**params)
        return str(response["Instances"][0]["InstanceId"])

    # -- terminate --------------------------------------------------------------------------
    def terminate(self, instance_ids: Sequence[str]) -> list[str]:
        """Terminate; already gone or already terminating counts as success."""
        terminated = []
        for instance_id in dict.fromkeys(instance_ids):
            try:
                self._aws.ec2.modify_instance_attribute(
                    InstanceId=instance_id, DisableApiTermination={"Value": False}
                )
                self._aws.ec2.terminate_instances(InstanceIds=[instance_id])
            except Exception as error:
                if is_not_found(error):
                    continue
                raise
            terminated.append(instance_id)
        return terminated


def run_instances_params(
    request: LaunchRequest, settings: Settings, ami_id: str, root_device: str
) -> dict[str, Any]:
    """The RunInstances request for one candidate offering (pure; unit-tested)."""
    spec = request.spec
    candidate = request.candidate
    tags = instance_tags.instance_tags(
        spec.pod,
        cluster=settings.kubernetes.cluster_name,
        budget_namespace=spec.budget_namespace,
        team=spec.team,
        extra=dict(settings.aws.tags),
        now=request.requested_at,
    )
    tag_list = [{"Key": k, "Value": v} for k, v in tags.items()]
    params: dict[str, Any] = {
        "ImageId": ami_id,
        "InstanceType": candidate.instance_type,
        "MinCount": 1,
        "MaxCount": 1,
        "ClientToken": request.client_token,
        "SubnetId": candidate.subnet_id,
        "MetadataOptions": {
            "HttpTokens": "required",
            "HttpEndpoint": "enabled",
            # 1: a container's packets take one more hop, so only the host reaches IMDS and
            # the instance role (docs/security.md); the pod may opt in to 2.
            "HttpPutResponseHopLimit": 2 if spec.instance_metadata else 1,
            "InstanceMetadataTags": "disabled",
        },
        "BlockDeviceMappings": [
            {
                "DeviceName": root_device,
                "Ebs": {
                    "VolumeSize": settings.aws.root_volume_gib,
                    "VolumeType": "gp3",
                    "Encrypted": True,
                    "DeleteOnTermination": True,
                },
            }
        ],
        "TagSpecifications": [
            {"ResourceType": kind, "Tags": tag_list}
            for kind in ("instance", "volume", "network-interface")
        ],
        "DisableApiTermination": spec.termination_protection,
        "InstanceInitiatedShutdownBehavior": "terminate",
    }
    if settings.aws.security_group_ids:
        params["SecurityGroupIds"] = list(settings.aws.security_group_ids)
    if settings.aws.instance_profile:
        params["IamInstanceProfile"] = {"Name": settings.aws.instance_profile}
    if spec.user_data:
        # boto3 base64-encodes UserData itself; the annotation is already base64.
        params["UserData"] = base64.b64decode(spec.user_data).decode("utf-8", errors="replace")
    if spec.capacity_block_id:
        params["InstanceMarketOptions"] = {"MarketType": "capacity-block"}
        params["CapacityReservationSpecification"] = {
            "CapacityReservationTarget": {"CapacityReservationId": spec.capacity_block_id}
        }
    elif candidate.capacity_type is LaunchType.SPOT:
        spot_options: dict[str, Any] = {
            "SpotInstanceType": "one-time",
            "InstanceInterruptionBehavior": "terminate",
        }
        if candidate.max_spot_price is not None:
            spot_options["MaxPrice"] = str(candidate.max_spot_price)
        params["InstanceMarketOptions"] = {"MarketType": "spot", "SpotOptions": spot_options}
        params["TagSpecifications"].append(
            {"ResourceType": "spot-instances-request", "Tags": tag_list}
        )
    if spec.capacity_reservation_id and not spec.capacity_block_id:
        params["CapacityReservationSpecification"] = {
            "CapacityReservationTarget": {"CapacityReservationId": spec.capacity_reservation_id}
        }
    elif spec.capacity_reservation_preference is not None and not spec.capacity_block_id:
        preference = {
            CapacityReservationPreference.OPEN: "open",
            CapacityReservationPreference.NONE: "none",
            CapacityReservationPreference.TARGETED: "capacity-reservations-only",
        }[spec.capacity_reservation_preference]
        params["CapacityReservationSpecification"] = {"CapacityReservationPreference": preference}
    return params


def instance_status_from_api(item: dict[str, Any]) -> InstanceStatus:
    """An InstanceStatus from one DescribeInstances `Instances[]` item."""
    state = item.get("State", {}).get("Name", "pending")
    try:
        known = InstanceState(state)
    except ValueError:
        known = InstanceState.PENDING
    return InstanceStatus(
        instance_id=item["InstanceId"],
        state=known,
        instance_type=item.get("InstanceType"),
        zone=item.get("Placement", {}).get("AvailabilityZone"),
        private_ip=item.get("PrivateIpAddress"),
        public_ip=item.get("PublicIpAddress"),
        state_reason=(item.get("StateReason") or {}).get("Message"),
        launch_time=item.get("LaunchTime"),
        spot=item.get("InstanceLifecycle") == "spot",
    )
