"""kube-controller-manager's StatefulSet controller (and the garbage collector's part for them).

For a set `db` with `replicas: n`: pods `db-0` … `db-(n-1)` from the template, with the labels
`statefulset.kubernetes.io/pod-name`, `apps.kubernetes.io/pod-index` and
`controller-revision-hash`, a controller ownerReference, `hostname` = the pod's name and
`subdomain` = `serviceName`. For each `volumeClaimTemplates` entry `data`, the claim
`data-db-<ordinal>` is created before its pod when missing (labels: the selector's matchLabels)
and the pod gets the volume `{name: data, persistentVolumeClaim: {claimName: data-db-<ordinal>}}`.

`OrderedReady` creates ordinal i only when 0 … i-1 are Running and Ready and removes the highest
ordinal first, one at a time; `Parallel` creates and removes them all at once. A missing pod is
created again; a Failed or Succeeded pod is deleted (and then created again). Claims are kept
unless `persistentVolumeClaimRetentionPolicy` says `Delete` (`whenScaled`: the claims of a
condemned ordinal; `whenDeleted`: every claim when the set goes). Status: replicas,
readyReplicas, currentReplicas, updatedReplicas, availableReplicas, currentRevision,
updateRevision, observedGeneration.

The emulator has no garbage collector, so this controller also deletes the pods (and, with
`whenDeleted: Delete`, the claims) whose controller owner is a StatefulSet that no longer exists,
as a background cascading deletion would. `RollingUpdate` replaces, once every pod is Running and
Ready, the highest ordinal (at or above `partition`) whose `controller-revision-hash` is not the
template's; `OnDelete` leaves them. Not done: ControllerRevision objects (the hash is of the
template alone), `maxUnavailable`, `ordinals.start`, `minReadySeconds` (available = ready).

Decisions are pure functions (`revision_hash`, `pod_for`, `claims_for`, `plan`);
`StatefulSetController` is the background loop.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from orca_devstack.emulators.kube import errors
from orca_devstack.emulators.kube.control_loop import ControlLoop
from orca_devstack.emulators.kube.registry import (
    PERSISTENT_VOLUME_CLAIMS,
    PODS,
    STATEFUL_SETS,
    DeleteOptions,
)
from orca_devstack.emulators.kube.store import JsonObject

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
REVISION_LABEL = "controller-revision-hash"
CONTROLLER = "statefulset-controller"
_SAFE = "bcdfghjklmnpqrstvwxz2456789"


def revision_hash(stateful_set: Mapping[str, Any]) -> str:
    """`<set>-<hash of the template>`, as the controller names a ControllerRevision."""
    template = json.dumps((stateful_set.get("spec") or {}).get("template"), sort_keys=True)
    digest = int(hashlib.sha256(template.encode()).hexdigest()[:15], 16)
    encoded = ""
    while digest and len(encoded) < 10:
        encoded += _SAFE[digest % len(_SAFE)]
        digest //= len(_SAFE)
    return f"{stateful_set['metadata']['name']}-{encoded}"


def ordinal_of(stateful_set: Mapping[str, Any], pod_name: str) -> int | None:
    match = re.fullmatch(rf"{re.escape(stateful_set['metadata']['name'])}-(\d+)", pod_name)
    return int(match.group(1)) if match else None


def owner_reference(stateful_set: Mapping[str, Any]) -> JsonObject:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": stateful_set["metadata"]["name"],
        "uid": stateful_set["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def controller_uid(obj: Mapping[str, Any]) -> str | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == "StatefulSet":
            return str(ref.get("uid"))
    return None


def claim_name(template: Mapping[str, Any], stateful_set: Mapping[str, Any], ordinal: int) -> str:
    return f"{template['metadata']['name']}-{stateful_set['metadata']['name']}-{ordinal}"


def claims_for(stateful_set: Mapping[str, Any], ordinal: int) -> list[JsonObject]:
    """The claims of one ordinal, as the controller creates them."""
    spec = stateful_set.get("spec") or {}
    match_labels = (spec.get("selector") or {}).get("matchLabels") or {}
    retention = spec.get("persistentVolumeClaimRetentionPolicy") or {}
    claims = []
    for template in spec.get("volumeClaimTemplates") or []:
        metadata = template.get("metadata") or {}
        claim: JsonObject = {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {
                "name": claim_name(template, stateful_set, ordinal),
                "namespace": stateful_set["metadata"]["namespace"],
                "labels": {**(metadata.get("labels") or {}), **match_labels},
            },
            "spec": copy.deepcopy(template.get("spec") or {}),
        }
        if metadata.get("annotations"):
            claim["metadata"]["annotations"] = dict(metadata["annotations"])
        if retention.get("whenDeleted") == "Delete":
            claim["metadata"]["ownerReferences"] = [
                {**owner_reference(stateful_set), "controller": False}
            ]
        claims.append(claim)
    return claims


def pod_for(stateful_set: Mapping[str, Any], ordinal: int) -> JsonObject:
    """The pod of one ordinal, from the template."""
    spec = stateful_set.get("spec") or {}
    template = copy.deepcopy(spec.get("template") or {})
    template_metadata = template.get("metadata") or {}
    name = f"{stateful_set['metadata']['name']}-{ordinal}"
    pod_spec = template.get("spec") or {}
    labels = {
        **(template_metadata.get("labels") or {}),
        POD_NAME_LABEL: name,
        POD_INDEX_LABEL: str(ordinal),
        REVISION_LABEL: revision_hash(stateful_set),
    }
    metadata: JsonObject = {
        "name": name,
        "namespace": stateful_set["metadata"]["namespace"],
        "labels": labels,
        "ownerReferences": [owner_reference(stateful_set)],
    }
    if template_metadata.get("annotations"):
        metadata["annotations"] = dict(template_metadata["annotations"])
    claim_templates = spec.get("volumeClaimTemplates") or []
    claim_volumes = {
        t["metadata"]["name"]: {
            "name": t["metadata"]["name"],
            "persistentVolumeClaim": {"claimName": claim_name(t, stateful_set, ordinal)},
        }
        for t in claim_templates
    }
    volumes = [v for v in pod_spec.get("volumes") or [] if v.get("name") not in claim_volumes]
    if claim_volumes:
        pod_spec["volumes"] = [*claim_volumes.values(), *volumes]
    pod_spec["hostname"] = name
    if spec.get("serviceName"):
        pod_spec["subdomain"] = spec["serviceName"]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec}


def is_running_and_ready(pod: Mapping[str, Any]) -> bool:
    status = pod.get("status") or {}
    return (
        status.get("phase") == "Running"
        and not pod["metadata"].get("deletionTimestamp")
        and any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
    )


def _is_terminal(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Failed", "Succeeded")


@dataclass
class Plan:
    """What one pass does for one set; `status` is the set's new status."""

    create_claims: list[tuple[JsonObject, str]] = field(default_factory=list)  # and its pod
    create_pods: list[JsonObject] = field(default_factory=list)
    delete_pods: list[str] = field(default_factory=list)
    delete_claims: list[str] = field(default_factory=list)
    status: JsonObject = field(default_factory=dict)


def plan(
    stateful_set: Mapping[str, Any],
    pods: Iterable[Mapping[str, Any]],
    claims: Mapping[str, Mapping[str, Any]],
) -> Plan:
    """One reconciliation of a set, given its pods (owned by it) and the namespace's claims."""
    spec = stateful_set.get("spec") or {}
    replicas = int(spec.get("replicas", 1))
    ordered = (spec.get("podManagementPolicy") or "OrderedReady") == "OrderedReady"
    when_scaled = (spec.get("persistentVolumeClaimRetentionPolicy") or {}).get("whenScaled")
    revision = revision_hash(stateful_set)
    by_ordinal: dict[int, Mapping[str, Any]] = {}
    for pod in pods:
        ordinal = ordinal_of(stateful_set, pod["metadata"]["name"])
        if ordinal is not None:
            by_ordinal[ordinal] = pod
    result = Plan()
    for ordinal in range(replicas):
        existing_pod = by_ordinal.get(ordinal)
        if existing_pod is not None:
            pod = existing_pod
            if _is_terminal(pod) and not pod["metadata"].get("deletionTimestamp"):
                result.delete_pods.append(pod["metadata"]["name"])
                if ordered:
                    break
                continue
            if ordered and not is_running_and_ready(pod):
                break  # OrderedReady waits for this one before going on
            continue
        blocked = False
        for claim in claims_for(stateful_set, ordinal):
            existing = claims.get(claim["metadata"]["name"])
            if existing is None:
                pod_name = f"{stateful_set['metadata']['name']}-{ordinal}"
                result.create_claims.append((claim, pod_name))
            elif existing["metadata"].get("deletionTimestamp"):
                blocked = True  # the pod would mount a claim on its way out: wait
        if not blocked:
            result.create_pods.append(pod_for(stateful_set, ordinal))
        if ordered:
            break
    condemned = sorted((o for o in by_ordinal if o >= replicas), reverse=True)
    if condemned and not (ordered and (result.create_pods or result.delete_pods)):
        for ordinal in condemned:
            pod = by_ordinal[ordinal]
            if not pod["metadata"].get("deletionTimestamp"):
                result.delete_pods.append(pod["metadata"]["name"])
            if when_scaled == "Delete":
                result.delete_claims += [
                    c["metadata"]["name"]
                    for c in claims_for(stateful_set, ordinal)
                    if c["metadata"]["name"] in claims
                ]
            if ordered:
                break  # one at a time, highest ordinal first
    in_range = [by_ordinal[o] for o in range(replicas) if o in by_ordinal]
    strategy = spec.get("updateStrategy") or {}
    if (
        strategy.get("type", "RollingUpdate") == "RollingUpdate"
        and not (result.create_pods or result.delete_pods)
        and len(in_range) == replicas
        and all(is_running_and_ready(p) for p in in_range)
    ):
        # RollingUpdate: replace the highest outdated ordinal at or above the partition.
        partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
        for ordinal in range(replicas - 1, partition - 1, -1):
            pod = by_ordinal[ordinal]
            if (pod["metadata"].get("labels") or {}).get(REVISION_LABEL) != revision:
                result.delete_pods.append(pod["metadata"]["name"])
                break
    live = [p for p in by_ordinal.values() if not p["metadata"].get("deletionTimestamp")]
    ready = sum(1 for p in live if is_running_and_ready(p))

    def revision_of(pod: Mapping[str, Any]) -> str:
        return str((pod["metadata"].get("labels") or {}).get(REVISION_LABEL) or "")

    updated = sum(1 for p in live if revision_of(p) == revision)
    previous = (stateful_set.get("status") or {}).get("currentRevision") or revision
    current_revision = revision if updated == replicas == len(live) else previous
    result.status = {
        "observedGeneration": stateful_set["metadata"].get("generation", 1),
        "replicas": len(live),
        "readyReplicas": ready,
        "currentReplicas": sum(1 for p in live if revision_of(p) == current_revision),
        "updatedReplicas": updated,
        "availableReplicas": ready,
        "currentRevision": current_revision,
        "updateRevision": revision,
        "collisionCount": 0,
    }
    if not ready:
        del result.status["readyReplicas"]
    return result


class StatefulSetController(ControlLoop):
    name = "statefulset-controller"
    watched = (STATEFUL_SETS, PODS, PERSISTENT_VOLUME_CLAIMS)

    def reconcile(self) -> None:
        store = self.registry.store
        sets = {s["metadata"]["uid"]: s for s in store.iter_objects(STATEFUL_SETS)}
        pods_by_owner: dict[str, list[JsonObject]] = {}
        for pod in store.iter_objects(PODS):
            owner = controller_uid(pod)
            if owner is not None:
                pods_by_owner.setdefault(owner, []).append(pod)
        claims_by_namespace: dict[str, dict[str, JsonObject]] = {}
        for claim in store.iter_objects(PERSISTENT_VOLUME_CLAIMS):
            namespace = claim["metadata"]["namespace"]
            claims_by_namespace.setdefault(namespace, {})[claim["metadata"]["name"]] = claim
        for uid, stateful_set in sets.items():
            if self.stopping:
                return
            if stateful_set["metadata"].get("deletionTimestamp"):
                continue
            namespace = stateful_set["metadata"]["namespace"]
            self._apply(
                stateful_set,
                plan(
                    stateful_set, pods_by_owner.get(uid, []), claims_by_namespace.get(namespace, {})
                ),
            )
        # The garbage collector's background cascade for sets that are gone.
        for owner, pods in pods_by_owner.items():
            if owner not in sets:
                for pod in pods:
                    if not pod["metadata"].get("deletionTimestamp"):
                        self._delete(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])
        for namespace, claims in claims_by_namespace.items():
            for claim in claims.values():
                owners = [
                    ref.get("uid")
                    for ref in claim["metadata"].get("ownerReferences") or []
                    if ref.get("kind") == "StatefulSet"
                ]
                if (
                    owners
                    and not any(uid in sets for uid in owners)
                    and not claim["metadata"].get("deletionTimestamp")
                ):
                    self._delete(PERSISTENT_VOLUME_CLAIMS, namespace, claim["metadata"]["name"])

    def _apply(self, stateful_set: JsonObject, actions: Plan) -> None:
        namespace = stateful_set["metadata"]["namespace"]
        for claim, pod_name in actions.create_claims:
            try:
                self.registry.create(PERSISTENT_VOLUME_CLAIMS, namespace, claim)
            except errors.ApiError as error:
                if error.code != 409:
                    self._event(stateful_set, "Warning", "FailedCreate", str(error))
                    return
                continue
            self._event(
                stateful_set,
                "Normal",
                "SuccessfulCreate",
                f"create Claim {claim['metadata']['name']} Pod {pod_name} in "
                f"StatefulSet {stateful_set['metadata']['name']} success",
            )
        for pod in actions.create_pods:
            try:
                self.registry.create(PODS, namespace, pod)
            except errors.ApiError as error:
                if error.code != 409:
                    self._event(stateful_set, "Warning", "FailedCreate", str(error))
                continue
            self._event(
                stateful_set,
                "Normal",
                "SuccessfulCreate",
                f"create Pod {pod['metadata']['name']} in StatefulSet "
                f"{stateful_set['metadata']['name']} successful",
            )
        for name in actions.delete_pods:
            self._delete(PODS, namespace, name)
            self._event(
                stateful_set,
                "Normal",
                "SuccessfulDelete",
                f"delete Pod {name} in StatefulSet {stateful_set['metadata']['name']} successful",
            )
        for name in actions.delete_claims:
            self._delete(PERSISTENT_VOLUME_CLAIMS, namespace, name)
        if (stateful_set.get("status") or {}) != actions.status:

            def set_status(candidate: JsonObject) -> None:
                candidate["status"] = actions.status

            self.registry.mutate(
                STATEFUL_SETS,
                namespace,
                stateful_set["metadata"]["name"],
                set_status,
                subresource="status",
            )

    def _delete(self, resource: Any, namespace: str, name: str) -> None:
        try:
            self.registry.delete(resource, namespace, name, DeleteOptions())
        except errors.ApiError as error:
            if error.code != 404:
                raise

    def _event(self, stateful_set: JsonObject, kind: str, reason: str, message: str) -> None:
        current = self.registry.store.get(
            STATEFUL_SETS, stateful_set["metadata"]["namespace"], stateful_set["metadata"]["name"]
        )
        if current is not None:
            self.registry.record_event(current, STATEFUL_SETS, kind, reason, message, CONTROLLER)
