"""The Warning events the watcher itself posts about a pod (pure).

The watcher posts at most one event of each reason per pod (the DaemonSet pod it will not run,
the idle-accelerator warning): the event's name derives from the pod's UID and the reason, so a
second post of the same event is refused by the API server as already existing instead of
piling up.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from orca import pod_names
from orca.launch_spec import PodRef


def once_per_pod_warning(
    ref: PodRef, reason: str, message: str, node_name: str, now: datetime
) -> dict[str, Any]:
    """The Warning event `reason` about the pod, named once per pod and reason."""
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    suffix = hashlib.sha256(f"{ref.uid}/{reason}".encode()).hexdigest()[:10]
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": pod_names.event_name(ref.name, suffix), "namespace": ref.namespace},
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "Pod",
            "namespace": ref.namespace,
            "name": ref.name,
            "uid": ref.uid,
        },
        "reason": reason,
        "message": message,
        "type": "Warning",
        "source": {"component": "orca", "host": node_name},
        "reportingComponent": "orca",
        "reportingInstance": node_name,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
