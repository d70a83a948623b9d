"""Activities that write to Kubernetes as the kubelet would: pod status, events, final removal.

ORCA plays the kubelet for pods bound to its virtual node: it owns `pods/status`, and when a user
deletes a pod it stops the containers and then deletes the object with grace period 0. Status
writes are strategic-merge patches of `pods/status` (conditions merge by type); events are
core/v1 Events with `source.component: orca` so `kubectl describe pod` tells the story.
A pod that no longer exists is not an error for any of these. The calls to the API server are
`orca.pod_api.PodApi`'s; this module builds the bodies (pure) and wraps them as activities.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from temporalio import activity
from temporalio.exceptions import ApplicationError

from orca import pod_names
from orca.activities.models import DeletePodInput, PodEventReport, PodStatusReport
from orca.launch_spec import PodRef
from orca.pod_api import REJECTED, PodApi

EVENT_SOURCE = "orca"
__all__ = ["REJECTED", "PodStatusActivities", "event_body", "status_patch"]


def status_patch(report: PodStatusReport, now: datetime) -> dict[str, Any]:
    """The `pods/status` strategic-merge patch for a partial status report (pure)."""
    status: dict[str, Any] = {}
    if report.phase is not None:
        status["phase"] = report.phase
    if report.reason is not None:
        status["reason"] = report.reason
    if report.message is not None:
        status["message"] = report.message
    if report.host_ip is not None:
        status["hostIP"] = report.host_ip
        status["hostIPs"] = [{"ip": report.host_ip}]
    if report.pod_ip is not None:
        status["podIP"] = report.pod_ip
        status["podIPs"] = [{"ip": report.pod_ip}]
    if report.conditions:
        stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        status["conditions"] = [
            {
                "type": c.type,
                "status": c.status,
                **({"reason": c.reason} if c.reason else {}),
                **({"message": c.message} if c.message else {}),
                "lastTransitionTime": stamp,
                "lastProbeTime": None,
            }
            for c in report.conditions
        ]
    if report.container_statuses is not None:
        status["containerStatuses"] = list(report.container_statuses)
    return {"status": status}


def event_body(
    report: PodEventReport, node_name: str, now: datetime, *, series: bool = False
) -> dict[str, Any]:
    """A core/v1 Event about the pod (pure). The name is unique per pod, reason, message and
    time; with `series` it leaves the time out, so a repeat is the same object, counted
    (`PodApi.post_or_count_event`) as the kubelet's event recorder aggregates repeats."""
    pod = report.pod
    moment = "" if series else f"/{now.isoformat()}"
    digest = hashlib.sha1(
        f"{pod.uid}/{report.reason}/{report.message}{moment}".encode()
    ).hexdigest()[:10]
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": pod_names.event_name(pod.name, digest), "namespace": pod.namespace},
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "Pod",
            "namespace": pod.namespace,
            "name": pod.name,
            "uid": pod.uid,
        },
        "reason": report.reason,
        "message": report.message[:1024],
        "type": str(report.type),
        "source": {"component": EVENT_SOURCE, "host": node_name},
        "reportingComponent": EVENT_SOURCE,
        "reportingInstance": node_name,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


class PodStatusActivities:
    """The activities; every call to the API server goes through `PodApi` (orca/pod_api.py)."""

    def __init__(self, core: client.CoreV1Api, node_name: str) -> None:
        self.pods = PodApi(core)
        self._node_name = node_name

    @activity.defn(name="report_pod_status")
    async def report_pod_status(self, report: PodStatusReport) -> None:
        now = datetime.now(UTC)
        try:
            await asyncio.to_thread(self.patch_status, report.pod, status_patch(report, now))
        except ApplicationError as refused:
            # Refused for good (no retry follows): the event still tells the story. A retried
            # failure posts it once, after the write that succeeds.
            if refused.non_retryable:
                await self._post_event_of(report, now)
            raise
        await self._post_event_of(report, now)

    async def _post_event_of(self, report: PodStatusReport, now: datetime) -> None:
        if report.event is not None:
            body = event_body(report.event, self._node_name, now)
            await asyncio.to_thread(self.pods.post_event, report.pod.namespace, body)

    def patch_status(self, pod: PodRef, patch: dict[str, Any]) -> bool:
        """Patch `pods/status` of this pod incarnation; False when it is gone or replaced."""
        return self.pods.patch_status(pod, patch)

    @activity.defn(name="read_restart_counts")
    async def read_restart_counts(self, pod: PodRef) -> dict[str, int]:
        """Container name → `restartCount` in the pod's status now ({} when it is gone)."""
        current = await asyncio.to_thread(self.pods.read, pod)
        statuses = (current.status.container_statuses if current and current.status else None) or []
        return {s.name: int(s.restart_count or 0) for s in statuses}

    @activity.defn(name="record_pod_event")
    async def record_pod_event(self, report: PodEventReport) -> None:
        body = event_body(report, self._node_name, datetime.now(UTC))
        await asyncio.to_thread(self.pods.post_event, report.pod.namespace, body)

    @activity.defn(name="delete_pod_object")
    async def delete_pod_object(self, input: DeletePodInput) -> None:
        """The kubelet's last step: remove the pod object now that nothing runs."""
        await asyncio.to_thread(self.pods.delete, input.pod)
