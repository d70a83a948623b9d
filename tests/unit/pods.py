"""Pod builders for the unit tests: Kubernetes API camelCase dicts, as the watcher hands them over.

Each builder returns a fresh dict so a test can change it freely.
"""

from __future__ import annotations

from typing import Any


def container(
    name: str = "main",
    image: str = "busybox:1.36",
    *,
    requests: dict[str, str] | None = None,
    limits: dict[str, str] | None = None,
    command: list[str] | None = None,
    args: list[str] | None = None,
    env: list[dict[str, Any]] | None = None,
    volume_mounts: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    result: dict[str, Any] = {"name": name, "image": image}
    resources: dict[str, Any] = {}
    if requests is not None:
        resources["requests"] = requests
    if limits is not None:
        resources["limits"] = limits
    if resources:
        result["resources"] = resources
    if command is not None:
        result["command"] = command
    if args is not None:
        result["args"] = args
    if env is not None:
        result["env"] = env
    if volume_mounts is not None:
        result["volumeMounts"] = volume_mounts
    return result


def pod(
    *,
    name: str = "train-1",
    namespace: str = "research",
    uid: str = "0b6c6a3e-5d2e-4f7b-9a52-1f7f2f9d1c01",
    annotations: dict[str, str] | None = None,
    containers: list[dict[str, Any]] | None = None,
    init_containers: list[dict[str, Any]] | None = None,
    volumes: list[dict[str, Any]] | None = None,
    restart_policy: str | None = None,
    grace_seconds: int | None = None,
    node_selector: dict[str, str] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": containers
        if containers is not None
        else [container(requests={"cpu": "1", "memory": "1Gi"})],
        "tolerations": [
            {
                "key": "orca.research/burst-node",
                "operator": "Equal",
                "value": "true",
                "effect": "NoSchedule",
            }
        ],
    }
    if init_containers is not None:
        spec["initContainers"] = init_containers
    if volumes is not None:
        spec["volumes"] = volumes
    if restart_policy is not None:
        spec["restartPolicy"] = restart_policy
    if grace_seconds is not None:
        spec["terminationGracePeriodSeconds"] = grace_seconds
    if node_selector is not None:
        spec["nodeSelector"] = node_selector
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid,
            "annotations": dict(annotations or {}),
        },
        "spec": spec,
    }


def gpu_pod(
    gpus: int = 8, instance_type: str | None = "p5.48xlarge", **extra: str
) -> dict[str, Any]:
    """A training pod asking for NVIDIA GPUs, like the ones researchers submit."""
    annotations = {"orca.research/instance-type": instance_type} if instance_type else {}
    annotations.update({f"orca.research/{k.replace('_', '-')}": v for k, v in extra.items()})
    return pod(
        name="llm-finetune",
        annotations=annotations,
        restart_policy="Never",
        containers=[
            container(
                "trainer",
                "nvcr.io/nvidia/pytorch:24.05-py3",
                requests={"cpu": "32", "memory": "256Gi", "nvidia.com/gpu": str(gpus)},
                limits={"nvidia.com/gpu": str(gpus)},
                command=["torchrun", "--nproc-per-node", str(gpus), "train.py"],
            )
        ],
    )


def neuron_pod(devices: int = 16) -> dict[str, Any]:
    return pod(
        name="trn-pretrain",
        annotations={"orca.research/instance-type": "trn1.32xlarge"},
        restart_policy="Never",
        containers=[
            container(
                "trainer",
                "public.ecr.aws/neuron/pytorch-training-neuronx:2.1.2",
                requests={"cpu": "64", "aws.amazon.com/neuron": str(devices)},
                limits={"aws.amazon.com/neuron": str(devices)},
            )
        ],
    )
