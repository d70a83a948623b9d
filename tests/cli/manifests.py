"""A pod manifest file as a researcher writes one for `orca submit`."""

from __future__ import annotations

from pathlib import Path

import yaml


def write_pod_manifest(directory: Path, name: str, instance_type: str) -> Path:
    manifest = directory / "pod.yaml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": name,
                    "annotations": {"orca.research/instance-type": instance_type},
                },
                "spec": {"containers": [{"name": "main", "image": "busybox"}]},
            }
        ),
        encoding="utf-8",
    )
    return manifest
