"""The virtual node's Node object, built from the settings: pure functions, no API calls.

Capacity and allocatable are the same (nothing is reserved for a system daemon: every pod gets an
instance of its own) and include the accelerator resources pods request: `nvidia.com/gpu`,
`aws.amazon.com/neuron`, `aws.amazon.com/fpga`.

`Ready` says what a kubelet's says: the process that runs the node's pods is alive. It is True
while the watcher runs (and renews the node's Lease), whatever the state of Temporal, the worker
or AWS. It must not say more: a control plane taints a node whose Ready is False with
`node.kubernetes.io/not-ready:NoExecute` and evicts every pod on it once their tolerations run out
(300 s by default), so a Temporal upgrade would end every running GPU job. Dependencies get
conditions of their own (`DEPENDENCY_CONDITIONS`, reasons and messages for `kubectl describe
node`) and, while any is not True, the `orca.research/dependency-unavailable:NoSchedule` taint:
no new pod lands on the node, running pods are untouched, as the pressure conditions' NoSchedule
taints do for a kubelet. The pressure conditions are always False because pods never share the
node's resources. `lastTransitionTime` only moves when a condition's status changes, as a kubelet
does.

Taints: ORCA owns the configured `node.taints` and the dependency taint, and records the
configured ones it applied in the `orca.research/node-taints` annotation so that a taint removed
from the settings is removed from the node. Every other taint (the node lifecycle controller's
`not-ready`/`unreachable`, an administrator's `kubectl taint`) is left as it is (`merge_taints`).
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orca import __version__
from orca.settings import NodeSettings

GPU_RESOURCE = "nvidia.com/gpu"
NEURON_RESOURCE = "aws.amazon.com/neuron"
FPGA_RESOURCE = "aws.amazon.com/fpga"
KUBELET_VERSION = "v1.32.0-orca"
"""What `kubectl get nodes` shows in VERSION; the API server uses it for feature gating."""
ROLE_LABEL = "node.kubernetes.io/role"
TYPE_LABEL = "type"


TEMPORAL_AVAILABLE = "orca.research/TemporalAvailable"
WORKER_POLLING = "orca.research/WorkerPolling"
AWS_AVAILABLE = "orca.research/AwsAvailable"
DEPENDENCY_CONDITIONS = (TEMPORAL_AVAILABLE, WORKER_POLLING, AWS_AVAILABLE)
DEPENDENCY_TAINT_KEY = "orca.research/dependency-unavailable"
TAINTS_ANNOTATION = "orca.research/node-taints"
"""The configured taints ORCA applied (`key:effect`, comma-separated): removed when unconfigured."""


@dataclass(frozen=True)
class DependencyCondition:
    """One dependency's node condition: "True" when ORCA can use it, else why not."""

    type: str
    status: str
    reason: str
    message: str

    @property
    def available(self) -> bool:
        return self.status == "True"


@dataclass(frozen=True)
class NodeHealth:
    """What the node's conditions say: the watcher's own liveness (Ready) and each dependency."""

    ready: bool = True
    reason: str = "KubeletReady"
    message: str = "the ORCA watcher is running: it renews the node lease and posts node status"
    dependencies: tuple[DependencyCondition, ...] = ()

    @property
    def dependencies_available(self) -> bool:
        return all(d.available for d in self.dependencies)

    def unavailable(self) -> tuple[DependencyCondition, ...]:
        return tuple(d for d in self.dependencies if not d.available)


READY = NodeHealth()


def kube_time(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def node_labels(settings: NodeSettings) -> dict[str, str]:
    labels = {
        "kubernetes.io/hostname": settings.name,
        "kubernetes.io/os": settings.operating_system.lower(),
        "kubernetes.io/arch": "amd64",
        TYPE_LABEL: "virtual-kubelet",
        ROLE_LABEL: "agent",
    }
    labels.update(settings.labels)
    return labels


def node_resources(settings: NodeSettings) -> dict[str, str]:
    return {
        "cpu": settings.cpu,
        "memory": settings.memory,
        "pods": settings.pods,
        GPU_RESOURCE: settings.gpu,
        NEURON_RESOURCE: settings.neuron,
        FPGA_RESOURCE: settings.fpga,
    }


def node_conditions(
    health: NodeHealth, now: datetime, previous: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """The five kubelet conditions, then the dependencies'; transition times kept from
    `previous` when a status is unchanged."""
    before = {c.get("type"): c for c in previous or []}
    wanted = [
        ("Ready", "True" if health.ready else "False", health.reason, health.message),
        ("MemoryPressure", "False", "KubeletHasSufficientMemory", "pods do not share memory"),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "pods do not share disks"),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "pods do not share PIDs"),
        ("NetworkUnavailable", "False", "RouteCreated", "instances use the VPC network"),
    ]
    wanted += [(d.type, d.status, d.reason, d.message) for d in health.dependencies]
    conditions = []
    for kind, status, reason, message in wanted:
        old = before.get(kind)
        transition = (
            old.get("lastTransitionTime")
            if old is not None and old.get("status") == status and old.get("lastTransitionTime")
            else kube_time(now)
        )
        conditions.append(
            {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": kube_time(now),
                "lastTransitionTime": transition,
            }
        )
    return conditions


def node_status(
    settings: NodeSettings,
    health: NodeHealth,
    now: datetime,
    *,
    kubelet_port: int | None = None,
    previous_conditions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    resources = node_resources(settings)
    return {
        "capacity": dict(resources),
        "allocatable": dict(resources),
        "conditions": node_conditions(health, now, previous_conditions),
        "addresses": [
            {"type": "InternalIP", "address": settings.address},
            {"type": "Hostname", "address": settings.name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port or settings.kubelet_port}},
        "nodeInfo": {
            "machineID": settings.name,
            "systemUUID": settings.name,
            "bootID": "",
            "kernelVersion": platform.release(),
            "osImage": f"ORCA {__version__} (AWS EC2 burst)",
            "containerRuntimeVersion": f"orca://{__version__}",
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": KUBELET_VERSION,
            "operatingSystem": settings.operating_system.lower(),
            "architecture": "amd64",
        },
    }


def taint_key(taint: dict[str, Any]) -> tuple[str, str]:
    return str(taint.get("key") or ""), str(taint.get("effect") or "")


def wanted_taints(settings: NodeSettings, health: NodeHealth) -> list[dict[str, Any]]:
    """The taints ORCA wants on the node: the configured ones, plus the dependency taint while a
    dependency is unavailable."""
    taints = [
        {"key": taint.key, "value": taint.value, "effect": str(taint.effect)}
        for taint in settings.taints
    ]
    if not health.dependencies_available:
        # No value: which dependency is down is in the conditions, and a toleration of the key
        # (operator Exists) should not depend on it.
        taints.append({"key": DEPENDENCY_TAINT_KEY, "effect": "NoSchedule"})
    return taints


def owned_taints_annotation(settings: NodeSettings) -> str:
    return ",".join(f"{t.key}:{t.effect}" for t in settings.taints)


def parse_owned_taints(annotation: str | None) -> set[tuple[str, str]]:
    owned = set()
    for item in (annotation or "").split(","):
        key, _, effect = item.strip().rpartition(":")
        if key and effect:
            owned.add((key, effect))
    return owned


def merge_taints(
    current: list[dict[str, Any]],
    wanted: list[dict[str, Any]],
    previously_owned: set[tuple[str, str]],
) -> list[dict[str, Any]]:
    """`current` with ORCA's taints replaced by `wanted`; every other taint kept, in place.

    ORCA's taints are the dependency taint, the `wanted` ones and those it applied before
    (`previously_owned`, from the annotation). A wanted taint already present with the same key,
    effect and value is kept as it is.
    """
    wanted_by_key = {taint_key(t): t for t in wanted}
    owned = set(wanted_by_key) | previously_owned
    result: list[dict[str, Any]] = []
    for taint in current:
        key = taint_key(taint)
        if key[0] == DEPENDENCY_TAINT_KEY or key in owned:
            want = wanted_by_key.pop(key, None)
            if want is not None:
                same = (taint.get("value") or "") == (want.get("value") or "")
                result.append(taint if same else want)
            continue
        result.append(taint)
    result.extend(wanted_by_key.values())
    return result


def build_node(
    settings: NodeSettings,
    health: NodeHealth,
    now: datetime,
    *,
    kubelet_port: int | None = None,
    previous_conditions: list[dict[str, Any]] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The whole Node object to create (or whose labels, taints and status to patch).

    `annotations` are published on the node as well (the cluster settings for the CLI,
    `orca.published_settings`)."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": settings.name,
            "labels": node_labels(settings),
            "annotations": {
                **(annotations or {}),
                TAINTS_ANNOTATION: owned_taints_annotation(settings),
            },
        },
        "spec": {"taints": wanted_taints(settings, health)},
        "status": node_status(
            settings,
            health,
            now,
            kubelet_port=kubelet_port,
            previous_conditions=previous_conditions,
        ),
    }
