"""Keeping the virtual node registered and alive: the Node object, its status and its Lease.

As a kubelet does: the node is created (or its labels, taints and status brought up to date) at
start; its Lease in `kube-node-lease` is renewed every `node.leaseRenewInterval` (the cheap
liveness signal); its status is patched every `node.statusUpdateInterval` and whenever a
dependency's health changes. Ready stays True while this runs; a dependency outage changes its
condition and adds or removes the dependency taint (`node.py`). Taints are written with the
node's resourceVersion (retried on a conflict), so a taint another controller adds at the same
moment is never lost.

On shutdown the node is left NotReady (pods stay bound and their workflows keep running; a
restarted watcher picks them up), or deleted when `node.deleteOnShutdown` is set. A watcher gone
for longer than the pods' tolerations of `node.kubernetes.io/not-ready` / `unreachable` (300 s by
default) means Kubernetes evicts its pods: see docs/node.md.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

from kubernetes import client as k8s

from orca.logging import get_logger
from orca.settings import NodeSettings
from orca.watcher.kube_json import read_json_or_none
from orca.watcher.node import (
    TAINTS_ANNOTATION,
    NodeHealth,
    build_node,
    merge_taints,
    node_status,
    owned_taints_annotation,
    parse_owned_taints,
    wanted_taints,
)
from orca.watcher.node_health import HealthCheck

log = get_logger(__name__)

NODE_LEASE_NAMESPACE = "kube-node-lease"
STOPPED_REASON = "WatcherStopped"
STOPPED_MESSAGE = "the ORCA watcher stopped; pods are not updated"
TAINT_WRITE_ATTEMPTS = 5


def micro_time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class NodeHeartbeat:
    def __init__(
        self,
        core: k8s.CoreV1Api,
        coordination: k8s.CoordinationV1Api,
        settings: NodeSettings,
        health_check: HealthCheck,
        *,
        kubelet_port: int | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> None:
        self.core = core
        self.annotations = dict(annotations or {})
        self.coordination = coordination
        self.settings = settings
        self.health_check = health_check
        self.kubelet_port = kubelet_port
        self.registered = False
        self.health: NodeHealth | None = None
        self._conditions: list[dict[str, Any]] | None = None

    @property
    def name(self) -> str:
        return self.settings.name

    async def check(self) -> NodeHealth:
        """Ready (this process runs) with the dependencies' conditions as probed now."""
        return NodeHealth(dependencies=await self.health_check())

    async def register(self) -> None:
        """Create the Node, or update the existing one's labels, taints and status."""
        health = await self.check()
        await asyncio.to_thread(self._register, health)
        self.health = health
        self.registered = True
        log.info(
            "node registered",
            node=self.name,
            dependencies_available=health.dependencies_available,
            unavailable=[d.reason for d in health.unavailable()],
        )

    async def run(self) -> None:
        """Renew the Lease and, independently, probe and patch the status, until cancelled.

        Two loops on purpose: a slow dependency probe (an AWS call taking its whole timeout) must
        never delay the Lease, or the control plane would take the node for lost and evict its
        pods, the very thing the dependency conditions exist to avoid. API errors are retried.
        """
        await asyncio.gather(self._renew_lease_forever(), self._update_status_forever())

    async def _renew_lease_forever(self) -> None:
        renew = self.settings.lease_renew_interval.total_seconds()
        while True:
            try:
                await asyncio.to_thread(self._renew_lease)
            except Exception as error:
                log.warning("node lease renewal failed", error=f"{type(error).__name__}: {error}")
            await asyncio.sleep(renew)

    async def _update_status_forever(self) -> None:
        probe_every = self.settings.lease_renew_interval.total_seconds()
        status_every = self.settings.status_update_interval.total_seconds()
        last_status = time.monotonic()
        while True:
            try:
                if not self.registered:
                    await self.register()
                    last_status = time.monotonic()
                health = await self.check()
                if health != self.health or time.monotonic() - last_status >= status_every:
                    await asyncio.to_thread(self._patch_status, health)
                    await asyncio.to_thread(self._apply_taints, health)
                    if health != self.health:
                        log.info(
                            "node dependencies changed",
                            dependencies_available=health.dependencies_available,
                            unavailable=[
                                f"{d.type}={d.status} ({d.reason})" for d in health.unavailable()
                            ],
                        )
                    self.health = health
                    last_status = time.monotonic()
            except Exception as error:
                log.warning("node status update failed", error=f"{type(error).__name__}: {error}")
            await asyncio.sleep(probe_every)

    async def shutdown(self) -> None:
        """Leave the node NotReady, or delete it when configured to."""
        if self.settings.delete_on_shutdown:
            await asyncio.to_thread(self._delete)
            log.info("node deleted on shutdown", node=self.name)
            return
        stopped = NodeHealth(
            ready=False,
            reason=STOPPED_REASON,
            message=STOPPED_MESSAGE,
            dependencies=self.health.dependencies if self.health else (),
        )
        await asyncio.to_thread(self._patch_status, stopped)
        log.info("node left NotReady on shutdown", node=self.name)

    def _register(self, health: NodeHealth) -> None:
        body = build_node(
            self.settings,
            health,
            datetime.now(UTC),
            kubelet_port=self.kubelet_port,
            annotations=self.annotations,
        )
        existing = read_json_or_none(self.core.read_node, self.name)
        if existing is None:
            self.core.create_node(cast(Any, body))
        else:
            self._conditions = (existing.get("status") or {}).get("conditions")
            metadata = {"labels": body["metadata"]["labels"], "annotations": self.annotations}
            self.core.patch_node(self.name, {"metadata": metadata})
            self._apply_taints(health)
        # A real API server ignores status on create; it is written through the subresource.
        self._patch_status(health)

    def _apply_taints(self, health: NodeHealth) -> None:
        """Bring ORCA's taints up to date, keeping every other taint (optimistic concurrency)."""
        for _ in range(TAINT_WRITE_ATTEMPTS):
            node = read_json_or_none(self.core.read_node, self.name)
            if node is None:
                self.registered = False  # deleted under us: register again
                return
            metadata = node.get("metadata") or {}
            current = list((node.get("spec") or {}).get("taints") or [])
            owned = parse_owned_taints((metadata.get("annotations") or {}).get(TAINTS_ANNOTATION))
            merged = merge_taints(current, wanted_taints(self.settings, health), owned)
            annotation = owned_taints_annotation(self.settings)
            recorded = (metadata.get("annotations") or {}).get(TAINTS_ANNOTATION)
            if merged == current and recorded == annotation:
                return
            patch = {
                "metadata": {
                    "resourceVersion": metadata.get("resourceVersion"),
                    "annotations": {TAINTS_ANNOTATION: annotation},
                },
                "spec": {"taints": merged},
            }
            try:
                self.core.patch_node(self.name, patch)
                return
            except k8s.ApiException as error:
                if error.status != 409:
                    raise
        raise RuntimeError(f"node {self.name}: taints kept conflicting; retried next heartbeat")

    def _patch_status(self, health: NodeHealth) -> None:
        status = node_status(
            self.settings,
            health,
            datetime.now(UTC),
            kubelet_port=self.kubelet_port,
            previous_conditions=self._conditions,
        )
        self.core.patch_node_status(self.name, {"status": status})
        self._conditions = status["conditions"]

    def _renew_lease(self) -> None:
        now = micro_time(datetime.now(UTC))
        duration = int(self.settings.lease_duration.total_seconds())
        try:
            self.coordination.patch_namespaced_lease(
                self.name,
                NODE_LEASE_NAMESPACE,
                {"spec": {"renewTime": now, "holderIdentity": self.name}},
            )
        except k8s.ApiException as error:
            if error.status != 404:
                raise
            self.coordination.create_namespaced_lease(
                NODE_LEASE_NAMESPACE,
                cast(
                    Any,
                    {
                        "apiVersion": "coordination.k8s.io/v1",
                        "kind": "Lease",
                        "metadata": {
                            "name": self.name,
                            "namespace": NODE_LEASE_NAMESPACE,
                            "ownerReferences": self._owner_references(),
                        },
                        "spec": {
                            "holderIdentity": self.name,
                            "leaseDurationSeconds": duration,
                            "renewTime": now,
                        },
                    },
                ),
            )

    def _owner_references(self) -> list[dict[str, Any]]:
        node = read_json_or_none(self.core.read_node, self.name)
        if node is None:
            return []
        uid = node["metadata"]["uid"]
        return [{"apiVersion": "v1", "kind": "Node", "name": self.name, "uid": uid}]

    def _delete(self) -> None:
        try:
            self.core.delete_node(self.name)
        except k8s.ApiException as error:
            if error.status != 404:
                raise
