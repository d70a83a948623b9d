"""What the watcher does for each pod cause: the kubelet's part of a pod's life, played by ORCA.

- START: the pod's workflow is started (idempotent). A process-local memory of pods already
  started saves a Temporal call for each status update the workflow itself causes.
- DELETE: the workflow is told `pod_deleted` with the grace period. If no workflow runs for the
  pod (it finished, was invalid, or never started) nothing will ever release the object, so the
  watcher removes it itself, as a kubelet does: grace period 0, with a UID precondition so a new
  pod of the same name is never touched.
- GONE: the workflow is told `pod_gone`; no workflow is fine.
"""

from __future__ import annotations

import asyncio

from kubernetes import client as k8s

from orca.launch_spec import PodRef
from orca.logging import get_logger
from orca.watcher.pod_causes import PodCause, grace_period_seconds, pod_cause
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

    def _remove_pod_object(self, ref: PodRef) -> None:
        try:
            self.core.delete_namespaced_pod(
                ref.name,
                ref.namespace,
                body=k8s.V1DeleteOptions(
                    grace_period_seconds=0, preconditions=k8s.V1Preconditions(uid=ref.uid)
                ),
            )
        except k8s.ApiException as error:
            # 404: already gone; 409: the name now belongs to a newer pod. Both mean done.
            if error.status not in (404, 409):
                raise
