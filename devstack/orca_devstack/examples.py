"""Example pods that `orca dev --example-pods` submits, so a newcomer sees launches at once.

They live in `orca_devstack/example_pods/` as ordinary pod manifests (a GPU job with
fallbacks, an auto-sized one, a Trainium job that fails, and one with an invalid annotation)
and are applied with the official Kubernetes client, exactly as `kubectl create -f` would.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, cast

import yaml
from kubernetes import client, config


def burst_pod(
    name: str,
    annotations: dict[str, str],
    *,
    namespace: str = "default",
    labels: dict[str, str] | None = None,
    restart_policy: str = "Never",
    grace_seconds: int = 5,
) -> dict[str, Any]:
    """A pod for the dev stack's virtual node: its nodeSelector and toleration (the defaults of
    `node.labels` and `node.taints`), one small container; `annotations` choose the launch.
    Used by the end-to-end tests and the burst benchmark."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "annotations": annotations}
    if labels:
        metadata["labels"] = labels
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "nodeSelector": {"orca.research/provider": "aws"},
            "tolerations": [
                {
                    "key": "orca.research/burst-node",
                    "operator": "Equal",
                    "value": "true",
                    "effect": "NoSchedule",
                }
            ],
            "restartPolicy": restart_policy,
            "terminationGracePeriodSeconds": grace_seconds,
            "containers": [
                {
                    "name": "main",
                    "image": "public.ecr.aws/docker/library/busybox:1.36",
                    "command": ["sh", "-c", "echo hello"],
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                }
            ],
        },
    }


def example_manifests() -> list[dict[str, Any]]:
    folder = resources.files("orca_devstack") / "example_pods"
    manifests = []
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if entry.name.endswith(".yaml"):
            manifests.append(yaml.safe_load(entry.read_text(encoding="utf-8")))
    return manifests


def submit_examples(kubeconfig: Path) -> list[str]:
    """Create every example pod that does not exist yet; return `namespace/name` of each."""
    api = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
    submitted = []
    for manifest in example_manifests():
        namespace = manifest["metadata"].get("namespace", "default")
        try:
            api.create_namespaced_pod(namespace, cast(Any, manifest))  # dicts are accepted
        except client.ApiException as error:
            if error.status != 409:  # already there from an earlier `orca dev` run
                raise
        submitted.append(f"{namespace}/{manifest['metadata']['name']}")
    return submitted
