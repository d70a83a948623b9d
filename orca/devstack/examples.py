"""Example pods that `orca dev --example-pods` submits, so a newcomer sees launches at once.

They live in `orca/examples/` as ordinary pod manifests (a GPU job with fallbacks, an auto-sized
one, a Trainium job that fails, and one with an invalid annotation) and are applied with the
official Kubernetes client, exactly as `kubectl create -f` would.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, cast

import yaml
from kubernetes import client, config


def example_manifests() -> list[dict[str, Any]]:
    folder = resources.files("orca") / "examples"
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
