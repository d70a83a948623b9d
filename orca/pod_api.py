"""The one adapter over the Kubernetes pod API for what ORCA writes as the kubelet of its node.

Every status write, pod event and final removal of a pod object goes through `PodApi`: the pod
status activities, the container monitor (through them), the orphan sweep and the watcher. The
rules are the kubelet's and are kept here once:

* a pod is addressed as one incarnation (`PodRef`: namespace, name *and* UID). A read returns
  None when the object is gone or its name now belongs to a newer pod; a status write then does
  nothing (False), as that pod is not ours to touch;
* a pod object is deleted with grace period 0 and a UID precondition, so a newer pod with the
  same name is never removed; 404 (gone) and 409 (replaced) both mean done;
* an event create that meets 404 (namespace gone) or 409 (a retried create) is done too;
* a write the API server refuses for good (400, 403, 422) raises a non-retryable
  `ApplicationError` of type `KubernetesRejected`: retrying the same body cannot help, and the
  workflow carries on without it.

The bodies (status patch, event) are built by pure functions elsewhere
(`activities/pod_status.py`, `activities/status_mapping.py`); this class only talks to the API
server. Its methods block; call them from a thread (`asyncio.to_thread`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from kubernetes import client
from temporalio.exceptions import ApplicationError

from orca.launch_spec import PodRef
from orca.logging import bind_work_context

REJECTED = "KubernetesRejected"
"""Failure type of a write the API server refuses for good (400, 403, 422)."""
_REJECTING_STATUSES = (400, 403, 422)


def rejected(error: client.ApiException, what: str) -> ApplicationError | None:
    """The non-retryable failure for a refused write, or None when retrying may help."""
    if error.status not in _REJECTING_STATUSES:
        return None
    return ApplicationError(
        f"The Kubernetes API refused the {what} ({error.status} {error.reason}): {error.body}",
        type=REJECTED,
        non_retryable=True,
    )


class PodApi:
    """Pod reads and kubelet writes over one `CoreV1Api`."""

    def __init__(self, core: client.CoreV1Api) -> None:
        self.core = core

    def read(self, pod: PodRef) -> client.V1Pod | None:
        """This incarnation of the pod, or None when it is gone or replaced by a newer one."""
        try:
            current = self.core.read_namespaced_pod(pod.name, pod.namespace)
        except client.ApiException as error:
            if error.status == 404:
                return None
            raise
        if current.metadata is None or current.metadata.uid != pod.uid:
            return None
        return current

    def exists(self, pod: PodRef) -> bool:
        return self.read(pod) is not None

    def patch_status(self, pod: PodRef, patch: Mapping[str, Any]) -> bool:
        """Patch `pods/status` of this incarnation; False when it is gone or replaced."""
        with bind_work_context(pod=pod.key):
            try:
                if self.read(pod) is None:
                    return False
                self.core.patch_namespaced_pod_status(pod.name, pod.namespace, dict(patch))
                return True
            except client.ApiException as error:
                if error.status == 404:
                    return False
                refused = rejected(error, "pod status write")
                if refused is None:
                    raise
                raise refused from None

    def post_event(self, namespace: str, body: Mapping[str, Any]) -> bool:
        """Create a core/v1 Event; False when its namespace is gone or it exists already."""
        try:
            self.core.create_namespaced_event(namespace, cast(Any, dict(body)))
            return True
        except client.ApiException as error:
            if error.status in (404, 409):
                return False
            refused = rejected(error, "pod event")
            if refused is None:
                raise
            raise refused from None

    def post_or_count_event(self, namespace: str, body: Mapping[str, Any]) -> bool:
        """Create the Event, or if one of its name exists (a repeat), add one to its `count`
        and move its `lastTimestamp`; False when its namespace is gone."""
        if self.post_event(namespace, body):
            return True
        name = str(body["metadata"]["name"])
        try:
            existing = self.core.read_namespaced_event(name, namespace)
            self.core.patch_namespaced_event(
                name,
                namespace,
                {"count": int(existing.count or 1) + 1, "lastTimestamp": body["lastTimestamp"]},
            )
            return True
        except client.ApiException as error:
            if error.status == 404:
                return False
            refused = rejected(error, "pod event")
            if refused is None:
                raise
            raise refused from None

    def delete(self, pod: PodRef) -> bool:
        """Remove this incarnation's object now (grace 0, UID precondition); False when it was
        already gone (404) or the name belongs to a newer pod (409)."""
        try:
            self.core.delete_namespaced_pod(
                pod.name,
                pod.namespace,
                body=client.V1DeleteOptions(
                    grace_period_seconds=0, preconditions=client.V1Preconditions(uid=pod.uid)
                ),
            )
            return True
        except client.ApiException as error:
            if error.status in (404, 409):
                return False
            raise
