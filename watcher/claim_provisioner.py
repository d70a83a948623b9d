"""ORCA as the external provisioner of the `orca.research/ebs` StorageClass (leader only).

Level-triggered, after the external-provisioner library: the claims, PersistentVolumes and
StorageClasses are listed at start, again whenever a watch of claims or PersistentVolumes reports
a change, and every `watcher.resyncInterval`; every listing is reconciled as a whole
(`provisioning_decisions`, pure), so nothing is lost across a watcher restart or a dropped watch:

- a claim annotated `volume.kubernetes.io/selected-node: <ORCA's node>`, of a class whose
  provisioner is `orca.research/ebs`, not yet bound → start `ClaimProvisioning`
  (ID `claim-<claim uid>`);
- a PersistentVolume annotated provisioned-by ORCA, `Released`, reclaim policy `Delete` → start
  `VolumeReclaim` (ID `reclaim-<pv name>`).

Starts reuse a running workflow with the same ID and never start a closed one again, so repeated
reconciles are harmless; a refused claim keeps its failed workflow (and its event) until the
claim is re-created (a new UID).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import urllib3
from kubernetes import client as k8s
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from orca.activities.volume_models import (
    CLAIM_PROVISIONING_WORKFLOW,
    VOLUME_RECLAIM_WORKFLOW,
    ClaimRef,
    ReclaimInput,
    claim_workflow_id,
    reclaim_workflow_id,
)
from orca.ebs_volumes import (
    PROVISIONED_BY_ANNOTATION,
    PROVISIONER,
    SELECTED_NODE_ANNOTATION,
    volume_id_from_persistent_volume,
)
from orca.logging import get_logger
from orca.watcher.kube_json import read_json

log = get_logger(__name__)


@dataclass(frozen=True)
class StartClaim:
    claim: ClaimRef


@dataclass(frozen=True)
class StartReclaim:
    reclaim: ReclaimInput


def claim_needs_volume(
    claim: Mapping[str, Any], class_provisioners: Mapping[str, str], node_name: str
) -> bool:
    """An unbound claim for ORCA's node whose class is ORCA's (pure)."""
    metadata = claim.get("metadata") or {}
    spec = claim.get("spec") or {}
    if metadata.get("deletionTimestamp") or spec.get("volumeName"):
        return False
    if (claim.get("status") or {}).get("phase") not in (None, "Pending"):
        return False
    if (metadata.get("annotations") or {}).get(SELECTED_NODE_ANNOTATION) != node_name:
        return False
    return class_provisioners.get(str(spec.get("storageClassName") or "")) == PROVISIONER


def volume_to_reclaim(pv: Mapping[str, Any]) -> bool:
    """A PersistentVolume ORCA provisioned, released by its claim, with `Delete` (pure)."""
    metadata = pv.get("metadata") or {}
    if (metadata.get("annotations") or {}).get(PROVISIONED_BY_ANNOTATION) != PROVISIONER:
        return False
    if (pv.get("spec") or {}).get("persistentVolumeReclaimPolicy") != "Delete":
        return False
    return (pv.get("status") or {}).get("phase") == "Released"


def provisioning_decisions(
    claims: Iterable[Mapping[str, Any]],
    volumes: Iterable[Mapping[str, Any]],
    class_provisioners: Mapping[str, str],
    node_name: str,
) -> list[StartClaim | StartReclaim]:
    """The workflows one listing asks for (pure)."""
    decisions: list[StartClaim | StartReclaim] = []
    for claim in claims:
        if claim_needs_volume(claim, class_provisioners, node_name):
            metadata = claim["metadata"]
            decisions.append(
                StartClaim(
                    ClaimRef(
                        namespace=metadata["namespace"], name=metadata["name"], uid=metadata["uid"]
                    )
                )
            )
    for pv in volumes:
        if volume_to_reclaim(pv):
            decisions.append(
                StartReclaim(
                    ReclaimInput(
                        persistent_volume=pv["metadata"]["name"],
                        volume_id=volume_id_from_persistent_volume(pv),
                    )
                )
            )
    return decisions


class ClaimProvisioner:
    def __init__(
        self,
        api: k8s.ApiClient,
        temporal: Client,
        task_queue: str,
        node_name: str,
        *,
        watch_timeout_seconds: int = 300,
    ) -> None:
        self.core = k8s.CoreV1Api(api)
        self.storage = k8s.StorageV1Api(api)
        self.temporal = temporal
        self.task_queue = task_queue
        self.node_name = node_name
        self.watch_timeout_seconds = watch_timeout_seconds
        self._changed = asyncio.Event()
        self._responses: list[urllib3.HTTPResponse] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    async def run(self, interval: timedelta) -> None:
        """Reconcile now, on every change the watches report, and every `interval`."""
        self._loop = asyncio.get_running_loop()
        watches = [
            asyncio.create_task(
                self._watch(self.core.list_persistent_volume_claim_for_all_namespaces)
            ),
            asyncio.create_task(self._watch(self.core.list_persistent_volume)),
        ]
        try:
            while True:
                self._changed.clear()
                try:
                    await self.reconcile()
                except asyncio.CancelledError:
                    raise
                except Exception as error:
                    log.warning("claim reconcile failed", error=f"{type(error).__name__}: {error}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), interval.total_seconds())
        finally:
            for task in watches:
                task.cancel()
            for response in list(self._responses):
                with contextlib.suppress(Exception):
                    response.shutdown()
            await asyncio.gather(*watches, return_exceptions=True)

    async def reconcile(self) -> int:
        """List, decide, start; returns how many starts were asked for."""
        claims, volumes, classes = await asyncio.gather(
            asyncio.to_thread(read_json, self.core.list_persistent_volume_claim_for_all_namespaces),
            asyncio.to_thread(read_json, self.core.list_persistent_volume),
            asyncio.to_thread(read_json, self.storage.list_storage_class),
        )
        provisioners = {
            c["metadata"]["name"]: str(c.get("provisioner") or "")
            for c in classes.get("items") or []
        }
        decisions = provisioning_decisions(
            claims.get("items") or [], volumes.get("items") or [], provisioners, self.node_name
        )
        for decision in decisions:
            await self._start(decision)
        return len(decisions)

    async def _start(self, decision: StartClaim | StartReclaim) -> None:
        if isinstance(decision, StartClaim):
            workflow, arg = CLAIM_PROVISIONING_WORKFLOW, decision.claim
            workflow_id = claim_workflow_id(decision.claim.uid)
        else:
            workflow, arg = VOLUME_RECLAIM_WORKFLOW, decision.reclaim  # type: ignore[assignment]
            workflow_id = reclaim_workflow_id(decision.reclaim.persistent_volume)
        try:
            await self.temporal.start_workflow(
                workflow,
                arg,
                id=workflow_id,
                task_queue=self.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        except WorkflowAlreadyStartedError:
            return  # it ran already: a refused claim keeps its failure
        log.info("provisioner workflow started", workflow=workflow, workflow_id=workflow_id)

    async def _watch(self, list_call: Callable[..., Any]) -> None:
        """Watch from now on; every event (or a dropped watch) asks for a reconcile."""
        while True:
            try:
                response = await asyncio.to_thread(
                    list_call,
                    watch=True,
                    timeout_seconds=self.watch_timeout_seconds,
                    _preload_content=False,
                    _request_timeout=(10, self.watch_timeout_seconds + 30),
                )
                self._responses.append(response)
                try:
                    await asyncio.to_thread(self._drain, response)
                finally:
                    self._responses.remove(response)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.info("claim watch dropped; resuming", error=f"{type(error).__name__}: {error}")
                await asyncio.sleep(1.0)
            self._changed.set()

    def _drain(self, response: urllib3.HTTPResponse) -> None:
        loop = self._loop
        assert loop is not None
        buffer = b""
        try:
            for chunk in response.stream(amt=None, decode_content=False):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip() and json.loads(line).get("type") != "BOOKMARK":
                        loop.call_soon_threadsafe(self._changed.set)
        finally:
            with contextlib.suppress(Exception):
                response.release_conn()
