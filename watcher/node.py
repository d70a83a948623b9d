"""The virtual node's Node object, built from the settings: a pure function, no API calls.

Capacity and allocatable are the same (nothing is reserved for a system daemon: every pod gets an
instance of its own) and include the accelerator resources pods request: `nvidia.com/gpu`,
`aws.amazon.com/neuron`, `aws.amazon.com/fpga`. The conditions say whether ORCA can run pods now
(`NodeHealth`); the pressure conditions are always False because pods never share the node's
resources. `lastTransitionTime` only moves when a condition's status changes, as a kubelet does.
"""

from __future__ import annotations

import platform
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


@dataclass(frozen=True)
class NodeHealth:
    """Whether the node can run pods now, and if not, why (the Ready condition's reason)."""

    ready: bool
    reason: str = "KubeletReady"
    message: str = "ORCA is ready to launch pods on EC2"


READY = NodeHealth(ready=True)


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
    """The five kubelet conditions; transition times kept from `previous` when unchanged."""
    before = {c.get("type"): c for c in previous or []}
    wanted = [
        ("Ready", "True" if health.ready else "False", health.reason, health.message),
        ("MemoryPressure", "False", "KubeletHasSufficientMemory", "pods do not share memory"),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "pods do not share disks"),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "pods do not share PIDs"),
        ("NetworkUnavailable", "False", "RouteCreated", "instances use the VPC network"),
    ]
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


def build_node(
    settings: NodeSettings,
    health: NodeHealth,
    now: datetime,
    *,
    kubelet_port: int | None = None,
    previous_conditions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The whole Node object to create (or whose labels, taints and status to patch)."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": settings.name, "labels": node_labels(settings)},
        "spec": {
            "taints": [
                {"key": taint.key, "value": taint.value, "effect": str(taint.effect)}
                for taint in settings.taints
            ]
        },
        "status": node_status(
            settings,
            health,
            now,
            kubelet_port=kubelet_port,
            previous_conditions=previous_conditions,
        ),
    }
