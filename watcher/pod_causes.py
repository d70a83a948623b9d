"""What a pod event means for its workflow, derived from the pod's state, not the event's type.

After kopf's `causes.py`: a watch may deliver duplicates, skip intermediate states (a relist only
shows the latest) or report an ADDED for an object seen before, so the raw event type is only
trusted for one fact, that the object is gone (DELETED). Everything else is read from the object:
bound to this node and alive means its workflow must run; a `deletionTimestamp` means the user
asked for deletion; a terminal phase means the workflow has already finished its job.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from orca.pod_phase import TERMINAL_PHASES


class PodCause(StrEnum):
    """The closed set of things the watcher does for a pod."""

    START = "start"
    """Bound to the node and alive: its workflow must run (start is idempotent)."""
    DELETE = "delete"
    """Has a deletionTimestamp: tell the workflow to stop within the grace period."""
    GONE = "gone"
    """The object no longer exists: tell the workflow there is nothing left to update."""
    NOTHING = "nothing"
    """Not ours, or finished: a terminal pod must never start a second workflow."""


def pod_cause(event_type: str, pod: dict[str, Any], node_name: str) -> PodCause:
    """The cause for one observed pod state; `event_type` is the watch type or `RELIST`."""
    if event_type == "DELETED":
        return PodCause.GONE
    spec = pod.get("spec") or {}
    if spec.get("nodeName") != node_name:
        return PodCause.NOTHING
    metadata = pod.get("metadata") or {}
    if metadata.get("deletionTimestamp"):
        return PodCause.DELETE
    phase = (pod.get("status") or {}).get("phase")
    if phase in TERMINAL_PHASES:
        # The workflow set this phase on its way out. Starting again after the history's
        # retention ran out would launch a second instance for a finished pod.
        return PodCause.NOTHING
    return PodCause.START


def daemonset_owner(pod: dict[str, Any]) -> str | None:
    """The DaemonSet that controls the pod, if one does (its controller owner reference)."""
    for owner in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if owner.get("kind") == "DaemonSet" and owner.get("controller"):
            return str(owner.get("name") or "")
    return None


def grace_period_seconds(pod: dict[str, Any], default: int = 30) -> int:
    """The deletion grace period the user asked for (`kubectl delete --grace-period`)."""
    value = (pod.get("metadata") or {}).get("deletionGracePeriodSeconds")
    if value is None:
        return default
    return max(int(value), 0)
