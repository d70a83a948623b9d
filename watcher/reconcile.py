"""Convergence: make Temporal's running workflows and the node's pods agree, whatever was missed.

Events can be missed: the watcher was down, a signal failed after its retries, the workflow
finished between two events. So at start and every `watcher.resyncInterval`:

- every pod bound to the node goes through its per-pod queue again as a RELIST event, with the
  process's memory of it forgotten when its workflow is not running, so a live pod without a
  running workflow gets its (idempotent) start and a deleting pod its signal or removal;
- every running PodLifecycle workflow whose pod is not among them is checked against the API (the
  pod may have been created after the list, or belong to another virtual node sharing the
  namespace) and, when the pod really is gone, told `pod_gone` through the pod's queue.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from kubernetes import client as k8s

from orca.launch_spec import PodRef
from orca.logging import get_logger
from orca.watcher.kube_json import read_json_or_none
from orca.watcher.pod_queues import PodEvent, PodQueues
from orca.watcher.pod_reactions import PodReactions
from orca.watcher.pod_watch import list_node_pods
from orca.watcher.pod_workflows import PodWorkflows

log = get_logger(__name__)


class Reconciler:
    def __init__(
        self,
        workflows: PodWorkflows,
        reactions: PodReactions,
        queues: PodQueues,
        core: k8s.CoreV1Api,
        node_name: str,
    ) -> None:
        self.workflows = workflows
        self.reactions = reactions
        self.queues = queues
        self.core = core
        self.node_name = node_name

    async def run(self, interval: timedelta) -> None:
        """Converge now and every `interval` until cancelled; failures wait for the next round."""
        while True:
            try:
                await self.converge()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("convergence failed", error=f"{type(error).__name__}: {error}")
            await asyncio.sleep(interval.total_seconds())

    async def converge(self) -> None:
        running = await self.workflows.running_pods()
        pods, _ = await asyncio.to_thread(list_node_pods, self.core, self.node_name)
        missing = 0
        for uid, pod in pods.items():
            if uid not in running:
                self.reactions.forget(uid)
                missing += 1
            self.queues.put(PodEvent("RELIST", pod))
        orphans = [ref for uid, ref in running.items() if uid not in pods]
        gone = 0
        for ref in orphans:
            if await asyncio.to_thread(self._pod_gone, ref):
                gone += 1
                self.queues.put(PodEvent("DELETED", _tombstone(ref)))
        log.info(
            "converged",
            pods=len(pods),
            running_workflows=len(running),
            pods_without_workflow=missing,
            workflows_without_pod=gone,
        )

    def _pod_gone(self, ref: PodRef) -> bool:
        pod = read_json_or_none(self.core.read_namespaced_pod, ref.name, ref.namespace)
        if pod is None:
            return True
        # A different UID: the name belongs to a newer pod. The same UID: it exists (created after
        # the list, or bound to another virtual node sharing this Temporal namespace).
        return bool(pod["metadata"]["uid"] != ref.uid)


def _tombstone(ref: PodRef) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"namespace": ref.namespace, "name": ref.name, "uid": ref.uid},
    }
