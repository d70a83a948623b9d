"""Server-side printing: the `meta.k8s.io/v1 Table` responses kubectl asks for on `kubectl get`.

Columns follow the real API server's printers for pods, nodes, namespaces, events, secrets,
configmaps, serviceaccounts, services, poddisruptionbudgets, leases, storageclasses,
persistentvolumes, persistentvolumeclaims and statefulsets; any other resource gets the
generic Name / Created At table a real server gives custom resources.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from orca_devstack.emulators.kube.store import JsonObject, ResourceType

Column = tuple[str, str, int, str]  # name, type, priority (1 = -o wide only), description


def _parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.strptime(value[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC)
    except ValueError:
        return None


def human_duration(seconds: float) -> str:
    """Durations as kubectl shows them: 45s, 3m12s, 5h, 2d3h."""
    seconds = max(int(seconds), 0)
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    return f"{days // 365}y"


def age(obj: JsonObject, moment: dt.datetime) -> str:
    created = _parse_time(obj.get("metadata", {}).get("creationTimestamp"))
    return "<unknown>" if created is None else human_duration((moment - created).total_seconds())


def _pod_row(pod: JsonObject, moment: dt.datetime) -> list[Any]:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for s in statuses if s.get("ready"))
    restarts = sum(int(s.get("restartCount", 0)) for s in statuses)
    reason = status.get("reason") or status.get("phase") or "Unknown"
    for container_status in statuses:
        state = container_status.get("state") or {}
        waiting, terminated = state.get("waiting"), state.get("terminated")
        if waiting and waiting.get("reason"):
            reason = waiting["reason"]
        elif terminated and terminated.get("reason"):
            reason = terminated["reason"]
    if pod["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    gates = spec.get("readinessGates") or []
    return [
        pod["metadata"]["name"],
        f"{ready}/{len(spec.get('containers') or [])}",
        reason,
        restarts,
        age(pod, moment),
        status.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        f"{len(gates)}" if gates else "<none>",
    ]


def _node_row(node: JsonObject, moment: dt.datetime) -> list[Any]:
    status = node.get("status") or {}
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    state = "Ready" if conditions.get("Ready") == "True" else "NotReady"
    if conditions.get("Ready") is None:
        state = "Unknown"
    if (node.get("spec") or {}).get("unschedulable"):
        state += ",SchedulingDisabled"
    labels = node["metadata"].get("labels") or {}
    roles = sorted(
        key.split("/", 1)[1] for key in labels if key.startswith("node-role.kubernetes.io/")
    )
    addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    info = status.get("nodeInfo") or {}
    return [
        node["metadata"]["name"],
        state,
        ",".join(roles) or "<none>",
        age(node, moment),
        info.get("kubeletVersion", ""),
        addresses.get("InternalIP") or "<none>",
        addresses.get("ExternalIP") or "<none>",
        info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


def _namespace_row(namespace: JsonObject, moment: dt.datetime) -> list[Any]:
    phase = (namespace.get("status") or {}).get("phase", "")
    return [namespace["metadata"]["name"], phase, age(namespace, moment)]


def _event_row(event: JsonObject, moment: dt.datetime) -> list[Any]:
    involved = event.get("involvedObject") or {}
    last = _parse_time(event.get("lastTimestamp")) or _parse_time(
        event["metadata"].get("creationTimestamp")
    )
    last_seen = "<unknown>" if last is None else human_duration((moment - last).total_seconds())
    return [
        last_seen,
        event.get("type", ""),
        event.get("reason", ""),
        f"{involved.get('kind', '').lower()}/{involved.get('name', '')}",
        event.get("message", ""),
    ]


def _secret_row(secret: JsonObject, moment: dt.datetime) -> list[Any]:
    data = secret.get("data") or {}
    return [secret["metadata"]["name"], secret.get("type", ""), len(data), age(secret, moment)]


def _config_map_row(config_map: JsonObject, moment: dt.datetime) -> list[Any]:
    count = len(config_map.get("data") or {}) + len(config_map.get("binaryData") or {})
    return [config_map["metadata"]["name"], count, age(config_map, moment)]


def _service_account_row(account: JsonObject, moment: dt.datetime) -> list[Any]:
    return [account["metadata"]["name"], len(account.get("secrets") or []), age(account, moment)]


def _service_row(service: JsonObject, moment: dt.datetime) -> list[Any]:
    spec = service.get("spec") or {}
    service_type = spec.get("type", "ClusterIP")
    external = spec.get("externalIPs") or []
    if service_type == "ExternalName":
        external = [spec.get("externalName", "")]
    elif service_type == "LoadBalancer":
        ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        external = external + [i.get("ip") or i.get("hostname") or "" for i in ingress]
        external = external or ["<pending>"]
    ports = []
    for port in spec.get("ports") or []:
        node_port = f":{port['nodePort']}" if port.get("nodePort") else ""
        ports.append(f"{port.get('port')}{node_port}/{port.get('protocol', 'TCP')}")
    selector = spec.get("selector") or {}
    return [
        service["metadata"]["name"],
        service_type,
        spec.get("clusterIP") or "<none>",
        ",".join(external) or "<none>",
        ",".join(ports) or "<none>",
        age(service, moment),
        ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "<none>",
    ]


def _pdb_row(pdb: JsonObject, moment: dt.datetime) -> list[Any]:
    spec = pdb.get("spec") or {}
    return [
        pdb["metadata"]["name"],
        str(spec["minAvailable"]) if spec.get("minAvailable") is not None else "N/A",
        str(spec["maxUnavailable"]) if spec.get("maxUnavailable") is not None else "N/A",
        int((pdb.get("status") or {}).get("disruptionsAllowed", 0)),
        age(pdb, moment),
    ]


def _lease_row(lease: JsonObject, moment: dt.datetime) -> list[Any]:
    holder = (lease.get("spec") or {}).get("holderIdentity") or ""
    return [lease["metadata"]["name"], holder, age(lease, moment)]


_ACCESS_MODE_ABBREVIATIONS = {
    "ReadWriteOnce": "RWO",
    "ReadOnlyMany": "ROX",
    "ReadWriteMany": "RWX",
    "ReadWriteOncePod": "RWOP",
}


def _access_modes(modes: Any) -> str:
    return ",".join(
        _ACCESS_MODE_ABBREVIATIONS[mode]
        for mode in _ACCESS_MODE_ABBREVIATIONS
        if mode in (modes or [])
    )


def _storage_class_row(storage_class: JsonObject, moment: dt.datetime) -> list[Any]:
    name = storage_class["metadata"]["name"]
    annotations = storage_class["metadata"].get("annotations") or {}
    if "true" in (
        annotations.get("storageclass.kubernetes.io/is-default-class"),
        annotations.get("storageclass.beta.kubernetes.io/is-default-class"),
    ):
        name += " (default)"
    return [
        name,
        storage_class.get("provisioner", ""),
        storage_class.get("reclaimPolicy") or "Delete",
        storage_class.get("volumeBindingMode") or "Immediate",
        bool(storage_class.get("allowVolumeExpansion")),
        age(storage_class, moment),
    ]


def _persistent_volume_row(volume: JsonObject, moment: dt.datetime) -> list[Any]:
    spec, status = volume.get("spec") or {}, volume.get("status") or {}
    claim_ref = spec.get("claimRef") or {}
    claim = f"{claim_ref.get('namespace')}/{claim_ref.get('name')}" if claim_ref else ""
    phase = status.get("phase") or ""
    if volume["metadata"].get("deletionTimestamp"):
        phase = "Terminating"
    return [
        volume["metadata"]["name"],
        (spec.get("capacity") or {}).get("storage", ""),
        _access_modes(spec.get("accessModes")),
        spec.get("persistentVolumeReclaimPolicy", ""),
        phase,
        claim,
        spec.get("storageClassName", ""),
        spec.get("volumeAttributesClassName") or "<unset>",
        status.get("reason", ""),
        age(volume, moment),
        spec.get("volumeMode") or "<unset>",
    ]


def _persistent_volume_claim_row(claim: JsonObject, moment: dt.datetime) -> list[Any]:
    spec, status = claim.get("spec") or {}, claim.get("status") or {}
    phase = status.get("phase") or ""
    if claim["metadata"].get("deletionTimestamp"):
        phase = "Terminating"
    bound = bool(spec.get("volumeName"))
    return [
        claim["metadata"]["name"],
        phase,
        spec.get("volumeName", ""),
        (status.get("capacity") or {}).get("storage", "") if bound else "",
        _access_modes(status.get("accessModes")) if bound else "",
        spec.get("storageClassName") or "",
        spec.get("volumeAttributesClassName") or "<unset>",
        age(claim, moment),
        spec.get("volumeMode") or "<unset>",
    ]


def _stateful_set_row(stateful_set: JsonObject, moment: dt.datetime) -> list[Any]:
    spec, status = stateful_set.get("spec") or {}, stateful_set.get("status") or {}
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    return [
        stateful_set["metadata"]["name"],
        f"{int(status.get('readyReplicas', 0))}/{int(spec.get('replicas', 1))}",
        age(stateful_set, moment),
        ",".join(str(c.get("name", "")) for c in containers),
        ",".join(str(c.get("image", "")) for c in containers),
    ]


def _generic_row(obj: JsonObject, moment: dt.datetime) -> list[Any]:
    return [obj["metadata"]["name"], obj["metadata"].get("creationTimestamp", "")]


_NAME: Column = ("Name", "string", 0, "Name must be unique within a namespace.")
_AGE: Column = (
    "Age",
    "string",
    0,
    "CreationTimestamp is a timestamp representing the server time.",
)
_PRINTERS: dict[str, tuple[list[Column], Callable[[JsonObject, dt.datetime], list[Any]]]] = {
    "/pods": (
        [
            _NAME,
            (
                "Ready",
                "string",
                0,
                "The aggregate readiness state of this pod for accepting traffic.",
            ),
            ("Status", "string", 0, "The aggregate status of the containers in this pod."),
            (
                "Restarts",
                "string",
                0,
                "The number of times the containers in this pod have been restarted.",
            ),
            _AGE,
            ("IP", "string", 1, "IP address allocated to the pod."),
            ("Node", "string", 1, "Name of the node the pod is assigned to."),
            ("Nominated Node", "string", 1, "Name of the node nominated by the scheduler."),
            ("Readiness Gates", "string", 1, "Pod readiness gates."),
        ],
        _pod_row,
    ),
    "/nodes": (
        [
            _NAME,
            ("Status", "string", 0, "The status of the node"),
            ("Roles", "string", 0, "The roles of the node"),
            _AGE,
            ("Version", "string", 0, "Kubelet Version reported by the node."),
            ("Internal-IP", "string", 1, "List of internal IPs."),
            ("External-IP", "string", 1, "List of external IPs."),
            ("OS-Image", "string", 1, "OS Image reported by the node."),
            ("Kernel-Version", "string", 1, "Kernel Version reported by the node."),
            ("Container-Runtime", "string", 1, "Container Runtime Version reported by the node."),
        ],
        _node_row,
    ),
    "/namespaces": (
        [_NAME, ("Status", "string", 0, "The status of the namespace"), _AGE],
        _namespace_row,
    ),
    "/events": (
        [
            ("Last Seen", "string", 0, "Time of the last occurrence."),
            ("Type", "string", 0, "Type of this event."),
            ("Reason", "string", 0, "Reason is why the action was taken."),
            ("Object", "string", 0, "The object this event is about."),
            ("Message", "string", 0, "A human-readable description."),
        ],
        _event_row,
    ),
    "/secrets": (
        [
            _NAME,
            ("Type", "string", 0, "The type of the secret"),
            ("Data", "string", 0, "The number of data items in the secret"),
            _AGE,
        ],
        _secret_row,
    ),
    "/configmaps": (
        [_NAME, ("Data", "string", 0, "The number of data items in the configmap"), _AGE],
        _config_map_row,
    ),
    "/serviceaccounts": (
        [_NAME, ("Secrets", "string", 0, "The number of secrets of the service account"), _AGE],
        _service_account_row,
    ),
    "/services": (
        [
            _NAME,
            ("Type", "string", 0, "The type of the service."),
            ("Cluster-IP", "string", 0, "The IP address of the service."),
            ("External-IP", "string", 0, "The external IP addresses of the service."),
            ("Port(s)", "string", 0, "The ports of the service."),
            _AGE,
            ("Selector", "string", 1, "The label selector of the service."),
        ],
        _service_row,
    ),
    "policy/poddisruptionbudgets": (
        [
            _NAME,
            ("Min Available", "string", 0, "The minimum number of pods that must be available."),
            ("Max Unavailable", "string", 0, "The maximum number of pods that may be unavailable."),
            ("Allowed Disruptions", "integer", 0, "The number of disruptions currently allowed."),
            _AGE,
        ],
        _pdb_row,
    ),
    "coordination.k8s.io/leases": (
        [_NAME, ("Holder", "string", 0, "The holder of the lease."), _AGE],
        _lease_row,
    ),
    "storage.k8s.io/storageclasses": (
        [
            _NAME,
            ("Provisioner", "string", 0, "Indicates the type of the provisioner."),
            ("ReclaimPolicy", "string", 0, "Indicates the type of the reclaim policy."),
            (
                "VolumeBindingMode",
                "string",
                0,
                "Indicates how PersistentVolumeClaims should be provisioned and bound",
            ),
            (
                "AllowVolumeExpansion",
                "string",
                0,
                "Indicates whether the storage class allow volume expand",
            ),
            _AGE,
        ],
        _storage_class_row,
    ),
    "/persistentvolumes": (
        [
            _NAME,
            ("Capacity", "string", 0, "The capacity of the persistent volume."),
            ("Access Modes", "string", 0, "The access modes of the persistent volume."),
            ("Reclaim Policy", "string", 0, "What happens to a released persistent volume."),
            ("Status", "string", 0, "The phase of the persistent volume."),
            ("Claim", "string", 0, "The claim bound to the persistent volume."),
            ("StorageClass", "string", 0, "The storage class of the persistent volume."),
            (
                "VolumeAttributesClass",
                "string",
                0,
                "The volume attributes class of the persistent volume.",
            ),
            ("Reason", "string", 0, "Why the persistent volume is in this phase."),
            _AGE,
            ("VolumeMode", "string", 1, "The volume mode of the persistent volume."),
        ],
        _persistent_volume_row,
    ),
    "/persistentvolumeclaims": (
        [
            _NAME,
            ("Status", "string", 0, "The phase of the claim."),
            ("Volume", "string", 0, "The persistent volume bound to the claim."),
            ("Capacity", "string", 0, "The capacity of the bound volume."),
            ("Access Modes", "string", 0, "The access modes of the bound volume."),
            ("StorageClass", "string", 0, "The storage class of the claim."),
            ("VolumeAttributesClass", "string", 0, "The volume attributes class of the claim."),
            _AGE,
            ("VolumeMode", "string", 1, "The volume mode of the claim."),
        ],
        _persistent_volume_claim_row,
    ),
    "apps/statefulsets": (
        [
            _NAME,
            ("Ready", "string", 0, "Number of the pod with ready state"),
            _AGE,
            ("Containers", "string", 1, "Names of each container in the template."),
            ("Images", "string", 1, "Images referenced by each container in the template."),
        ],
        _stateful_set_row,
    ),
}
_GENERIC = (
    [
        _NAME,
        ("Created At", "date", 0, "CreationTimestamp is a timestamp representing the server time."),
    ],
    _generic_row,
)


def _partial_metadata(obj: JsonObject) -> JsonObject:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj["metadata"],
    }


def build_table(
    resource: ResourceType,
    objects: list[JsonObject],
    list_metadata: JsonObject,
    include_object: str,
    moment: dt.datetime,
) -> JsonObject:
    columns, row = _PRINTERS.get(resource.key, _GENERIC)
    rows = []
    for obj in objects:
        entry: JsonObject = {"cells": row(obj, moment)}
        if include_object == "Object":
            entry["object"] = obj
        elif include_object != "None":
            entry["object"] = _partial_metadata(obj)
        rows.append(entry)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_metadata,
        "columnDefinitions": [
            {
                "name": name,
                "type": kind,
                "format": "name" if name == "Name" else "",
                "description": text,
                "priority": priority,
            }
            for name, kind, priority, text in columns
        ],
        "rows": rows,
    }
