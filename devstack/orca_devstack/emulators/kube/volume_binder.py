"""kube-controller-manager's PersistentVolume binder and the protection controllers.

The binder (`persistentvolume-binder-controller`):

* A claim with `spec.volumeName` whose volume points back at it (or at nobody: the claim is then
  pre-bound, and the volume gets its `claimRef`) is `Bound`: claim status phase, capacity and
  access modes, annotation `pv.kubernetes.io/bind-completed`; the volume's phase `Bound`.
* A claim without a volume takes a volume pre-bound to it (`spec.claimRef` names the claim);
  otherwise, unless its class is `WaitForFirstConsumer` and no node is selected yet, the best
  matching `Available` volume (same class, enough capacity, the access modes, the volume mode;
  the smallest fitting; for a `WaitForFirstConsumer` class the scheduler picks it instead, by
  giving it a claimRef); otherwise, for a class with a provisioner, the claim is annotated
  `volume.kubernetes.io/storage-provisioner` (and the beta annotation) for an external
  provisioner. It never provisions.
* A volume without a claim is `Available`; one whose claim is gone (another UID) is `Released`,
  claimRef kept; the reclaim policy is the provisioner's business (ORCA's), so nothing is deleted:
  a `Delete` volume no provisioner annotated (`pv.kubernetes.io/provisioned-by`) is `Failed`, as
  on a cluster without an in-tree plugin able to delete it.

The protection controllers remove `kubernetes.io/pvc-protection` from a claim being deleted once
no non-terminal pod uses it, and `kubernetes.io/pv-protection` from a volume being deleted once it
is not `Bound`; the registry then really deletes the object.

Decisions are pure functions (`claim_changes`, `volume_phase`, `best_volume`, ...);
`VolumeBinder` is the background loop.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from fractions import Fraction
from typing import Any

from orca_devstack.emulators.kube import errors
from orca_devstack.emulators.kube.admission import (
    PV_PROTECTION_FINALIZER,
    PVC_PROTECTION_FINALIZER,
)
from orca_devstack.emulators.kube.control_loop import ControlLoop
from orca_devstack.emulators.kube.quantity import InvalidQuantityError, parse_quantity
from orca_devstack.emulators.kube.registry import (
    PERSISTENT_VOLUME_CLAIMS,
    PERSISTENT_VOLUMES,
    PODS,
    STORAGE_CLASSES,
    Registry,
    format_time,
)
from orca_devstack.emulators.kube.store import JsonObject

BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
BETA_STORAGE_PROVISIONER = "volume.beta.kubernetes.io/storage-provisioner"
SELECTED_NODE = "volume.kubernetes.io/selected-node"
NO_PROVISIONER = "kubernetes.io/no-provisioner"
_TERMINAL_PHASES = ("Succeeded", "Failed")


def _storage(resources: Mapping[str, Any] | None) -> Fraction | None:
    try:
        return parse_quantity((resources or {}).get("storage", ""))
    except InvalidQuantityError:
        return None


def class_name(obj: Mapping[str, Any]) -> str:
    """A claim's or volume's class ("" for none)."""
    return str((obj.get("spec") or {}).get("storageClassName") or "")


def claim_key(claim: Mapping[str, Any]) -> tuple[str, str]:
    return claim["metadata"].get("namespace", ""), claim["metadata"]["name"]


def refers_to(volume: Mapping[str, Any], claim: Mapping[str, Any]) -> bool:
    """The volume's claimRef names this claim (and its UID, when the ref has one)."""
    ref = (volume.get("spec") or {}).get("claimRef") or {}
    if (ref.get("namespace"), ref.get("name")) != claim_key(claim):
        return False
    return not ref.get("uid") or ref.get("uid") == claim["metadata"]["uid"]


def claim_ref(claim: Mapping[str, Any]) -> JsonObject:
    metadata = claim["metadata"]
    return {
        "kind": "PersistentVolumeClaim",
        "namespace": metadata.get("namespace", ""),
        "name": metadata["name"],
        "uid": metadata["uid"],
        "apiVersion": "v1",
        "resourceVersion": metadata.get("resourceVersion", ""),
    }


def volume_matches(volume: Mapping[str, Any], claim: Mapping[str, Any]) -> bool:
    """Could this unclaimed volume satisfy the claim (class, size, access and volume modes)?"""
    spec, claim_spec = volume.get("spec") or {}, claim.get("spec") or {}
    if class_name(volume) != class_name(claim):
        return False
    if (spec.get("volumeMode") or "Filesystem") != (claim_spec.get("volumeMode") or "Filesystem"):
        return False
    if not set(claim_spec.get("accessModes") or []) <= set(spec.get("accessModes") or []):
        return False
    wanted = _storage((claim_spec.get("resources") or {}).get("requests"))
    offered = _storage(spec.get("capacity"))
    if wanted is None or offered is None or offered < wanted:
        return False
    selector = claim_spec.get("selector") or {}
    labels = volume["metadata"].get("labels") or {}
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def best_volume(
    claim: Mapping[str, Any], volumes: Iterable[Mapping[str, Any]], delayed: bool = False
) -> str | None:
    """The volume pre-bound to the claim, else (unless the claim's binding is delayed for the
    scheduler) the smallest Available matching one; its name or None."""
    candidates: list[tuple[Fraction, str]] = []
    for volume in volumes:
        spec = volume.get("spec") or {}
        if volume["metadata"].get("deletionTimestamp"):
            continue
        if spec.get("claimRef"):
            if refers_to(volume, claim):
                return str(volume["metadata"]["name"])
            continue
        if delayed or (volume.get("status") or {}).get("phase") != "Available":
            continue
        if volume_matches(volume, claim):
            size = _storage(spec.get("capacity")) or Fraction(0)
            candidates.append((size, str(volume["metadata"]["name"])))
    return min(candidates)[1] if candidates else None


def volume_phase(volume: Mapping[str, Any], claims: Mapping[tuple[str, str], Any]) -> str:
    """The phase the binder gives a volume from its claimRef and that claim."""
    current = (volume.get("status") or {}).get("phase")
    if current == "Failed":
        return "Failed"
    ref = (volume.get("spec") or {}).get("claimRef")
    if not ref:
        return "Available"
    claim = claims.get((ref.get("namespace", ""), ref.get("name", "")))
    if claim is None or (ref.get("uid") and ref["uid"] != claim["metadata"]["uid"]):
        # Pre-bound to a claim not created yet: still Available; its claim went: Released.
        return "Released" if ref.get("uid") else "Available"
    if (claim.get("spec") or {}).get("volumeName") == volume["metadata"]["name"]:
        return "Bound"
    return "Released" if current in ("Bound", "Released") else "Available"


PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"


def reclaim_failure(volume: Mapping[str, Any]) -> str | None:
    """Why a Released volume with reclaim policy Delete fails: no provisioner annotated it
    (`pv.kubernetes.io/provisioned-by`) and the emulator has no in-tree volume plugin to delete
    it with. None when it stays Released (Retain, or an external provisioner deletes it)."""
    spec = volume.get("spec") or {}
    annotations = volume["metadata"].get("annotations") or {}
    if spec.get("persistentVolumeReclaimPolicy") != "Delete" or PROVISIONED_BY in annotations:
        return None
    name = volume["metadata"]["name"]
    return (
        f'error getting deleter volume plugin for volume "{name}": '
        "no deletable volume plugin matched"
    )


def claim_changes(
    claim: Mapping[str, Any],
    storage_class: Mapping[str, Any] | None,
    volumes: Mapping[str, Mapping[str, Any]],
) -> tuple[JsonObject | None, str | None]:
    """What the binder does with one claim: (the claim's new spec/metadata/status or None for no
    change, the name of a volume to give a claimRef to this claim or None)."""
    spec = claim.get("spec") or {}
    metadata = claim["metadata"]
    annotations = metadata.get("annotations") or {}
    status = claim.get("status") or {}
    new = copy.deepcopy(dict(claim))
    new_annotations = new["metadata"].setdefault("annotations", {})
    name = spec.get("volumeName")
    if name:
        volume = volumes.get(name)
        if volume is None:
            phase = "Lost" if status.get("phase") in ("Bound", "Lost") else "Pending"
            new["status"] = {**status, "phase": phase}
            return (new if new != claim else None), None
        if not (volume.get("spec") or {}).get("claimRef"):
            return None, name  # pre-bound claim: give the volume its claimRef first
        if not refers_to(volume, claim):
            new["status"] = {**status, "phase": "Pending"}
            return (new if new != claim else None), None
        volume_spec = volume.get("spec") or {}
        new_annotations[BIND_COMPLETED] = "yes"
        new["status"] = {
            **status,
            "phase": "Bound",
            "accessModes": list(volume_spec.get("accessModes") or []),
            "capacity": dict(volume_spec.get("capacity") or {}),
        }
        return (new if new != claim else None), None
    if not status.get("phase"):
        new.setdefault("status", {})["phase"] = "Pending"
    delayed = (storage_class or {}).get("volumeBindingMode") == "WaitForFirstConsumer"
    waiting = delayed and SELECTED_NODE not in annotations
    chosen = best_volume(claim, volumes.values(), delayed)
    if chosen is not None:
        volume = volumes[chosen]
        if refers_to(volume, claim):
            new["spec"]["volumeName"] = chosen
            new_annotations[BOUND_BY_CONTROLLER] = "yes"
            return new, None
        return (new if new != claim else None), chosen
    provisioner = (storage_class or {}).get("provisioner")
    if not waiting and provisioner and provisioner != NO_PROVISIONER:
        new_annotations[STORAGE_PROVISIONER] = provisioner
        new_annotations[BETA_STORAGE_PROVISIONER] = provisioner
    if not new_annotations:
        new["metadata"].pop("annotations", None)
    return (new if new != claim else None), None


def claim_event(
    claim: Mapping[str, Any], storage_class: Mapping[str, Any] | None
) -> tuple[str, str] | None:
    """The (reason, message) of the Normal event the binder records for a claim still unbound
    after its pass, in kube-controller-manager's words; None for a bound claim."""
    spec = claim.get("spec") or {}
    if spec.get("volumeName") or claim["metadata"].get("deletionTimestamp"):
        return None
    annotations = claim["metadata"].get("annotations") or {}
    provisioner = annotations.get(STORAGE_PROVISIONER)
    if provisioner:
        return (
            "ExternalProvisioning",
            f"Waiting for a volume to be created either by the external provisioner "
            f"'{provisioner}' or manually by the system administrator. If volume creation is "
            "delayed, please verify that the provisioner is running and correctly registered.",
        )
    mode = (storage_class or {}).get("volumeBindingMode")
    if mode == "WaitForFirstConsumer" and SELECTED_NODE not in annotations:
        return "WaitForFirstConsumer", "waiting for first consumer to be created before binding"
    if not class_name(claim):
        return (
            "FailedBinding",
            "no persistent volumes available for this claim and no storage class is set",
        )
    return None


def pod_uses_claim(pod: Mapping[str, Any], namespace: str, name: str) -> bool:
    if pod["metadata"].get("namespace") != namespace:
        return False
    if (pod.get("status") or {}).get("phase") in _TERMINAL_PHASES:
        return False
    return any(
        ((volume.get("persistentVolumeClaim") or {}).get("claimName")) == name
        for volume in (pod.get("spec") or {}).get("volumes") or []
    )


def claim_releasable(claim: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> bool:
    """The pvc-protection finalizer may go: the claim is being deleted and no pod uses it."""
    metadata = claim["metadata"]
    if not metadata.get("deletionTimestamp"):
        return False
    if PVC_PROTECTION_FINALIZER not in (metadata.get("finalizers") or []):
        return False
    namespace, name = claim_key(claim)
    return not any(pod_uses_claim(pod, namespace, name) for pod in pods)


def volume_releasable(volume: Mapping[str, Any]) -> bool:
    """The pv-protection finalizer may go: the volume is being deleted and is not Bound."""
    metadata = volume["metadata"]
    return (
        bool(metadata.get("deletionTimestamp"))
        and PV_PROTECTION_FINALIZER in (metadata.get("finalizers") or [])
        and (volume.get("status") or {}).get("phase") != "Bound"
    )


class VolumeBinder(ControlLoop):
    """The binder and the two protection controllers, one pass over every claim and volume."""

    name = "volume-binder"
    watched = (PERSISTENT_VOLUME_CLAIMS, PERSISTENT_VOLUMES, STORAGE_CLASSES, PODS)

    def __init__(self, registry: Registry, resync_seconds: float = 5.0) -> None:
        super().__init__(registry, resync_seconds)
        self._recorded: set[tuple[str, str]] = set()

    def reconcile(self) -> None:
        store = self.registry.store
        classes = {c["metadata"]["name"]: c for c in store.iter_objects(STORAGE_CLASSES)}
        volumes = {v["metadata"]["name"]: v for v in store.iter_objects(PERSISTENT_VOLUMES)}
        claims = {claim_key(c): c for c in store.iter_objects(PERSISTENT_VOLUME_CLAIMS)}
        for claim in claims.values():
            if self.stopping:
                return
            changed, claim_volume = claim_changes(claim, classes.get(class_name(claim)), volumes)
            if claim_volume is not None:
                self._give_claim_ref(claim_volume, claim)
            elif changed is not None:
                self._write_claim(claim, changed)
            self._record_claim_event(changed or claim, classes.get(class_name(claim)))
        claims = {claim_key(c): c for c in store.iter_objects(PERSISTENT_VOLUME_CLAIMS)}
        for volume in store.iter_objects(PERSISTENT_VOLUMES):
            phase = volume_phase(volume, claims)
            message = reclaim_failure(volume) if phase == "Released" else None
            if message is not None:
                phase = "Failed"
            if (volume.get("status") or {}).get("phase") != phase:
                self._set_volume_phase(volume, phase, message)
                if message is not None:
                    self.registry.record_event(
                        volume,
                        PERSISTENT_VOLUMES,
                        "Warning",
                        "VolumeFailedDelete",
                        message,
                        "persistentvolume-controller",
                    )
        pods = list(store.iter_objects(PODS))
        for claim in store.iter_objects(PERSISTENT_VOLUME_CLAIMS):
            if claim_releasable(claim, pods):
                self._remove_finalizer(PERSISTENT_VOLUME_CLAIMS, claim, PVC_PROTECTION_FINALIZER)
        for volume in store.iter_objects(PERSISTENT_VOLUMES):
            if volume_releasable(volume):
                self._remove_finalizer(PERSISTENT_VOLUMES, volume, PV_PROTECTION_FINALIZER)

    def _record_claim_event(
        self, claim: JsonObject, storage_class: Mapping[str, Any] | None
    ) -> None:
        """Once per claim and reason (a real controller repeats it, counted, on each resync)."""
        event = claim_event(claim, storage_class)
        if event is None:
            return
        key = (claim["metadata"]["uid"], event[0])
        if key in self._recorded:
            return
        self._recorded.add(key)
        current = self.registry.store.get(PERSISTENT_VOLUME_CLAIMS, *claim_key(claim))
        if current is not None:
            self.registry.record_event(
                current,
                PERSISTENT_VOLUME_CLAIMS,
                "Normal",
                event[0],
                event[1],
                "persistentvolume-controller",
            )

    def _give_claim_ref(self, volume_name: str, claim: JsonObject) -> None:
        def bind(candidate: JsonObject) -> None:
            candidate["spec"]["claimRef"] = claim_ref(claim)
            candidate["metadata"].setdefault("annotations", {})[BOUND_BY_CONTROLLER] = "yes"

        self.registry.mutate(PERSISTENT_VOLUMES, "", volume_name, bind)

    def _write_claim(self, claim: JsonObject, changed: JsonObject) -> None:
        namespace, name = claim_key(claim)

        def update(candidate: JsonObject) -> None:
            candidate["metadata"] = changed["metadata"]
            candidate["spec"] = changed["spec"]

        if changed["metadata"] != claim["metadata"] or changed.get("spec") != claim.get("spec"):
            claim = self.registry.mutate(PERSISTENT_VOLUME_CLAIMS, namespace, name, update)
        if changed.get("status") != claim.get("status"):

            def set_status(candidate: JsonObject) -> None:
                candidate["status"] = changed.get("status") or {}

            self.registry.mutate(
                PERSISTENT_VOLUME_CLAIMS, namespace, name, set_status, subresource="status"
            )

    def _set_volume_phase(self, volume: JsonObject, phase: str, message: str | None) -> None:
        def set_phase(candidate: JsonObject) -> None:
            status = candidate.setdefault("status", {})
            status["phase"] = phase
            if message:
                status["message"] = message
            else:
                status.pop("message", None)
            status["lastPhaseTransitionTime"] = format_time(self.registry.clock())

        self.registry.mutate(
            PERSISTENT_VOLUMES, "", volume["metadata"]["name"], set_phase, subresource="status"
        )

    def _remove_finalizer(self, resource: Any, obj: JsonObject, finalizer: str) -> None:
        namespace, name = claim_key(obj) if resource.namespaced else ("", obj["metadata"]["name"])

        def remove(candidate: JsonObject) -> None:
            finalizers = [
                f for f in candidate["metadata"].get("finalizers") or [] if f != finalizer
            ]
            candidate["metadata"]["finalizers"] = finalizers

        try:
            self.registry.mutate(resource, namespace, name, remove)
        except errors.ApiError as error:
            if error.code != 404:
                raise
