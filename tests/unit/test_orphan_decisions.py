"""Which objects the orphan sweep ends, given what it listed and what Temporal said (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orca.activities.orphan_decisions import (
    NOT_FOUND,
    RUNNING,
    find_orphans,
    owner_state,
    still_orphaned,
    workflows_to_confirm,
)
from orca.activities.orphan_models import (
    ClusterListing,
    OrphanKind,
    OwnerState,
    SweptInstance,
    SweptPod,
    SweptSecrets,
    SweptSpotRequest,
)
from orca.launch_spec import PodRef
from orca.workflow_ids import pod_workflow_id

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
MIN_AGE = timedelta(minutes=10)
OLD = NOW - timedelta(minutes=30)
YOUNG = NOW - timedelta(minutes=2)
POD = PodRef(namespace="ml", name="train", uid="uid-1")
WID = pod_workflow_id(POD)


def instance(
    pod: PodRef | None = POD, at: datetime | None = OLD, state: str = "running"
) -> SweptInstance:
    return SweptInstance(instance_id="i-1", state=state, pod=pod, launched_at=at)


def kinds(listing: ClusterListing, owners: dict[str, str]) -> list[OrphanKind]:
    return [o.kind for o in find_orphans(listing, owners, NOW, MIN_AGE).orphans]


def test_an_instance_whose_workflow_runs_is_never_an_orphan() -> None:
    listing = ClusterListing(instances=(instance(),))
    assert kinds(listing, {WID: RUNNING}) == []


def test_an_instance_whose_workflow_ended_is_an_orphan_with_the_reason() -> None:
    listing = ClusterListing(instances=(instance(),))
    (orphan,) = find_orphans(listing, {WID: "Terminated"}, NOW, MIN_AGE).orphans
    assert orphan.kind is OrphanKind.INSTANCE
    assert orphan.id == "i-1"
    assert orphan.workflow_id == WID
    assert orphan.owner is OwnerState.CLOSED
    assert orphan.reason == f"its workflow {WID} ended (Terminated)"


def test_an_instance_whose_workflow_is_gone_is_an_orphan() -> None:
    listing = ClusterListing(instances=(instance(),))
    (orphan,) = find_orphans(listing, {WID: NOT_FOUND}, NOW, MIN_AGE).orphans
    assert orphan.owner is OwnerState.NOT_FOUND
    assert "does not exist" in orphan.reason


def test_unknown_owners_young_objects_and_ended_instances_are_left_alone() -> None:
    listing = ClusterListing(instances=(instance(),))
    assert kinds(listing, {}) == []  # Temporal did not answer for this workflow
    assert kinds(ClusterListing(instances=(instance(at=YOUNG),)), {WID: "Terminated"}) == []
    assert kinds(ClusterListing(instances=(instance(at=None),)), {WID: "Terminated"}) == []
    gone = ClusterListing(instances=(instance(state="terminated"),))
    assert kinds(gone, {WID: "Terminated"}) == []
    assert kinds(listing, {WID: "ContinuedAsNew"}) == []  # not a final answer


def test_an_instance_without_pod_tags_is_an_orphan() -> None:
    (orphan,) = find_orphans(
        ClusterListing(instances=(instance(pod=None),)), {}, NOW, MIN_AGE
    ).orphans
    assert orphan.workflow_id is None
    assert still_orphaned(orphan, None)


def test_open_spot_requests_of_ended_workflows_are_orphans() -> None:
    request = SweptSpotRequest(request_id="sir-1", state="open", pod=POD, created_at=OLD)
    closed = SweptSpotRequest(request_id="sir-2", state="closed", pod=POD, created_at=OLD)
    listing = ClusterListing(spot_requests=(request, closed))
    assert kinds(listing, {WID: "Completed"}) == [OrphanKind.SPOT_REQUEST]
    assert kinds(listing, {WID: RUNNING}) == []


def test_secrets_are_swept_only_for_pods_this_cluster_knows() -> None:
    mine = SweptSecrets(pod_uid="uid-1", names=("/orca/pods/uid-1/a",), modified_at=OLD)
    theirs = SweptSecrets(pod_uid="uid-other", names=("/orca/pods/uid-other/a",), modified_at=OLD)
    listing = ClusterListing(secrets=(mine, theirs), known_pods=(POD,))
    findings = find_orphans(listing, {WID: "Terminated"}, NOW, MIN_AGE)
    (orphan,) = findings.orphans
    assert orphan.kind is OrphanKind.SECRET_PARAMETERS
    assert orphan.parameter_names == ("/orca/pods/uid-1/a",)
    assert findings.unattributed_secrets == 1
    assert kinds(listing, {WID: RUNNING}) == []


def test_a_running_workflow_names_the_pod_of_its_secrets() -> None:
    secrets = SweptSecrets(pod_uid="uid-1", names=("/orca/pods/uid-1/a",), modified_at=OLD)
    listing = ClusterListing(secrets=(secrets,))
    findings = find_orphans(listing, {WID: RUNNING}, NOW, MIN_AGE)
    assert findings.orphans == ()
    assert findings.unattributed_secrets == 0


def test_a_live_pod_whose_workflow_closed_is_an_orphan_but_not_one_never_started() -> None:
    pod = SweptPod(pod=POD, phase="Running", created_at=OLD)
    listing = ClusterListing(pods=(pod,))
    (orphan,) = find_orphans(listing, {WID: "Terminated"}, NOW, MIN_AGE).orphans
    assert orphan.kind is OrphanKind.POD
    assert orphan.id == "ml/train"
    assert not orphan.deleting
    assert kinds(listing, {WID: NOT_FOUND}) == []  # the watcher's to start
    assert kinds(listing, {WID: RUNNING}) == []
    finished = ClusterListing(pods=(SweptPod(pod=POD, phase="Failed", created_at=OLD),))
    assert kinds(finished, {WID: "Terminated"}) == []
    deleting = SweptPod(pod=POD, phase="Succeeded", created_at=OLD, deleting=True)
    (release,) = find_orphans(
        ClusterListing(pods=(deleting,)), {WID: "Completed"}, NOW, MIN_AGE
    ).orphans
    assert release.deleting
    assert release.pod_finished  # released, but its Succeeded status is kept
    assert not orphan.pod_finished


def test_only_old_objects_not_listed_running_are_described() -> None:
    other = PodRef(namespace="ml", name="other", uid="uid-2")
    listing = ClusterListing(
        instances=(instance(), instance(pod=other, at=YOUNG)),
        pods=(SweptPod(pod=other, phase="Running", created_at=OLD),),
    )
    assert workflows_to_confirm(listing, [], NOW, MIN_AGE) == {WID, pod_workflow_id(other)}
    assert workflows_to_confirm(listing, [WID], NOW, MIN_AGE) == {pod_workflow_id(other)}


def test_an_orphan_is_spared_when_its_workflow_runs_again() -> None:
    (orphan,) = find_orphans(
        ClusterListing(instances=(instance(),)), {WID: "Terminated"}, NOW, MIN_AGE
    ).orphans
    assert still_orphaned(orphan, "Terminated")
    assert not still_orphaned(orphan, RUNNING)
    assert not still_orphaned(orphan, None)  # Temporal did not answer: end nothing


def test_owner_states() -> None:
    assert owner_state(RUNNING) is OwnerState.RUNNING
    assert owner_state("TimedOut") is OwnerState.CLOSED
    assert owner_state(NOT_FOUND) is OwnerState.NOT_FOUND
    assert owner_state(None) is OwnerState.UNKNOWN


def test_an_available_old_volume_whose_persistent_volume_is_gone_is_an_orphan() -> None:
    from orca.activities.orphan_models import SweptVolume

    def volume(
        vid: str, pv: str | None, state: str = "available", at: datetime = OLD
    ) -> SweptVolume:
        return SweptVolume(volume_id=vid, state=state, persistent_volume=pv, created_at=at)

    listing = ClusterListing(
        volumes=(
            volume("vol-gone", "pvc-gone"),
            volume("vol-kept", "pvc-kept"),
            volume("vol-in-use", "pvc-gone2", state="in-use"),
            volume("vol-young", "pvc-gone3", at=YOUNG),
            volume("vol-untagged", None),
        ),
        persistent_volumes=("pvc-kept",),
    )
    found = find_orphans(listing, {}, NOW, MIN_AGE)
    assert [(o.kind, o.id) for o in found.orphans] == [
        (OrphanKind.VOLUME, "vol-gone"),
        (OrphanKind.VOLUME, "vol-untagged"),
    ]
    assert "pvc-gone does not exist" in found.orphans[0].reason
    assert found.listed["volume"] == 5
