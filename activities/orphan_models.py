"""Inputs and outputs of the orphan sweep (`orca.workflows.orphan_sweep`): what it listed, what it
found, what it ended. Imported by workflow code through the sandbox, so no side effects here."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from orca.launch_spec import PodRef
from orca.pod_phase import PodPhase


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class OrphanKind(StrEnum):
    INSTANCE = "instance"
    SPOT_REQUEST = "spot-request"
    SECRET_PARAMETERS = "secret-parameters"
    POD = "pod"
    VOLUME = "volume"


class OwnerState(StrEnum):
    """What Temporal says of the PodLifecycle workflow an object belongs to."""

    RUNNING = "Running"
    CLOSED = "Closed"
    NOT_FOUND = "NotFound"
    UNKNOWN = "Unknown"
    """Temporal could not say: treated as running (the sweep ends nothing it is unsure of)."""


# -- what the sweep lists ---------------------------------------------------------------------
class SweptInstance(_Model):
    instance_id: str
    state: str
    pod: PodRef | None
    """From the instance's pod tags; None when they are missing."""
    launched_at: datetime | None


class SweptSpotRequest(_Model):
    request_id: str
    state: str
    pod: PodRef | None
    created_at: datetime | None
    instance_id: str | None = None


class SweptSecrets(_Model):
    """A pod's SecureString parameters under `/orca/pods/<uid>/`."""

    pod_uid: str
    names: tuple[str, ...]
    modified_at: datetime | None
    """The newest LastModifiedDate among them."""


class SweptPod(_Model):
    pod: PodRef
    phase: PodPhase
    created_at: datetime | None
    deleting: bool = False


class SweptVolume(_Model):
    """An EBS volume tagged for this cluster and managed by ORCA (a provisioned claim's)."""

    volume_id: str
    state: str
    persistent_volume: str | None
    """The PersistentVolume its tags name; None when the tag is missing."""
    created_at: datetime | None


class ClusterListing(_Model):
    """Everything of this cluster that a PodLifecycle workflow may own, listed once per sweep."""

    instances: tuple[SweptInstance, ...] = ()
    spot_requests: tuple[SweptSpotRequest, ...] = ()
    secrets: tuple[SweptSecrets, ...] = ()
    pods: tuple[SweptPod, ...] = ()
    volumes: tuple[SweptVolume, ...] = ()
    persistent_volumes: tuple[str, ...] = ()
    """The names of every PersistentVolume in the cluster, listed after the volumes."""
    known_pods: tuple[PodRef, ...] = ()
    """Pods this cluster launched for, from every instance listed (terminated ones included):
    a secret parameter is attributed to this cluster only through one of them or a pod on the
    node, since several clusters may share the `/orca/pods/` path of one account."""


# -- the sweep --------------------------------------------------------------------------------
class SweepInput(_Model):
    min_age: timedelta
    report_only: bool = False


class Orphan(_Model):
    kind: OrphanKind
    id: str
    """Instance ID, spot request ID, parameter path or `<namespace>/<name>` of the pod."""
    pod: PodRef | None
    workflow_id: str | None
    owner: OwnerState
    reason: str
    parameter_names: tuple[str, ...] = ()
    deleting: bool = False
    """A pod with a deletionTimestamp: ORCA, as its kubelet, removes the object too."""
    pod_finished: bool = False
    """A pod already Succeeded or Failed (being deleted): its status is left as it is."""


class SweepFindings(_Model):
    orphans: tuple[Orphan, ...] = ()
    listed: dict[str, int] = {}
    """How many of each kind were listed, for the Temporal UI."""
    unattributed_secrets: int = 0
    """Parameter sets under `/orca/pods/` this cluster cannot tell are its own (left alone)."""


class EndOrphansInput(_Model):
    orphans: tuple[Orphan, ...]


class EndOrphansOutcome(_Model):
    ended: tuple[Orphan, ...] = ()
    spared: tuple[Orphan, ...] = ()
    """Found as orphans, but Temporal no longer said so when they were to be ended."""


class SweepReport(_Model):
    report_only: bool
    found: tuple[Orphan, ...] = ()
    ended: tuple[Orphan, ...] = ()
    spared: tuple[Orphan, ...] = ()
    listed: dict[str, int] = {}
