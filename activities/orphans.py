"""Activities of the orphan sweep: list what the cluster's workflows may own, ask Temporal who is
running, end what nobody owns.

`find_orphans` lists, in this order, the running PodLifecycle workflows (one visibility query),
the cluster's instances (the worker's shared listing round, `ClusterInstances`), its open spot
requests and EBS volumes (by the cluster and managed-by tags), the secret parameters under
`/orca/pods/`, the pods bound to the virtual node and, last, the PersistentVolumes; it
describes every owner the visibility query did not name and hands all of it to the pure
decision (`orca.activities.orphan_decisions`). A Temporal error fails the activity: without
knowing who runs, nothing is called an orphan.

`end_orphans` describes each orphan's workflow once more right before ending it (so a workflow
started again in between, e.g. by `orca retry`, keeps what it owns), then terminates instances,
cancels spot requests, deletes parameters, and fails a pod with reason `WorkflowEnded` (an event
on the pod says why; a pod being deleted is also released, as its kubelet would). Every ending is
idempotent, so a retried activity repeats nothing harmful. Each thing ended is one structured log
line with the instance ID, pod and workflow ID, and counted in `orca_orphans_ended_total`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime

import structlog
from kubernetes import client as kube
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from orca import instance_tags
from orca.activities import orphan_decisions
from orca.activities.cluster_instances import ClusterInstances
from orca.activities.ec2_instances import Ec2Instances
from orca.activities.models import EventType, PodEventReport, PodStatusReport
from orca.activities.orphan_models import (
    ClusterListing,
    EndOrphansInput,
    EndOrphansOutcome,
    Orphan,
    OrphanKind,
    SweepFindings,
    SweepInput,
    SweptInstance,
    SweptPod,
    SweptSecrets,
    SweptSpotRequest,
    SweptVolume,
)
from orca.activities.pod_parameters import PodParameters, pod_uid_of
from orca.activities.pod_status import PodStatusActivities, event_body, status_patch
from orca.aws_clients import AwsClients
from orca.aws_errors import is_not_found, is_volume_busy
from orca.ebs_volumes import PERSISTENT_VOLUME_TAG
from orca.failure_types import FailureType
from orca.launch_spec import PodRef
from orca.metrics import ORPHAN_SWEEPS, ORPHANS_ENDED, ORPHANS_FOUND
from orca.pod_phase import PodPhase
from orca.workflow_ids import POD_LIFECYCLE_QUERY

log = structlog.get_logger(__name__)

ORPHAN_TERMINATED_REASON = "OrphanInstanceTerminated"
"""The event on a pod whose instance the sweep terminated."""
RUNNING_QUERY = f'{POD_LIFECYCLE_QUERY} AND ExecutionStatus="Running"'


def pod_from_tags(tags: Mapping[str, str]) -> PodRef | None:
    namespace = tags.get(instance_tags.POD_NAMESPACE)
    name = tags.get(instance_tags.POD_NAME)
    uid = tags.get(instance_tags.POD_UID)
    if not (namespace and name and uid):
        return None
    return PodRef(namespace=namespace, name=name, uid=uid)


def status_name(status: WorkflowExecutionStatus) -> str:
    """`TERMINATED` → `Terminated`, `TIMED_OUT` → `TimedOut` (as visibility queries spell it)."""
    return "".join(part.capitalize() for part in status.name.split("_"))


async def workflow_status(temporal: Client, workflow_id: str) -> str | None:
    """The latest run's status by ID (persistence, not visibility); NotFound; None if unknown."""
    try:
        description = await temporal.get_workflow_handle(workflow_id).describe()
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            return orphan_decisions.NOT_FOUND
        log.warning("cannot describe workflow", workflow_id=workflow_id, error=str(error))
        return None
    if description.status is None:
        return None
    return status_name(description.status)


class OrphanActivities:
    def __init__(
        self,
        aws: AwsClients,
        ec2: Ec2Instances,
        parameters: PodParameters,
        cluster: ClusterInstances,
        core: kube.CoreV1Api,
        pod_status: PodStatusActivities,
        *,
        cluster_name: str,
        node_name: str,
    ) -> None:
        self._aws = aws
        self._ec2 = ec2
        self._parameters = parameters
        self._cluster = cluster
        self._core = core
        self._pod_status = pod_status
        self._cluster_name = cluster_name
        self._node_name = node_name

    # -- find -------------------------------------------------------------------------------
    @activity.defn(name="find_orphans")
    async def find_orphans(self, input: SweepInput) -> SweepFindings:
        try:
            findings = await self._find(input)
        except Exception:
            ORPHAN_SWEEPS.labels(outcome="failed").inc()
            raise
        ORPHAN_SWEEPS.labels(outcome="report-only" if input.report_only else "swept").inc()
        return findings

    async def _find(self, input: SweepInput) -> SweepFindings:
        temporal = activity.client()
        # Running workflows first: whatever starts after this query is younger than min_age.
        running = [w.id async for w in temporal.list_workflows(RUNNING_QUERY)]
        activity.heartbeat("listed running workflows")
        listing = await self._listing()
        activity.heartbeat("listed the cluster's objects")
        now = datetime.now(UTC)
        owners: dict[str, str | None] = dict.fromkeys(running, orphan_decisions.RUNNING)
        for workflow_id in sorted(
            orphan_decisions.workflows_to_confirm(listing, running, now, input.min_age)
        ):
            owners[workflow_id] = await workflow_status(temporal, workflow_id)
        known = {wid: status for wid, status in owners.items() if status is not None}
        findings = orphan_decisions.find_orphans(listing, known, now, input.min_age)
        for orphan in findings.orphans:
            ORPHANS_FOUND.labels(kind=orphan.kind.value).inc()
            log.info(
                "orphan found" + (" (report only: left as it is)" if input.report_only else ""),
                kind=orphan.kind.value,
                orphan=orphan.id,
                instance_id=orphan.id if orphan.kind is OrphanKind.INSTANCE else None,
                volume_id=orphan.id if orphan.kind is OrphanKind.VOLUME else None,
                pod=orphan.pod.key if orphan.pod else None,
                workflow_id=orphan.workflow_id,
                reason=orphan.reason,
            )
        return findings

    async def _listing(self) -> ClusterListing:
        listed = await self._cluster.listing()
        instances = tuple(
            SweptInstance(
                instance_id=item.status.instance_id,
                state=item.status.state.value,
                pod=PodRef(namespace=item.pod_namespace, name=item.pod_name, uid=item.pod_uid)
                if item.pod_namespace and item.pod_name and item.pod_uid
                else None,
                launched_at=item.status.launch_time,
            )
            for item in listed.values()
        )
        spot_requests, secrets, pods, volumes = await asyncio.gather(
            asyncio.to_thread(self._spot_requests),
            asyncio.to_thread(self._secrets),
            asyncio.to_thread(self._pods),
            asyncio.to_thread(self._volumes),
        )
        # After the volumes: a PersistentVolume written after this list names a volume that
        # was listed before it was created or is younger than min_age.
        persistent_volumes = await asyncio.to_thread(self._persistent_volumes)
        return ClusterListing(
            instances=instances,
            spot_requests=spot_requests,
            secrets=secrets,
            pods=pods,
            volumes=volumes,
            persistent_volumes=persistent_volumes,
            known_pods=tuple(i.pod for i in instances if i.pod is not None),
        )

    def _spot_requests(self) -> tuple[SweptSpotRequest, ...]:
        response = self._aws.ec2.describe_spot_instance_requests(
            Filters=[
                {"Name": f"tag:{instance_tags.CLUSTER}", "Values": [self._cluster_name]},
                {
                    "Name": f"tag:{instance_tags.MANAGED_BY}",
                    "Values": [instance_tags.MANAGED_BY_VALUE],
                },
                {"Name": "state", "Values": sorted(orphan_decisions.LIVE_SPOT_REQUEST_STATES)},
            ]
        )
        return tuple(
            SweptSpotRequest(
                request_id=item["SpotInstanceRequestId"],
                state=item.get("State", ""),
                pod=pod_from_tags({t["Key"]: t["Value"] for t in item.get("Tags", [])}),
                created_at=item.get("CreateTime"),
                instance_id=item.get("InstanceId"),
            )
            for item in response.get("SpotInstanceRequests", [])
        )

    def _volumes(self) -> tuple[SweptVolume, ...]:
        paginator = self._aws.ec2.get_paginator("describe_volumes")
        swept = []
        for page in paginator.paginate(
            Filters=[
                {"Name": f"tag:{instance_tags.CLUSTER}", "Values": [self._cluster_name]},
                {
                    "Name": f"tag:{instance_tags.MANAGED_BY}",
                    "Values": [instance_tags.MANAGED_BY_VALUE],
                },
            ]
        ):
            for item in page.get("Volumes", []):
                tags = {t["Key"]: t["Value"] for t in item.get("Tags", [])}
                swept.append(
                    SweptVolume(
                        volume_id=item["VolumeId"],
                        state=item.get("State", ""),
                        persistent_volume=tags.get(PERSISTENT_VOLUME_TAG),
                        created_at=item.get("CreateTime"),
                    )
                )
        return tuple(swept)

    def _persistent_volumes(self) -> tuple[str, ...]:
        listed = self._core.list_persistent_volume().items
        return tuple(sorted(pv.metadata.name for pv in listed if pv.metadata and pv.metadata.name))

    def _secrets(self) -> tuple[SweptSecrets, ...]:
        by_uid: dict[str, list[tuple[str, datetime | None]]] = {}
        for name, modified_at in self._parameters.list():
            uid = pod_uid_of(name)
            if uid:
                by_uid.setdefault(uid, []).append((name, modified_at))
        return tuple(
            SweptSecrets(
                pod_uid=uid,
                names=tuple(sorted(name for name, _ in items)),
                modified_at=max((at for _, at in items if at is not None), default=None),
            )
            for uid, items in sorted(by_uid.items())
        )

    def _pods(self) -> tuple[SweptPod, ...]:
        pods = self._core.list_pod_for_all_namespaces(
            field_selector=f"spec.nodeName={self._node_name}"
        ).items
        swept = []
        for pod in pods:
            meta = pod.metadata
            if meta is None or not (meta.namespace and meta.name and meta.uid):
                continue
            swept.append(
                SweptPod(
                    pod=PodRef(namespace=meta.namespace, name=meta.name, uid=meta.uid),
                    phase=(pod.status.phase if pod.status else None) or PodPhase.PENDING,
                    created_at=meta.creation_timestamp,
                    deleting=meta.deletion_timestamp is not None,
                )
            )
        return tuple(swept)

    # -- end --------------------------------------------------------------------------------
    @activity.defn(name="end_orphans")
    async def end_orphans(self, input: EndOrphansInput) -> EndOrphansOutcome:
        temporal = activity.client()
        ended: list[Orphan] = []
        spared: list[Orphan] = []
        statuses: dict[str, str | None] = {}
        for orphan in input.orphans:
            wid = orphan.workflow_id
            if wid is not None and wid not in statuses:
                statuses[wid] = await workflow_status(temporal, wid)
            if not orphan_decisions.still_orphaned(orphan, statuses.get(wid) if wid else None):
                log.info(
                    "orphan spared: its workflow runs again",
                    kind=orphan.kind.value,
                    orphan=orphan.id,
                    workflow_id=wid,
                )
                spared.append(orphan)
                continue
            await asyncio.to_thread(self._end, orphan)
            activity.heartbeat(orphan.id)
            ORPHANS_ENDED.labels(kind=orphan.kind.value).inc()
            log.info(
                "orphan ended",
                kind=orphan.kind.value,
                orphan=orphan.id,
                instance_id=orphan.id if orphan.kind is OrphanKind.INSTANCE else None,
                volume_id=orphan.id if orphan.kind is OrphanKind.VOLUME else None,
                pod=orphan.pod.key if orphan.pod else None,
                workflow_id=wid,
                reason=orphan.reason,
            )
            ended.append(orphan)
        return EndOrphansOutcome(ended=tuple(ended), spared=tuple(spared))

    def _end(self, orphan: Orphan) -> None:
        if orphan.kind is OrphanKind.INSTANCE:
            self._ec2.terminate([orphan.id])
            if orphan.pod is not None and self._pod_exists(orphan.pod):
                self._record_event(
                    orphan.pod,
                    ORPHAN_TERMINATED_REASON,
                    f"ORCA's orphan sweep terminated instance {orphan.id}: {orphan.reason}",
                )
        elif orphan.kind is OrphanKind.SPOT_REQUEST:
            try:
                self._aws.ec2.cancel_spot_instance_requests(SpotInstanceRequestIds=[orphan.id])
            except Exception as error:
                if not is_not_found(error):
                    raise
        elif orphan.kind is OrphanKind.VOLUME:
            try:
                self._aws.ec2.delete_volume(VolumeId=orphan.id)
            except Exception as error:
                if not (is_not_found(error) or is_volume_busy(error)):
                    raise
        elif orphan.kind is OrphanKind.SECRET_PARAMETERS:
            self._parameters.delete(orphan.parameter_names)
        elif orphan.kind is OrphanKind.POD and orphan.pod is not None:
            self._end_pod(orphan)

    def _pod_exists(self, pod: PodRef) -> bool:
        return self._pod_status.pods.exists(pod)

    def _end_pod(self, orphan: Orphan) -> None:
        pod = orphan.pod
        assert pod is not None
        message = (
            f"{orphan.reason}; nothing runs this pod any more, so ORCA's orphan sweep failed it "
            "and terminates any instance it had"
        )
        if not orphan.pod_finished:
            report = PodStatusReport(
                pod=pod, phase=PodPhase.FAILED, reason=FailureType.WORKFLOW_ENDED, message=message
            )
            self._pod_status.patch_status(pod, status_patch(report, datetime.now(UTC)))
            self._record_event(pod, FailureType.WORKFLOW_ENDED, message)
        if orphan.deleting:
            self._pod_status.pods.delete(pod)

    def _record_event(self, pod: PodRef, reason: str, message: str) -> None:
        report = PodEventReport(pod=pod, type=EventType.WARNING, reason=reason, message=message)
        body = event_body(report, self._node_name, datetime.now(UTC))
        self._pod_status.pods.post_event(pod.namespace, body)
