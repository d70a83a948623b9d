"""Objects the conformance tests create, shaped as a user or ORCA would write them."""

from __future__ import annotations

import uuid
from typing import Any


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def pod_manifest(name: str, *, labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            # A scheduler name nobody serves keeps real and emulated schedulers away from the pod.
            "schedulerName": "orca-conformance-none",
            "containers": [{"name": "main", "image": "busybox:1.36", "command": ["sleep", "3600"]}],
            **spec,
        },
    }


def node_manifest(name: str, *, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "taints": [
                {"key": "orca.research/conformance", "value": "true", "effect": "NoSchedule"}
            ]
        },
    }
