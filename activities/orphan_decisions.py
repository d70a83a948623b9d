"""Which of the cluster's AWS objects and pods are orphans, given what was listed (pure).

An object is an orphan when the PodLifecycle workflow that owns it (named by its pod tags: the
workflow ID is derived from namespace, name and UID) is no longer running and the object is older
than `orphans.minAge`. The owner's state is what Temporal says: running workflows come from a
visibility query, and every owner the query did not name is confirmed by describing that
workflow ID (persistence, not visibility, so a run that visibility has not caught up with is still
seen running). Whatever Temporal could not answer for counts as running: the sweep never ends
what it is unsure of.

- instances (pending, running, stopping, stopped) and spot requests (open, active): orphans when
  their owner is closed or unknown to Temporal (lost to retention), or when they carry no pod tags;
- a pod's secret parameters (`/orca/pods/<uid>/`): likewise, but only for a UID this cluster can
  tell is its own (an instance it listed or a pod on its node), since the path is shared by every
  cluster of an account;
- EBS volumes tagged for this cluster and managed by ORCA: orphans when `available` (attached to
  nothing), older than `orphans.minAge`, and the PersistentVolume their tags name no longer
  exists (its claim was deleted while ORCA could not reclaim it, or a provisioning that created
  the volume never wrote its PersistentVolume);
- pods on the node that are not finished (or are being deleted): orphans only when their workflow
  exists and is closed. A pod whose workflow was never started is the watcher's to start, not the
  sweep's to fail; one whose workflow is gone for good is started anew by the watcher too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from orca.activities.orphan_models import (
    ClusterListing,
    Orphan,
    OrphanKind,
    OwnerState,
    SweepFindings,
)
from orca.instance_state import is_live
from orca.launch_spec import PodRef
from orca.pod_phase import TERMINAL_PHASES
from orca.workflow_ids import pod_ref_from_workflow_id, pod_workflow_id

LIVE_SPOT_REQUEST_STATES = frozenset({"open", "active"})
RUNNING = "Running"
NOT_FOUND = "NotFound"
"""Owner statuses besides Temporal's own (Running, Completed, Failed, Terminated, ...)."""


def owner_state(status: str | None) -> OwnerState:
    """A Temporal execution status (or NotFound; None: not asked) as an `OwnerState`."""
    if status is None:
        return OwnerState.UNKNOWN
    if status == RUNNING:
        return OwnerState.RUNNING
    if status == NOT_FOUND:
        return OwnerState.NOT_FOUND
    if status in ("Completed", "Failed", "Canceled", "Terminated", "TimedOut"):
        return OwnerState.CLOSED
    return OwnerState.UNKNOWN  # ContinuedAsNew as the latest run, or a status ORCA does not know


def old_enough(created: datetime | None, now: datetime, min_age: timedelta) -> bool:
    """Only what is known to be older than `min_age` (an unknown age is young)."""
    return created is not None and now - created >= min_age


def _pods_by_uid(listing: ClusterListing, running: Iterable[str]) -> dict[str, PodRef]:
    pods: dict[str, PodRef] = {}
    for workflow_id in running:
        ref = pod_ref_from_workflow_id(workflow_id)
        if ref is not None:
            pods[ref.uid] = ref
    for ref in listing.known_pods:
        pods.setdefault(ref.uid, ref)
    for instance in listing.instances:
        if instance.pod is not None:
            pods.setdefault(instance.pod.uid, instance.pod)
    for pod in listing.pods:
        pods.setdefault(pod.pod.uid, pod.pod)
    return pods


def workflows_to_confirm(
    listing: ClusterListing, running: Iterable[str], now: datetime, min_age: timedelta
) -> set[str]:
    """Owners of old-enough objects that the visibility query did not list as running: each is
    described before anything it owns is called an orphan."""
    running = set(running)
    pods = _pods_by_uid(listing, running)
    owners: set[str] = set()
    for instance in listing.instances:
        live = is_live(instance.state)
        if live and instance.pod is not None and old_enough(instance.launched_at, now, min_age):
            owners.add(pod_workflow_id(instance.pod))
    for request in listing.spot_requests:
        live = request.state in LIVE_SPOT_REQUEST_STATES
        if live and request.pod is not None and old_enough(request.created_at, now, min_age):
            owners.add(pod_workflow_id(request.pod))
    for secrets in listing.secrets:
        ref = pods.get(secrets.pod_uid)
        if ref is not None and old_enough(secrets.modified_at, now, min_age):
            owners.add(pod_workflow_id(ref))
    for pod in listing.pods:
        if (pod.phase not in TERMINAL_PHASES or pod.deleting) and old_enough(
            pod.created_at, now, min_age
        ):
            owners.add(pod_workflow_id(pod.pod))
    return owners - running


def _why(workflow_id: str, status: str | None) -> str:
    if status == NOT_FOUND:
        return f"its workflow {workflow_id} does not exist (never started, or past retention)"
    return f"its workflow {workflow_id} ended ({status})"


def find_orphans(
    listing: ClusterListing,
    owners: Mapping[str, str],
    now: datetime,
    min_age: timedelta,
) -> SweepFindings:
    """The orphans among `listing`, given each owner's Temporal status (`owners`: workflow ID →
    Running / Completed / Terminated / ... / NotFound; an owner missing from it is unknown)."""
    running = [wid for wid, status in owners.items() if status == RUNNING]
    pods = _pods_by_uid(listing, running)
    orphans: list[Orphan] = []

    def owned_elsewhere(ref: PodRef) -> tuple[str, str | None, OwnerState]:
        workflow_id = pod_workflow_id(ref)
        status = owners.get(workflow_id)
        return workflow_id, status, owner_state(status)

    for instance in listing.instances:
        if not is_live(instance.state):
            continue
        if not old_enough(instance.launched_at, now, min_age):
            continue
        if instance.pod is None:
            orphans.append(
                Orphan(
                    kind=OrphanKind.INSTANCE,
                    id=instance.instance_id,
                    pod=None,
                    workflow_id=None,
                    owner=OwnerState.NOT_FOUND,
                    reason="tagged for this cluster but carries no pod tags",
                )
            )
            continue
        workflow_id, status, state = owned_elsewhere(instance.pod)
        if state in (OwnerState.CLOSED, OwnerState.NOT_FOUND):
            orphans.append(
                Orphan(
                    kind=OrphanKind.INSTANCE,
                    id=instance.instance_id,
                    pod=instance.pod,
                    workflow_id=workflow_id,
                    owner=state,
                    reason=_why(workflow_id, status),
                )
            )

    for request in listing.spot_requests:
        if request.state not in LIVE_SPOT_REQUEST_STATES or request.pod is None:
            continue  # an untagged request may be anyone's: the cluster tag filter found it
        if not old_enough(request.created_at, now, min_age):
            continue
        workflow_id, status, state = owned_elsewhere(request.pod)
        if state in (OwnerState.CLOSED, OwnerState.NOT_FOUND):
            orphans.append(
                Orphan(
                    kind=OrphanKind.SPOT_REQUEST,
                    id=request.request_id,
                    pod=request.pod,
                    workflow_id=workflow_id,
                    owner=state,
                    reason=_why(workflow_id, status),
                )
            )

    unattributed = 0
    for secrets in listing.secrets:
        ref = pods.get(secrets.pod_uid)
        if ref is None:
            unattributed += 1
            continue
        if not old_enough(secrets.modified_at, now, min_age):
            continue
        workflow_id, status, state = owned_elsewhere(ref)
        if state in (OwnerState.CLOSED, OwnerState.NOT_FOUND):
            orphans.append(
                Orphan(
                    kind=OrphanKind.SECRET_PARAMETERS,
                    id=f"/orca/pods/{secrets.pod_uid}/",
                    pod=ref,
                    workflow_id=workflow_id,
                    owner=state,
                    reason=_why(workflow_id, status),
                    parameter_names=secrets.names,
                )
            )

    for pod in listing.pods:
        if pod.phase in TERMINAL_PHASES and not pod.deleting:
            continue
        if not old_enough(pod.created_at, now, min_age):
            continue
        workflow_id, status, state = owned_elsewhere(pod.pod)
        if state is OwnerState.CLOSED:
            orphans.append(
                Orphan(
                    kind=OrphanKind.POD,
                    id=pod.pod.key,
                    pod=pod.pod,
                    workflow_id=workflow_id,
                    owner=state,
                    reason=_why(workflow_id, status),
                    deleting=pod.deleting,
                    pod_finished=pod.phase in TERMINAL_PHASES,
                )
            )

    orphans.extend(orphan_volumes(listing, now, min_age))

    listed = {
        OrphanKind.VOLUME.value: len(listing.volumes),
        OrphanKind.INSTANCE.value: len(listing.instances),
        OrphanKind.SPOT_REQUEST.value: len(listing.spot_requests),
        OrphanKind.SECRET_PARAMETERS.value: len(listing.secrets),
        OrphanKind.POD.value: len(listing.pods),
    }
    return SweepFindings(orphans=tuple(orphans), listed=listed, unattributed_secrets=unattributed)


def orphan_volumes(listing: ClusterListing, now: datetime, min_age: timedelta) -> list[Orphan]:
    """Available, old-enough volumes whose PersistentVolume is gone (pure)."""
    existing = set(listing.persistent_volumes)
    found = []
    for volume in listing.volumes:
        if volume.state != "available" or not old_enough(volume.created_at, now, min_age):
            continue
        if volume.persistent_volume is not None and volume.persistent_volume in existing:
            continue
        named = volume.persistent_volume or "(no persistent-volume tag)"
        found.append(
            Orphan(
                kind=OrphanKind.VOLUME,
                id=volume.volume_id,
                pod=None,
                workflow_id=None,
                owner=OwnerState.NOT_FOUND,
                reason=f"available, and its PersistentVolume {named} does not exist",
            )
        )
    return found


def still_orphaned(orphan: Orphan, status: str | None) -> bool:
    """Right before ending it: is the orphan's owner (described again) still not running?"""
    if orphan.workflow_id is None:
        return True  # no pod tags: no workflow can own it
    state = owner_state(status)
    if orphan.kind is OrphanKind.POD:
        return state is OwnerState.CLOSED
    return state in (OwnerState.CLOSED, OwnerState.NOT_FOUND)
