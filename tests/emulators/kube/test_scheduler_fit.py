from typing import Any

from orca_devstack.emulators.kube.quantity import parse_quantity
from orca_devstack.emulators.kube.scheduler import (
    NodeUsage,
    choose_node,
    fit_failures,
    node_selector_matches,
    pod_requests,
    tolerates,
    unschedulable_message,
)


def node(
    name: str,
    *,
    labels: dict[str, str] | None = None,
    taints: list[Any] | None = None,
    ready: bool = True,
    gpus: int = 0,
    cpu: str = "4",
    pods: int = 110,
) -> dict[str, Any]:
    allocatable = {"cpu": cpu, "memory": "16Gi", "pods": str(pods)}
    if gpus:
        allocatable["nvidia.com/gpu"] = str(gpus)
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"taints": taints or []},
        "status": {
            "allocatable": allocatable,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def pod(
    *,
    cpu: str = "1",
    gpus: int = 0,
    selector: dict[str, str] | None = None,
    tolerations: list[Any] | None = None,
    affinity: Any = None,
    init_cpu: str | None = None,
) -> dict[str, Any]:
    requests: dict[str, str] = {"cpu": cpu, "memory": "1Gi"}
    if gpus:
        requests["nvidia.com/gpu"] = str(gpus)
    spec: dict[str, Any] = {
        "containers": [{"name": "c", "resources": {"requests": requests}}],
        "nodeSelector": selector or {},
        "tolerations": tolerations or [],
    }
    if init_cpu:
        spec["initContainers"] = [{"name": "i", "resources": {"requests": {"cpu": init_cpu}}}]
    if affinity:
        spec["affinity"] = {
            "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": affinity}
        }
    return {"metadata": {"name": "p"}, "spec": spec}


def test_pod_requests_sums_containers_and_takes_max_with_init() -> None:
    two = pod(cpu="500m")
    two["spec"]["containers"].append({"name": "d", "resources": {"requests": {"cpu": "250m"}}})
    assert pod_requests(two)["cpu"] == parse_quantity("750m")
    assert pod_requests(pod(cpu="1", init_cpu="3"))["cpu"] == 3
    assert pod_requests(pod(cpu="2", init_cpu="1"))["cpu"] == 2


def test_tolerations() -> None:
    taint = {"key": "orca.research/burst-node", "value": "true", "effect": "NoSchedule"}
    assert tolerates([{"key": "orca.research/burst-node", "operator": "Exists"}], taint)
    assert tolerates([{"key": "orca.research/burst-node", "value": "true"}], taint)
    assert not tolerates([{"key": "orca.research/burst-node", "value": "false"}], taint)
    assert not tolerates(
        [{"key": "orca.research/burst-node", "operator": "Exists", "effect": "NoExecute"}], taint
    )
    assert tolerates([{"operator": "Exists"}], taint)
    assert not tolerates([], taint)


def test_node_affinity_operators() -> None:
    target = node("n", labels={"zone": "a", "gpus": "8"})

    def term(*expressions: dict[str, Any]) -> dict[str, Any]:
        return {"nodeSelectorTerms": [{"matchExpressions": list(expressions)}]}

    assert node_selector_matches(
        pod(affinity=term({"key": "zone", "operator": "In", "values": ["a"]})), target
    )
    assert not node_selector_matches(
        pod(affinity=term({"key": "zone", "operator": "NotIn", "values": ["a"]})), target
    )
    assert node_selector_matches(pod(affinity=term({"key": "zone", "operator": "Exists"})), target)
    assert node_selector_matches(
        pod(affinity=term({"key": "x", "operator": "DoesNotExist"})), target
    )
    assert node_selector_matches(
        pod(affinity=term({"key": "gpus", "operator": "Gt", "values": ["4"]})), target
    )
    assert not node_selector_matches(
        pod(affinity=term({"key": "gpus", "operator": "Lt", "values": ["4"]})), target
    )
    either = {
        "nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n"]}]},
        ]
    }
    assert node_selector_matches(pod(affinity=either), target)
    assert not node_selector_matches(pod(selector={"zone": "b"}), target)


def test_fit_failures_report_in_scheduler_order() -> None:
    tainted = node(
        "t", taints=[{"key": "orca.research/burst-node", "value": "true", "effect": "NoSchedule"}]
    )
    assert fit_failures(pod(), tainted, []) == [
        "node(s) had untolerated taint {orca.research/burst-node: true}"
    ]
    assert fit_failures(pod(), node("n", ready=False), []) == [
        "node(s) had untolerated taint {node.kubernetes.io/not-ready: }"
    ]
    assert fit_failures(pod(selector={"a": "b"}), node("n"), []) == [
        "node(s) didn't match Pod's node affinity/selector"
    ]
    assert fit_failures(pod(cpu="8", gpus=1), node("n"), []) == [
        "Insufficient cpu",
        "Insufficient nvidia.com/gpu",
    ]
    assert fit_failures(pod(), node("n", pods=1), [pod()]) == ["Too many pods"]


def test_fit_counts_pods_already_bound() -> None:
    gpu_node = node("g", gpus=2)
    assert fit_failures(pod(gpus=1), gpu_node, [pod(gpus=1)]) == []
    assert fit_failures(pod(gpus=1), gpu_node, [pod(gpus=1), pod(gpus=1)]) == [
        "Insufficient nvidia.com/gpu"
    ]


def test_a_kept_node_usage_decides_as_the_pods_it_adds_up() -> None:
    """The scheduler keeps each node's usage through a pass (kube-scheduler's NodeInfo)."""
    gpu_node = node("g", gpus=2)
    usage = NodeUsage.of([pod(gpus=1)])
    assert (usage.pods, usage.requested["nvidia.com/gpu"]) == (1, 1)
    assert fit_failures(pod(gpus=1), gpu_node, usage) == []
    usage.add(pod(gpus=1))
    assert fit_failures(pod(gpus=1), gpu_node, usage) == ["Insufficient nvidia.com/gpu"]
    chosen, _ = choose_node(pod(), [node("b"), node("c")], {"b": NodeUsage.of([pod()])})
    assert chosen == "c"


def test_choose_node_and_unschedulable_message() -> None:
    nodes = [
        node("a", taints=[{"key": "k", "value": "v", "effect": "NoSchedule"}]),
        node("b"),
        node("c"),
    ]
    chosen, message = choose_node(pod(gpus=1), nodes, {})
    assert chosen is None
    assert message == (
        "0/3 nodes are available: 1 node(s) had untolerated taint {k: v}, "
        "2 Insufficient nvidia.com/gpu."
    )
    chosen, _ = choose_node(pod(), nodes, {"b": [pod()]})
    assert chosen == "c"  # fewest pods first
    assert unschedulable_message(0, {}) == "no nodes available to schedule pods"
