"""What the watcher does for each pod cause: the kubelet's part of a pod's life, played by ORCA.

- START: the pod's workflow is started (idempotent). A process-local memory of pods already
  started saves a Temporal call for each status update the workflow itself causes.
- DELETE: the workflow is told `pod_deleted` with the grace period. If no workflow runs for the
  pod (it finished, was invalid, or never started) nothing will ever release the object, so the
  watcher removes it itself, as a kubelet does: grace period 0, with a UID precondition so a new
  pod of the same name is never touched.
- GONE: the workflow is told `pod_gone`; no workflow is fine.

DaemonSet pods: a cluster DaemonSet that tolerates every taint (on EKS: aws-node, kube-proxy)
lands on the virtual node too. Running node agents on a burst instance of their own makes no
sense, so no workflow starts for them: the pod stays Pending with one Warning event
(`DaemonSetPodNotRun`), as virtual-kubelet providers leave such pods. Pending, not Failed: the
DaemonSet controller deletes and recreates a failed daemon pod, in a loop, while a Pending one is
left alone. Deleting it needs no workflow either: nothing runs, so the watcher releases it at
once (the DELETE path below). Keep them off the node with a nodeAffinity on
`type NotIn virtual-kubelet` (or ORCA's node label) in the DaemonSet.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from kubernetes import client as k8s

from orca.launch_spec import PodRef
from orca.logging import get_logger
from orca.pod_api import PodApi
from orca.watcher.pod_causes import PodCause, daemonset_owner, grace_period_seconds, pod_cause
from orca.watcher.pod_events import once_per_pod_warning
from orca.watcher.pod_queues import PodEvent
from orca.watcher.pod_workflows import PodWorkflows

log = get_logger(__name__)


class PodReactions:
    def __init__(self, workflows: PodWorkflows, core: k8s.CoreV1Api, node_name: str) -> None:
        self.workflows = workflows
        self.core = core
        self.node_name = node_name
        self._started: set[str] = set()
        self._deletion_signalled: set[str] = set()

    def forget(self, uid: str) -> None:
        """Drop what this process remembers about a pod, so the next event acts again."""
        self._started.discard(uid)
        self._deletion_signalled.discard(uid)

    async def react(self, event: PodEvent) -> None:
        cause = pod_cause(event.type, event.pod, self.node_name)
        ref = event.ref
        if cause is PodCause.START:
            await self._start(event, ref)
        elif cause is PodCause.DELETE:
            await self._deleted(event, ref)
        elif cause is PodCause.GONE:
            await self._gone(ref)

    async def _start(self, event: PodEvent, ref: PodRef) -> None:
        if ref.uid in self._started:
            return
        daemonset = daemonset_owner(event.pod)
        if daemonset is not None:
            await asyncio.to_thread(self._record_daemonset_event, ref, daemonset)
            self._started.add(ref.uid)
            log.info("daemonset pod left pending; no instance is launched", daemonset=daemonset)
            return
        outcome = await self.workflows.start(event.pod, ref)
        self._started.add(ref.uid)
        log.info("pod workflow started", outcome=outcome, event_type=event.type)

    async def _deleted(self, event: PodEvent, ref: PodRef) -> None:
        if ref.uid in self._deletion_signalled:
            return
        grace = grace_period_seconds(event.pod)
        if await self.workflows.pod_deleted(ref, grace):
            self._deletion_signalled.add(ref.uid)
            log.info("pod deletion signalled", grace_period_seconds=grace)
            return
        log.info("pod deleted and no workflow runs for it; removing the pod object")
        await asyncio.to_thread(self._remove_pod_object, ref)
        self._deletion_signalled.add(ref.uid)

    async def _gone(self, ref: PodRef) -> None:
        signalled = await self.workflows.pod_gone(ref)
        self.forget(ref.uid)
        if signalled:
            log.info("pod gone signalled")

    def _record_daemonset_event(self, ref: PodRef, daemonset: str) -> None:
        """One Warning event per daemon pod: its name derives from the pod's UID, so a watcher
        restart or relist meets 409 AlreadyExists instead of adding another."""
        body = daemonset_event(ref, daemonset, self.node_name, datetime.now(UTC))
        try:
            self.core.create_namespaced_event(ref.namespace, body)  # type: ignore[arg-type]
        except k8s.ApiException as error:
            if error.status not in (404, 409):  # namespace gone, or already told
                raise

    def _remove_pod_object(self, ref: PodRef) -> None:
        # already gone, or the name now belongs to a newer pod: both mean done
        PodApi(self.core).delete(ref)


DAEMONSET_REASON = "DaemonSetPodNotRun"


def daemonset_event(ref: PodRef, daemonset: str, node_name: str, now: datetime) -> dict[str, Any]:
    """The one Warning event about a daemon pod ORCA will not run (pure)."""
    message = (
        f"Pod of DaemonSet {daemonset} is not run on {node_name}: ORCA launches one EC2 "
        "instance per pod, and node agents have no node to serve there. The pod stays "
        f"Pending; keep the DaemonSet off {node_name} with a nodeAffinity."
    )
    return once_per_pod_warning(ref, DAEMONSET_REASON, message, node_name, now)
