"""Defaulting and validation of StorageClasses, PersistentVolumes, PersistentVolumeClaims and
StatefulSets, as kube-apiserver's registry strategies and `pkg/apis/*/validation` do them.

Pure functions on JSON objects, called by `admission`. The messages are the real server's (the
parts ORCA and kubectl users meet); the whole of Kubernetes validation is not repeated.
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from orca_devstack.emulators.kube.quantity import InvalidQuantityError, parse_quantity
from orca_devstack.emulators.kube.store import JsonObject

Causes = list[tuple[str, str]]

STORAGE_CLASSES = "storage.k8s.io/storageclasses"
PERSISTENT_VOLUMES = "/persistentvolumes"
PERSISTENT_VOLUME_CLAIMS = "/persistentvolumeclaims"
STATEFUL_SETS = "apps/statefulsets"
KEYS = frozenset({STORAGE_CLASSES, PERSISTENT_VOLUMES, PERSISTENT_VOLUME_CLAIMS, STATEFUL_SETS})

ACCESS_MODES = ("ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod")
RECLAIM_POLICIES = ("Delete", "Recycle", "Retain")
BINDING_MODES = ("Immediate", "WaitForFirstConsumer")
VOLUME_MODES = ("Block", "Filesystem")
# PersistentVolumeSpec's inline PersistentVolumeSource: exactly one of them.
VOLUME_SOURCES = (
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "hostPath",
    "glusterfs",
    "nfs",
    "rbd",
    "iscsi",
    "cinder",
    "cephfs",
    "fc",
    "flocker",
    "flexVolume",
    "azureFile",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "local",
    "storageos",
    "csi",
)
# StatefulSetSpec fields an update may change (apps/validation ValidateStatefulSetUpdate).
_MUTABLE_SET_FIELDS = (
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "revisionHistoryLimit",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
)
STATEFUL_SET_UPDATE_FORBIDDEN = (
    "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
    "'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and "
    "'minReadySeconds' are forbidden"
)
CLAIM_UPDATE_FORBIDDEN = (
    "spec is immutable after creation except resources.requests and "
    "volumeAttributesClassName for bound claims"
)


def _quoted(values: tuple[str, ...]) -> str:
    return ", ".join(f'"{value}"' for value in values)


def _not_supported(value: Any, supported: tuple[str, ...]) -> str:
    return f'Unsupported value: "{value}": supported values: {_quoted(supported)}'


def _dict(value: Any) -> JsonObject:
    return value if isinstance(value, dict) else {}


# -- defaults ----------------------------------------------------------------------------------


def default_storage_class(obj: JsonObject) -> None:
    obj.setdefault("reclaimPolicy", "Delete")
    obj.setdefault("volumeBindingMode", "Immediate")


def default_persistent_volume(obj: JsonObject, moment: dt.datetime, *, created: bool) -> None:
    spec = obj.setdefault("spec", {})
    if isinstance(spec, dict):
        spec.setdefault("persistentVolumeReclaimPolicy", "Retain")
        spec.setdefault("volumeMode", "Filesystem")
    if created:
        # PersistentVolumeLastPhaseTransitionTime (GA in 1.31): a new volume is Pending.
        obj["status"] = {
            "phase": "Pending",
            "lastPhaseTransitionTime": moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


def default_claim_spec(spec: Any) -> None:
    if isinstance(spec, dict):
        spec.setdefault("volumeMode", "Filesystem")


def default_persistent_volume_claim(obj: JsonObject, *, created: bool) -> None:
    default_claim_spec(obj.setdefault("spec", {}))
    if created:
        obj["status"] = {"phase": "Pending"}


def default_stateful_set(obj: JsonObject, *, created: bool, default_pod_spec: Any) -> None:
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    spec.setdefault("replicas", 1)
    spec.setdefault("podManagementPolicy", "OrderedReady")
    strategy = spec.setdefault("updateStrategy", {})
    if isinstance(strategy, dict):
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            if isinstance(rolling, dict):
                rolling.setdefault("partition", 0)
    retention = spec.setdefault("persistentVolumeClaimRetentionPolicy", {})
    if isinstance(retention, dict):
        retention.setdefault("whenDeleted", "Retain")
        retention.setdefault("whenScaled", "Retain")
    spec.setdefault("revisionHistoryLimit", 10)
    template = spec.get("template")
    if isinstance(template, dict):
        template.setdefault("metadata", {"creationTimestamp": None})
        if isinstance(template.get("spec"), dict):
            default_pod_spec(template["spec"])
    for claim in spec.get("volumeClaimTemplates") or []:
        if isinstance(claim, dict):
            claim.setdefault("apiVersion", "v1")
            claim.setdefault("kind", "PersistentVolumeClaim")
            default_claim_spec(claim.setdefault("spec", {}))
            claim.setdefault("status", {"phase": "Pending"})
    if created:
        obj["status"] = {"replicas": 0, "availableReplicas": 0}


# -- validation --------------------------------------------------------------------------------


def _validate_access_modes(path: str, modes: Any, required_message: str) -> Causes:
    if not isinstance(modes, list) or not modes:
        return [(path, f"Required value: {required_message}")]
    causes: Causes = []
    for mode in modes:
        if mode not in ACCESS_MODES:
            causes.append((path, _not_supported(mode, ACCESS_MODES)))
    if "ReadWriteOncePod" in modes and len(modes) > 1:
        causes.append(
            (
                path,
                "Forbidden: may not use ReadWriteOncePod with other access modes",
            )
        )
    return causes


def _validate_storage(path: str, value: Any) -> Causes:
    try:
        amount = parse_quantity(value)
    except InvalidQuantityError as error:
        return [(path, f"Invalid value: {error}")]
    if amount <= 0:
        return [(path, f'Invalid value: "{value}": must be greater than zero')]
    return []


def validate_storage_class(obj: JsonObject) -> Causes:
    causes: Causes = []
    if not obj.get("provisioner"):
        causes.append(("provisioner", "Required value"))
    if obj.get("reclaimPolicy") not in ("Delete", "Retain"):
        causes.append(
            ("reclaimPolicy", _not_supported(obj.get("reclaimPolicy"), ("Delete", "Retain")))
        )
    if obj.get("volumeBindingMode") not in BINDING_MODES:
        causes.append(
            ("volumeBindingMode", _not_supported(obj.get("volumeBindingMode"), BINDING_MODES))
        )
    parameters = obj.get("parameters")
    if parameters is not None and (
        not isinstance(parameters, dict) or not all(isinstance(v, str) for v in parameters.values())
    ):
        causes.append(("parameters", "Invalid value: parameters must be strings"))
    return causes


def validate_persistent_volume(obj: JsonObject) -> Causes:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [("spec", "Required value")]
    causes: Causes = []
    causes += _validate_access_modes(
        "spec.accessModes", spec.get("accessModes"), "must specify at least 1 access mode"
    )
    capacity = spec.get("capacity")
    if not isinstance(capacity, dict) or not capacity:
        causes.append(("spec.capacity", "Required value"))
    elif "storage" not in capacity or len(capacity) > 1:
        causes.append(
            ("spec.capacity", f'Unsupported value: {sorted(capacity)}: supported values: "storage"')
        )
    else:
        causes += _validate_storage("spec.capacity[storage]", capacity["storage"])
    sources = [name for name in VOLUME_SOURCES if spec.get(name) is not None]
    if not sources:
        causes.append(("spec", "Required value: must specify a volume type"))
    for extra in sources[1:]:
        causes.append((f"spec.{extra}", "Forbidden: may not specify more than 1 volume type"))
    csi = spec.get("csi")
    if isinstance(csi, dict):
        if not csi.get("driver"):
            causes.append(("spec.csi.driver", "Required value"))
        if not csi.get("volumeHandle"):
            causes.append(("spec.csi.volumeHandle", "Required value"))
    ebs = spec.get("awsElasticBlockStore")
    if isinstance(ebs, dict) and not ebs.get("volumeID"):
        causes.append(("spec.awsElasticBlockStore.volumeID", "Required value"))
    policy = spec.get("persistentVolumeReclaimPolicy")
    if policy not in RECLAIM_POLICIES:
        causes.append(
            ("spec.persistentVolumeReclaimPolicy", _not_supported(policy, RECLAIM_POLICIES))
        )
    if spec.get("volumeMode") not in VOLUME_MODES:
        causes.append(("spec.volumeMode", _not_supported(spec.get("volumeMode"), VOLUME_MODES)))
    claim_ref = spec.get("claimRef")
    if claim_ref is not None:
        if not isinstance(claim_ref, dict):
            causes.append(("spec.claimRef", "Invalid value: must be an object"))
        else:
            if not claim_ref.get("name"):
                causes.append(("spec.claimRef.name", "Required value"))
            if not claim_ref.get("namespace"):
                causes.append(("spec.claimRef.namespace", "Required value"))
    return causes


def validate_claim_spec(path: str, spec: Any) -> Causes:
    if not isinstance(spec, dict):
        return [(path, "Required value")]
    causes = _validate_access_modes(
        f"{path}.accessModes", spec.get("accessModes"), "at least 1 access mode is required"
    )
    requests = _dict(_dict(spec.get("resources")).get("requests"))
    if "storage" not in requests:
        causes.append((f"{path}.resources[storage]", "Required value"))
    else:
        causes += _validate_storage(f"{path}.resources[storage]", requests["storage"])
    if spec.get("volumeMode") not in VOLUME_MODES:
        causes.append((f"{path}.volumeMode", _not_supported(spec.get("volumeMode"), VOLUME_MODES)))
    return causes


def validate_persistent_volume_claim(obj: JsonObject) -> Causes:
    return validate_claim_spec("spec", obj.get("spec"))


def validate_stateful_set(obj: JsonObject, validate_pod_spec: Any) -> Causes:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [("spec", "Required value")]
    causes: Causes = []
    replicas = spec.get("replicas")
    if not isinstance(replicas, int) or replicas < 0:
        causes.append(
            ("spec.replicas", f"Invalid value: {replicas}: must be greater than or equal to 0")
        )
    policy = spec.get("podManagementPolicy")
    if policy not in ("OrderedReady", "Parallel"):
        causes.append(
            ("spec.podManagementPolicy", _not_supported(policy, ("OrderedReady", "Parallel")))
        )
    strategy = _dict(spec.get("updateStrategy")).get("type")
    if strategy not in ("OnDelete", "RollingUpdate"):
        causes.append(
            ("spec.updateStrategy.type", _not_supported(strategy, ("OnDelete", "RollingUpdate")))
        )
    retention = _dict(spec.get("persistentVolumeClaimRetentionPolicy"))
    for key in ("whenDeleted", "whenScaled"):
        if retention.get(key) not in ("Retain", "Delete"):
            causes.append(
                (
                    f"spec.persistentVolumeClaimRetentionPolicy.{key}",
                    _not_supported(retention.get(key), ("Retain", "Delete")),
                )
            )
    selector = spec.get("selector")
    template = _dict(spec.get("template"))
    labels = _dict(_dict(template.get("metadata")).get("labels"))
    if not isinstance(selector, dict) or not (
        selector.get("matchLabels") or selector.get("matchExpressions")
    ):
        causes.append(("spec.selector", "Required value"))
    elif not selector_matches(selector, labels):
        causes.append(
            (
                "spec.template.metadata.labels",
                f"Invalid value: {labels}: `selector` does not match template `labels`",
            )
        )
    if not isinstance(template.get("spec"), dict):
        causes.append(("spec.template.spec", "Required value"))
    else:
        pod_spec = template["spec"]
        causes += [
            (f"spec.template.{field}", message) for field, message in validate_pod_spec(pod_spec)
        ]
        if pod_spec.get("restartPolicy") != "Always":
            causes.append(
                (
                    "spec.template.spec.restartPolicy",
                    _not_supported(pod_spec.get("restartPolicy"), ("Always",)),
                )
            )
        if pod_spec.get("activeDeadlineSeconds") is not None:
            causes.append(
                (
                    "spec.template.spec.activeDeadlineSeconds",
                    "Forbidden: activeDeadlineSeconds in StatefulSet is not Supported",
                )
            )
    for index, claim in enumerate(spec.get("volumeClaimTemplates") or []):
        path = f"spec.volumeClaimTemplates[{index}]"
        if not isinstance(claim, dict) or not _dict(claim.get("metadata")).get("name"):
            causes.append((f"{path}.metadata.name", "Required value"))
            continue
        causes += validate_claim_spec(f"{path}.spec", claim.get("spec"))
    return causes


def selector_matches(selector: JsonObject, labels: JsonObject) -> bool:
    """A metav1.LabelSelector against a label map (matchLabels and matchExpressions)."""
    for key, value in _dict(selector.get("matchLabels")).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key = expression.get("key")
        operator = expression.get("operator")
        values = expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


# -- updates -----------------------------------------------------------------------------------


def _field_is_immutable(path: str, value: Any) -> tuple[str, str]:
    return (path, f"Invalid value: {value!r}: field is immutable")


def validate_storage_class_update(old: JsonObject, new: JsonObject) -> Causes:
    causes: Causes = []
    if (old.get("parameters") or {}) != (new.get("parameters") or {}):
        causes.append(("parameters", "Forbidden: updates to parameters are forbidden."))
    if old.get("provisioner") != new.get("provisioner"):
        causes.append(("provisioner", "Forbidden: updates to provisioner are forbidden."))
    if old.get("reclaimPolicy") != new.get("reclaimPolicy"):
        causes.append(("reclaimPolicy", "Forbidden: updates to reclaimPolicy are forbidden."))
    if old.get("volumeBindingMode") != new.get("volumeBindingMode"):
        causes.append(_field_is_immutable("volumeBindingMode", new.get("volumeBindingMode")))
    return causes


def _volume_source(spec: JsonObject) -> JsonObject:
    return {name: spec[name] for name in VOLUME_SOURCES if spec.get(name) is not None}


def validate_persistent_volume_update(old: JsonObject, new: JsonObject) -> Causes:
    old_spec, new_spec = _dict(old.get("spec")), _dict(new.get("spec"))
    causes: Causes = []
    if _volume_source(old_spec) != _volume_source(new_spec):
        causes.append(
            (
                "spec.persistentvolumesource",
                "Forbidden: spec.persistentvolumesource is immutable after creation",
            )
        )
    if old_spec.get("volumeMode") != new_spec.get("volumeMode"):
        causes.append(_field_is_immutable("spec.volumeMode", new_spec.get("volumeMode")))
    if old_spec.get("nodeAffinity") and old_spec.get("nodeAffinity") != new_spec.get(
        "nodeAffinity"
    ):
        causes.append(_field_is_immutable("spec.nodeAffinity", new_spec.get("nodeAffinity")))
    return causes


def validate_persistent_volume_claim_update(old: JsonObject, new: JsonObject) -> Causes:
    old_spec = copy.deepcopy(_dict(old.get("spec")))
    new_spec = copy.deepcopy(_dict(new.get("spec")))
    # The binder sets spec.volumeName once; a class name may be set on a claim without one.
    if not old_spec.get("volumeName"):
        old_spec["volumeName"] = new_spec.get("volumeName")
    if old_spec.get("storageClassName") is None:
        old_spec["storageClassName"] = new_spec.get("storageClassName")
    for spec in (old_spec, new_spec):
        for key in ("volumeName", "storageClassName"):
            if spec.get(key) is None:
                spec.pop(key, None)
    bound = _dict(old.get("status")).get("phase") == "Bound"
    old_requests = _dict(_dict(old_spec.get("resources")).get("requests"))
    new_requests = _dict(_dict(new_spec.get("resources")).get("requests"))
    if bound:
        old_spec.setdefault("resources", {})["requests"] = new_requests
        old_spec.pop("volumeAttributesClassName", None)
        new_spec.pop("volumeAttributesClassName", None)
    if old_spec != new_spec:
        return [("spec", f"Forbidden: {CLAIM_UPDATE_FORBIDDEN}")]
    if bound and "storage" in old_requests and "storage" in new_requests:
        try:
            shrunk = parse_quantity(new_requests["storage"]) < parse_quantity(
                old_requests["storage"]
            )
        except InvalidQuantityError:
            shrunk = False
        if shrunk:
            return [
                (
                    "spec.resources.requests.storage",
                    "Forbidden: field can not be less than previous value",
                )
            ]
    return []


def validate_stateful_set_update(old: JsonObject, new: JsonObject) -> Causes:
    old_spec = {k: v for k, v in _dict(old.get("spec")).items() if k not in _MUTABLE_SET_FIELDS}
    new_spec = {k: v for k, v in _dict(new.get("spec")).items() if k not in _MUTABLE_SET_FIELDS}
    if old_spec != new_spec:
        return [("spec", f"Forbidden: {STATEFUL_SET_UPDATE_FORBIDDEN}")]
    return []
