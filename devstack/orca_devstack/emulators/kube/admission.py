"""Defaulting and validation: what the API server's registry strategies do to an object on write.

Pure functions on JSON objects. Only the defaults kubectl displays and ORCA reads are filled in;
validation catches the mistakes a client is likely to make (missing name, no containers, duplicate
container names, bad names), not the whole of Kubernetes validation.
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime as dt
import functools
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from orca_devstack.emulators.kube import errors
from orca_devstack.emulators.kube import storage_validation as storage
from orca_devstack.emulators.kube.quantity import (
    InvalidQuantityError,
    canonical_quantity,
    parse_quantity,
)
from orca_devstack.emulators.kube.store import JsonObject, ResourceType

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_CONTAINER_LISTS = ("initContainers", "containers")

NOT_READY_TAINT_KEY = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT_KEY = "node.kubernetes.io/unreachable"
DEFAULT_TOLERATION_SECONDS = 300
"""kube-apiserver's `--default-not-ready-toleration-seconds` and
`--default-unreachable-toleration-seconds` defaults."""


@dataclass(frozen=True)
class AdmissionConfig:
    """The admission plugins' flags that change what a created pod looks like."""

    default_not_ready_toleration_seconds: int = DEFAULT_TOLERATION_SECONDS
    default_unreachable_toleration_seconds: int = DEFAULT_TOLERATION_SECONDS

    def default_tolerations(self) -> tuple[JsonObject, ...]:
        """What the DefaultTolerationSeconds plugin adds to a pod lacking them."""
        return (
            {
                "key": NOT_READY_TAINT_KEY,
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": self.default_not_ready_toleration_seconds,
            },
            {
                "key": UNREACHABLE_TAINT_KEY,
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": self.default_unreachable_toleration_seconds,
            },
        )


DEFAULT_ADMISSION = AdmissionConfig()


def default_image_pull_policy(image: str) -> str:
    last = image.rsplit("/", 1)[-1]
    if "@" in last:
        return "IfNotPresent"
    tag = last.rsplit(":", 1)[1] if ":" in last else "latest"
    return "Always" if tag == "latest" else "IfNotPresent"


def _default_container(container: JsonObject) -> None:
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    if isinstance(container.get("image"), str):
        container.setdefault("imagePullPolicy", default_image_pull_policy(container["image"]))
    resources = container.setdefault("resources", {})
    limits = resources.get("limits") or {}
    if limits:
        # The API server defaults requests to limits for resources only limited.
        requests = resources.setdefault("requests", {})
        for name, value in limits.items():
            requests.setdefault(name, value)
    for port in container.get("ports") or []:
        port.setdefault("protocol", "TCP")


def default_pod_spec(spec: JsonObject, config: AdmissionConfig = DEFAULT_ADMISSION) -> None:
    """Fill in a pod spec's defaults in place."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    tolerations = spec.setdefault("tolerations", [])
    for default in config.default_tolerations():
        # As the plugin does: a toleration with this key or no key at all, for NoExecute or for
        # every effect, already covers the taint, whatever its tolerationSeconds.
        if not any(
            t.get("key") in (None, "", default["key"])
            and t.get("effect") in (None, "", "NoExecute")
            for t in tolerations
        ):
            tolerations.append(dict(default))
    for list_name in _CONTAINER_LISTS:
        for container in spec.get(list_name) or []:
            if isinstance(container, dict):
                _default_container(container)


def pod_qos_class(spec: JsonObject) -> str:
    containers = [
        c for name in _CONTAINER_LISTS for c in spec.get(name) or [] if isinstance(c, dict)
    ]
    requests_any = False
    guaranteed = True
    for container in containers:
        resources = container.get("resources") or {}
        requests = {
            k: v for k, v in (resources.get("requests") or {}).items() if k in ("cpu", "memory")
        }
        limits = {
            k: v for k, v in (resources.get("limits") or {}).items() if k in ("cpu", "memory")
        }
        if requests or limits:
            requests_any = True
        if set(limits) != {"cpu", "memory"}:
            guaranteed = False
            continue
        for name, limit in limits.items():
            try:
                if name in requests and parse_quantity(requests[name]) != parse_quantity(limit):
                    guaranteed = False
            except InvalidQuantityError:
                guaranteed = False
    if not requests_any:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def prepare_for_create(
    resource: ResourceType, obj: JsonObject, config: AdmissionConfig = DEFAULT_ADMISSION
) -> None:
    """Apply the defaults and resets a real API server applies when an object is created."""
    if resource.key == "/pods":
        spec = obj.setdefault("spec", {})
        default_pod_spec(spec, config)
        obj["status"] = {"phase": "Pending", "qosClass": pod_qos_class(spec)}
    elif resource.key == "/namespaces":
        obj.setdefault("spec", {"finalizers": ["kubernetes"]})
        obj["status"] = {"phase": "Active"}
        labels = obj["metadata"].setdefault("labels", {})
        labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
    elif resource.key == "/nodes":
        obj.setdefault("spec", {})
        obj.setdefault("status", {})
    elif resource.key == "/services":
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
        obj["status"] = {"loadBalancer": {}}
    elif resource.key == "/secrets":
        obj.setdefault("type", "Opaque")
        merge_string_data(obj)
    elif resource.key == "coordination.k8s.io/leases":
        obj.setdefault("spec", {})
    elif resource.key in storage.KEYS:
        _storage_defaults(resource, obj, config, created=True)


def _storage_defaults(
    resource: ResourceType, obj: JsonObject, config: AdmissionConfig, *, created: bool
) -> None:
    if resource.key == storage.STORAGE_CLASSES:
        storage.default_storage_class(obj)
    elif resource.key == storage.PERSISTENT_VOLUMES:
        storage.default_persistent_volume(obj, dt.datetime.now(dt.UTC), created=created)
    elif resource.key == storage.PERSISTENT_VOLUME_CLAIMS:
        storage.default_persistent_volume_claim(obj, created=created)
    elif resource.key == storage.STATEFUL_SETS:
        storage.default_stateful_set(
            obj,
            created=created,
            default_pod_spec=functools.partial(default_pod_spec, config=config),
        )


PVC_PROTECTION_FINALIZER = "kubernetes.io/pvc-protection"
PV_PROTECTION_FINALIZER = "kubernetes.io/pv-protection"
DEFAULT_CLASS_ANNOTATIONS = (
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
)
BETA_STORAGE_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"


def add_protection_finalizer(resource: ResourceType, obj: JsonObject) -> None:
    """The StorageObjectInUseProtection plugin: new claims and volumes get their finalizer."""
    finalizer = {
        storage.PERSISTENT_VOLUME_CLAIMS: PVC_PROTECTION_FINALIZER,
        storage.PERSISTENT_VOLUMES: PV_PROTECTION_FINALIZER,
    }.get(resource.key)
    if finalizer is None:
        return
    finalizers = obj["metadata"].setdefault("finalizers", [])
    if finalizer not in finalizers:
        finalizers.append(finalizer)


def is_default_class(storage_class: JsonObject) -> bool:
    annotations = storage_class.get("metadata", {}).get("annotations") or {}
    return any(annotations.get(key) == "true" for key in DEFAULT_CLASS_ANNOTATIONS)


def default_storage_class(classes: Iterable[JsonObject]) -> str | None:
    """The DefaultStorageClass plugin's choice: the newest class marked default (then by name)."""
    defaults = [c for c in classes if is_default_class(c)]
    if not defaults:
        return None
    newest = max(
        defaults,
        key=lambda c: (c["metadata"].get("creationTimestamp", ""), c["metadata"]["name"]),
    )
    return str(newest["metadata"]["name"])


def merge_string_data(secret: JsonObject) -> None:
    """A Secret's `stringData` is write-only: the API server base64-encodes it into `data`
    (its keys win over `data`'s) and never stores or returns it. `data` values must be base64;
    a real server cannot even decode a body with other values (400 BadRequest)."""
    data = secret.get("data") or {}
    if not isinstance(data, dict):
        raise errors.bad_request('Secret in version "v1" cannot be handled as a Secret: data')
    for key, value in data.items():
        try:
            base64.b64decode(value if isinstance(value, str) else b"!", validate=True)
        except (binascii.Error, ValueError) as error:
            raise errors.bad_request(
                f'Secret in version "v1" cannot be handled as a Secret: illegal base64 data '
                f"in data[{key!r}]: {error}"
            ) from None
    string_data = secret.pop("stringData", None) or {}
    if not isinstance(string_data, dict) or not all(
        isinstance(v, str) for v in string_data.values()
    ):
        raise errors.bad_request(
            'Secret in version "v1" cannot be handled as a Secret: stringData values must be '
            "strings"
        )
    for key, value in string_data.items():
        data[key] = base64.b64encode(value.encode()).decode()
    if data:
        secret["data"] = data


def prepare_for_update(
    resource: ResourceType, new: JsonObject, config: AdmissionConfig = DEFAULT_ADMISSION
) -> None:
    """Defaults also apply to a replaced object (a PUT body may omit them)."""
    if resource.key == "/secrets":
        merge_string_data(new)
    if resource.key == "/pods":
        default_pod_spec(new.setdefault("spec", {}), config)
    elif resource.key == "/namespaces":
        labels = new["metadata"].setdefault("labels", {})
        labels["kubernetes.io/metadata.name"] = new["metadata"]["name"]
    elif resource.key in storage.KEYS:
        _storage_defaults(resource, new, config, created=False)


def _validate_name(name: Any, namespaced_kind: str) -> str | None:
    if not isinstance(name, str) or not name:
        return "Required value: name or generateName is required"
    pattern = _DNS_LABEL if namespaced_kind == "Namespace" else _DNS_SUBDOMAIN
    if len(name) > 253 or not pattern.match(name):
        return (
            f"Invalid value: {name!r}: a lowercase RFC 1123 subdomain must consist of lower case "
            "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
            "character"
        )
    return None


def validate(resource: ResourceType, obj: JsonObject) -> list[tuple[str, str]]:
    """Return (field, message) causes; empty when the object is valid."""
    causes: list[tuple[str, str]] = []
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        return [("metadata", "Required value")]
    problem = _validate_name(metadata.get("name"), resource.kind)
    if problem:
        causes.append(("metadata.name", problem))
    for field_name in ("labels", "annotations"):
        values = metadata.get(field_name)
        if values is not None and (
            not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values())
        ):
            causes.append((f"metadata.{field_name}", "Invalid value: values must be strings"))
    if resource.key == "/pods":
        causes.extend(_validate_pod_spec(obj.get("spec")))
    elif resource.key == storage.STORAGE_CLASSES:
        causes.extend(storage.validate_storage_class(obj))
    elif resource.key == storage.PERSISTENT_VOLUMES:
        causes.extend(storage.validate_persistent_volume(obj))
    elif resource.key == storage.PERSISTENT_VOLUME_CLAIMS:
        causes.extend(storage.validate_persistent_volume_claim(obj))
    elif resource.key == storage.STATEFUL_SETS:
        causes.extend(storage.validate_stateful_set(obj, _validate_pod_spec))
    return causes


def validate_status(resource: ResourceType, obj: JsonObject) -> list[tuple[str, str]]:
    """What the API server checks of a status write; empty when allowed. For a pod: every
    address it reports is an IP address (ValidatePodStatusUpdate's pod and host IPs)."""
    if resource.key != "/pods" or not isinstance(obj.get("status"), dict):
        return []
    status: JsonObject = obj["status"]
    causes: list[tuple[str, str]] = []
    for single, plural in (("podIP", "podIPs"), ("hostIP", "hostIPs")):
        addresses = [(f"status.{single}", status.get(single))]
        addresses += [
            (f"status.{plural}[{index}].ip", item.get("ip") if isinstance(item, dict) else item)
            for index, item in enumerate(status.get(plural) or [])
        ]
        for path, address in addresses:
            if address in (None, ""):
                continue
            try:
                ipaddress.ip_address(address)
            except ValueError:
                causes.append((path, f"Invalid value: {address!r}: must be a valid IP address"))
    return causes


def validate_update(
    resource: ResourceType, old: JsonObject, new: JsonObject
) -> list[tuple[str, str]]:
    """The immutability rules of an update (not a status write); empty when allowed."""
    if resource.key == storage.STORAGE_CLASSES:
        return storage.validate_storage_class_update(old, new)
    if resource.key == storage.PERSISTENT_VOLUMES:
        return storage.validate_persistent_volume_update(old, new)
    if resource.key == storage.PERSISTENT_VOLUME_CLAIMS:
        return storage.validate_persistent_volume_claim_update(old, new)
    if resource.key == storage.STATEFUL_SETS:
        return storage.validate_stateful_set_update(old, new)
    return []


def _validate_pod_spec(spec: Any) -> list[tuple[str, str]]:
    if not isinstance(spec, dict):
        return [("spec", "Required value")]
    causes: list[tuple[str, str]] = []
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        causes.append(("spec.containers", "Required value"))
        containers = []
    seen: set[str] = set()
    for list_name in _CONTAINER_LISTS:
        items = spec.get(list_name) or []
        if not isinstance(items, list):
            causes.append((f"spec.{list_name}", "Invalid value: must be a list"))
            continue
        for index, container in enumerate(items):
            path = f"spec.{list_name}[{index}]"
            if not isinstance(container, dict):
                causes.append((path, "Invalid value: must be an object"))
                continue
            name = container.get("name")
            if not isinstance(name, str) or not name:
                causes.append((f"{path}.name", "Required value"))
            elif not _DNS_LABEL.match(name):
                causes.append(
                    (f"{path}.name", f"Invalid value: {name!r}: must be a DNS-1123 label")
                )
            elif name in seen:
                causes.append((f"{path}.name", f"Duplicate value: {name!r}"))
            else:
                seen.add(name)
            if not isinstance(container.get("image"), str) or not container.get("image"):
                causes.append((f"{path}.image", "Required value"))
            resources = container.get("resources") or {}
            for kind in ("requests", "limits"):
                for resource_name, value in (resources.get(kind) or {}).items():
                    try:
                        parse_quantity(value)
                    except InvalidQuantityError as error:
                        causes.append(
                            (f"{path}.resources.{kind}[{resource_name}]", f"Invalid value: {error}")
                        )
    return causes


def _resource_lists(path: str, resources: Any) -> list[tuple[str, Any]]:
    if not isinstance(resources, dict):
        return []
    return [(f"{path}.{kind}", resources.get(kind)) for kind in ("requests", "limits")]


def _quantity_maps(resource: ResourceType, obj: JsonObject) -> list[tuple[str, JsonObject]]:
    """Every (field path, name → quantity map) of the object that the API server types as
    resource quantities (an emptyDir's map holds only its `sizeLimit`)."""
    maps: list[tuple[str, Any]] = []
    status: JsonObject = obj["status"] if isinstance(obj.get("status"), dict) else {}
    if resource.key == "/pods":
        spec: JsonObject = obj["spec"] if isinstance(obj.get("spec"), dict) else {}
        for list_name in (*_CONTAINER_LISTS, "ephemeralContainers"):
            for index, container in enumerate(spec.get(list_name) or []):
                if isinstance(container, dict):
                    path = f"spec.{list_name}[{index}].resources"
                    maps += _resource_lists(path, container.get("resources"))
        maps += _resource_lists("spec.resources", spec.get("resources"))
        maps.append(("spec.overhead", spec.get("overhead")))
        for index, volume in enumerate(spec.get("volumes") or []):
            empty_dir = volume.get("emptyDir") if isinstance(volume, dict) else None
            if isinstance(empty_dir, dict) and "sizeLimit" in empty_dir:
                maps.append((f"spec.volumes[{index}].emptyDir", empty_dir))
        for list_name in ("initContainerStatuses", "containerStatuses"):
            for index, container in enumerate(status.get(list_name) or []):
                if isinstance(container, dict):
                    path = f"status.{list_name}[{index}]"
                    maps.append((f"{path}.allocatedResources", container.get("allocatedResources")))
                    maps += _resource_lists(f"{path}.resources", container.get("resources"))
    elif resource.key == "/nodes":
        maps += [(f"status.{name}", status.get(name)) for name in ("capacity", "allocatable")]
    elif resource.key == storage.PERSISTENT_VOLUMES:
        maps.append(("spec.capacity", (obj.get("spec") or {}).get("capacity")))
    elif resource.key == storage.PERSISTENT_VOLUME_CLAIMS:
        maps += _resource_lists("spec.resources", (obj.get("spec") or {}).get("resources"))
        maps.append(("status.capacity", status.get("capacity")))
    elif resource.key == storage.STATEFUL_SETS:
        set_spec: JsonObject = obj["spec"] if isinstance(obj.get("spec"), dict) else {}
        template_spec = (set_spec.get("template") or {}).get("spec") or {}
        for list_name in _CONTAINER_LISTS:
            for index, container in enumerate(template_spec.get(list_name) or []):
                if isinstance(container, dict):
                    path = f"spec.template.spec.{list_name}[{index}].resources"
                    maps += _resource_lists(path, container.get("resources"))
        for index, claim in enumerate(set_spec.get("volumeClaimTemplates") or []):
            if isinstance(claim, dict):
                path = f"spec.volumeClaimTemplates[{index}].spec.resources"
                maps += _resource_lists(path, (claim.get("spec") or {}).get("resources"))
    return [(path, values) for path, values in maps if isinstance(values, dict)]


def canonicalize_quantities(resource: ResourceType, obj: JsonObject) -> list[tuple[str, str]]:
    """Rewrite every resource quantity in place as the API server stores it (a JSON number or
    a non-canonical string comes back as the canonical string: `1` → "1", `"1000m"` → "1");
    return (field, message) causes for the values that are not quantities."""
    causes: list[tuple[str, str]] = []
    for path, values in _quantity_maps(resource, obj):
        names = ["sizeLimit"] if path.endswith(".emptyDir") else list(values)
        for name in names:
            try:
                values[name] = canonical_quantity(values[name])
            except InvalidQuantityError as error:
                causes.append((f"{path}[{name}]", f"Invalid value: {error}"))
    return causes


_MUTABLE_POD_SPEC_FIELDS = ("activeDeadlineSeconds", "terminationGracePeriodSeconds")


def pod_spec_update_forbidden(old_spec: JsonObject, new_spec: JsonObject) -> bool:
    """Pod specs are immutable but for images, activeDeadlineSeconds and added tolerations."""
    old, new = copy.deepcopy(old_spec), copy.deepcopy(new_spec)
    for spec in (old, new):
        for field_name in _MUTABLE_POD_SPEC_FIELDS:
            spec.pop(field_name, None)
        for list_name in _CONTAINER_LISTS:
            for container in spec.get(list_name) or []:
                if isinstance(container, dict):
                    container.pop("image", None)
    old_tolerations = old.pop("tolerations", None) or []
    new_tolerations = new.pop("tolerations", None) or []
    if any(toleration not in new_tolerations for toleration in old_tolerations):
        return True
    # spec.nodeName is set by the binding subresource only, never by an update.
    return old != new
