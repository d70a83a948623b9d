"""Activities that write to Kubernetes as the kubelet would: pod status, events, final removal.

ORCA plays the kubelet for pods bound to its virtual node: it owns `pods/status`, and when a user
deletes a pod it stops the containers and then deletes the object with grace period 0. Status
writes are strategic-merge patches of `pods/status` (conditions merge by type); events are
core/v1 Events with `source.component: orca` so `kubectl describe pod` tells the story.
A pod that no longer exists is not an error for any of these.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime
from typing import Any, cast

from kubernetes import client
from temporalio import activity
from temporalio.exceptions import ApplicationError

from orca import pod_names
from orca.activities.models import DeletePodInput, PodEventReport, PodStatusReport
from orca.launch_spec import PodRef
from orca.logging import bind_work_context

EVENT_SOURCE = "orca"
REJECTED = "KubernetesRejected"
"""Failure type of a write the API server refuses for good (400, 403, 422): retrying the same
body cannot help, and the workflow carries on without it."""
_REJECTING_STATUSES = (400, 403, 422)


def _rejected(error: client.ApiException, what: str) -> ApplicationError | None:
    if error.status not in _REJECTING_STATUSES:
        return None
    return ApplicationError(
        f"The Kubernetes API refused the {what} ({error.status} {error.reason}): {error.body}",
        type=REJECTED,
        non_retryable=True,
    )


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


def event_body(report: PodEventReport, node_name: str, now: datetime) -> dict[str, Any]:
    """A core/v1 Event about the pod (pure). The name is unique per pod, reason and message."""
    pod = report.pod
    digest = hashlib.sha1(
        f"{pod.uid}/{report.reason}/{report.message}/{now.isoformat()}".encode()
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
    def __init__(self, core: client.CoreV1Api, node_name: str) -> None:
        self._core = core
        self._node_name = node_name

    @activity.defn(name="report_pod_status")
    async def report_pod_status(self, report: PodStatusReport) -> None:
        patch = status_patch(report, datetime.now(UTC))
        await asyncio.to_thread(self.patch_status, report.pod, patch)

    def patch_status(self, pod: PodRef, patch: dict[str, Any]) -> bool:
        """Patch `pods/status` of this pod incarnation; False when it is gone or replaced."""
        with bind_work_context(pod=pod.key):
            try:
                current = self._core.read_namespaced_pod(pod.name, pod.namespace)
                if current.metadata is None or current.metadata.uid != pod.uid:
                    return False  # a new incarnation under the same name: not ours to touch
                self._core.patch_namespaced_pod_status(pod.name, pod.namespace, patch)
                return True
            except client.ApiException as error:
                if error.status == 404:
                    return False
                rejected = _rejected(error, "pod status write")
                if rejected is None:
                    raise
                raise rejected from None

    @activity.defn(name="record_pod_event")
    async def record_pod_event(self, report: PodEventReport) -> None:
        body = event_body(report, self._node_name, datetime.now(UTC))

        def create() -> None:
            try:
                self._core.create_namespaced_event(report.pod.namespace, cast(Any, body))
            except client.ApiException as error:
                if error.status not in (404, 409):  # namespace gone, or a retried create
                    rejected = _rejected(error, "pod event")
                    if rejected is None:
                        raise
                    raise rejected from None

        await asyncio.to_thread(create)

    @activity.defn(name="delete_pod_object")
    async def delete_pod_object(self, input: DeletePodInput) -> None:
        """The kubelet's last step: remove the pod object now that nothing runs."""
        pod = input.pod

        def delete() -> None:
            try:
                self._core.delete_namespaced_pod(
                    pod.name,
                    pod.namespace,
                    body=client.V1DeleteOptions(
                        grace_period_seconds=0, preconditions=client.V1Preconditions(uid=pod.uid)
                    ),
                )
            except client.ApiException as error:
                if error.status not in (404, 409):  # gone, or a newer pod with the same name
                    raise

        await asyncio.to_thread(delete)
