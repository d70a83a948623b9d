"""The emulator's scheduler seen through the official client."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from tests.fixtures.kube import eventually, ready_node

BURST_TAINT = {"key": "orca.research/burst-node", "value": "true", "effect": "NoSchedule"}


def gpu_pod(name: str, gpus: int = 1, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "containers": [
                {
                    "name": "train",
                    "image": "pytorch:2",
                    "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
                }
            ],
            **spec,
        },
    }


def scheduled_condition(core: client.CoreV1Api, name: str) -> Any:
    pod = core.read_namespaced_pod(name, "default")
    return next((c for c in pod.status.conditions or [] if c.type == "PodScheduled"), None)


def test_binds_to_a_fitting_node_and_records_an_event(kube_core: client.CoreV1Api) -> None:
    kube_core.create_node(ready_node("cpu-only"))
    kube_core.create_node(ready_node("gpu", allocatable={"nvidia.com/gpu": "1"}))
    kube_core.create_namespaced_pod("default", gpu_pod("train"))
    pod = eventually(
        lambda: (p := kube_core.read_namespaced_pod("train", "default")).spec.node_name and p
    )
    assert pod.spec.node_name == "gpu"
    assert scheduled_condition(kube_core, "train").status == "True"
    events = eventually(
        lambda: (
            kube_core.list_namespaced_event(
                "default", field_selector="involvedObject.name=train,reason=Scheduled"
            ).items
        )
    )
    assert events[0].message == "Successfully assigned default/train to gpu"
    assert events[0].source.component == "default-scheduler"


def test_unschedulable_then_retried_when_a_node_arrives(kube_core: client.CoreV1Api) -> None:
    kube_core.create_node(
        ready_node("tainted", taints=[BURST_TAINT], allocatable={"nvidia.com/gpu": "8"})
    )
    kube_core.create_node(ready_node("small-1"))
    kube_core.create_node(ready_node("small-2"))
    kube_core.create_namespaced_pod("default", gpu_pod("waiting"))
    condition = eventually(
        lambda: (
            (c := scheduled_condition(kube_core, "waiting")) is not None
            and c.status == "False"
            and c
        )
    )
    assert condition.reason == "Unschedulable"
    assert condition.message == (
        "0/3 nodes are available: "
        "1 node(s) had untolerated taint {orca.research/burst-node: true}, "
        "2 Insufficient nvidia.com/gpu."
    )
    warnings = eventually(
        lambda: (
            kube_core.list_namespaced_event(
                "default", field_selector="involvedObject.name=waiting,type=Warning"
            ).items
        )
    )
    assert [(e.reason, e.message) for e in warnings] == [("FailedScheduling", condition.message)]
    kube_core.create_node(ready_node("big", allocatable={"nvidia.com/gpu": "4"}))
    pod = eventually(
        lambda: (p := kube_core.read_namespaced_pod("waiting", "default")).spec.node_name and p
    )
    assert pod.spec.node_name == "big"


def test_respects_tolerations_selectors_affinity_and_capacity(kube_core: client.CoreV1Api) -> None:
    kube_core.create_node(
        ready_node(
            "virtual",
            labels={"type": "virtual-kubelet", "orca.research/instance-family": "p4d"},
            taints=[BURST_TAINT],
            allocatable={"nvidia.com/gpu": "2", "aws.amazon.com/neuron": "1", "pods": "3"},
        )
    )
    kube_core.create_node(ready_node("plain", allocatable={"nvidia.com/gpu": "2"}))
    toleration = [{"key": "orca.research/burst-node", "operator": "Exists", "effect": "NoSchedule"}]
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {
                                "key": "orca.research/instance-family",
                                "operator": "In",
                                "values": ["p4d"],
                            }
                        ]
                    }
                ]
            }
        }
    }
    for name in ("burst-a", "burst-b", "burst-c"):
        kube_core.create_namespaced_pod(
            "default",
            gpu_pod(
                name,
                tolerations=toleration,
                nodeSelector={"type": "virtual-kubelet"},
                affinity=affinity,
            ),
        )

    def placements() -> dict[str, str | None]:
        return {
            p.metadata.name: p.spec.node_name
            for p in kube_core.list_namespaced_pod("default").items
        }

    eventually(lambda: sum(1 for n in placements().values() if n) == 2)
    bound = placements()
    assert sorted(n for n in bound.values() if n) == ["virtual", "virtual"]  # only 2 GPUs there
    waiting = next(name for name, node in bound.items() if node is None)
    condition = eventually(lambda: scheduled_condition(kube_core, waiting))
    assert condition.message == (
        "0/2 nodes are available: 1 Insufficient nvidia.com/gpu, "
        "1 node(s) didn't match Pod's node affinity/selector."
    )


def test_not_ready_nodes_and_other_schedulers_are_left_alone(kube_core: client.CoreV1Api) -> None:
    node = ready_node("not-ready")
    node["status"]["conditions"] = [{"type": "Ready", "status": "False"}]
    kube_core.create_node(node)
    kube_core.create_namespaced_pod(
        "default", gpu_pod("elsewhere", gpus=0, schedulerName="orca-other")
    )
    kube_core.create_namespaced_pod("default", gpu_pod("plain", gpus=0))
    condition = eventually(lambda: scheduled_condition(kube_core, "plain"))
    assert "untolerated taint {node.kubernetes.io/not-ready: }" in condition.message
    assert scheduled_condition(kube_core, "elsewhere") is None
    assert kube_core.read_namespaced_pod("elsewhere", "default").spec.node_name is None
