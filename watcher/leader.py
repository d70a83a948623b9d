"""Leader election through a coordination.k8s.io Lease, after client-go's `leaderelection`.

Two watcher replicas may run; only the leader registers the node, watches pods and consumes the
interruption queue. A replica becomes leader by writing its identity into the Lease when it is
free or expired, and stays leader by renewing it every `renewInterval`. Expiry is judged as
client-go does, by the *local* time since the record was last seen to change, never by comparing
the holder's `renewTime` with this machine's clock, so clock skew between replicas cannot hand the
lease to two of them. Every write carries the resourceVersion read before it: of two replicas
racing for a free lease, one gets 409 Conflict and stays follower.

A leader that cannot renew for a whole lease duration stops acting before anyone else can take
over; a leader that stops cleanly releases the lease so the other replica takes over at its next
try instead of after a lease duration.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from kubernetes import client as k8s

from orca.logging import get_logger
from orca.settings import LeaderElectionSettings
from orca.watcher.kube_json import read_json_or_none
from orca.watcher.node_heartbeat import micro_time

log = get_logger(__name__)


def default_identity() -> str:
    return f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"


@dataclass
class _Observed:
    holder: str
    renew_time: str
    duration: float
    at: float
    """Local monotonic time when this record was first seen."""


class LeaderElector:
    def __init__(
        self,
        coordination: k8s.CoordinationV1Api,
        settings: LeaderElectionSettings,
        identity: str | None = None,
    ) -> None:
        self.coordination = coordination
        self.settings = settings
        self.identity = identity or default_identity()
        self.leading = asyncio.Event()
        self.lost = asyncio.Event()
        self._observed: _Observed | None = None
        self._last_renewal = 0.0
        self.has_read_lease = False
        """One election round has read the lease (and acted on it): from then on `is_leader`
        says what this replica is, not only what it has not become yet."""

    @property
    def is_leader(self) -> bool:
        return self.leading.is_set()

    async def run(self) -> None:
        """Try to acquire or renew every `renewInterval` until cancelled."""
        interval = self.settings.renew_interval.total_seconds()
        # Stop acting a while before the lease can expire for the others (client-go's renew
        # deadline), so two leaders never act at once.
        deadline = self.settings.lease_duration.total_seconds() * 2 / 3
        while True:
            read = False
            try:
                held = await asyncio.to_thread(self._try_acquire_or_renew)
                read = True
                if held:
                    self._last_renewal = time.monotonic()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("leader lease update failed", error=f"{type(error).__name__}: {error}")
                held = self.is_leader and time.monotonic() - self._last_renewal < deadline
            if held and not self.is_leader:
                log.info("became leader", identity=self.identity, lease=self.settings.lease_name)
                self.lost.clear()
                self.leading.set()
            elif not held and self.is_leader:
                log.warning("lost leadership", identity=self.identity)
                self.leading.clear()
                self.lost.set()
            self.has_read_lease = self.has_read_lease or read
            await asyncio.sleep(interval)

    async def release(self) -> None:
        """Give the lease up (clean shutdown), so another replica takes over at once."""
        if not self.is_leader:
            return
        self.leading.clear()
        self.lost.set()
        try:
            await asyncio.to_thread(self._release)
            log.info("leader lease released", identity=self.identity)
        except Exception as error:
            log.warning("releasing the leader lease failed", error=str(error))

    def _try_acquire_or_renew(self) -> bool:
        name = self.settings.lease_name
        namespace = self.settings.lease_namespace
        duration = int(self.settings.lease_duration.total_seconds())
        now = datetime.now(UTC)
        lease = read_json_or_none(self.coordination.read_namespaced_lease, name, namespace)
        if lease is None:
            try:
                body = self._lease_body(name, namespace, duration, now, acquired=True)
                self.coordination.create_namespaced_lease(namespace, cast(Any, body))
            except k8s.ApiException as create_error:
                if create_error.status == 409:
                    return False
                raise
            return True
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        renew_time = spec.get("renewTime") or ""
        observed_duration = float(spec.get("leaseDurationSeconds") or duration)
        observed = self._observed
        if observed is None or (observed.holder, observed.renew_time) != (holder, renew_time):
            self._observed = observed = _Observed(
                holder, renew_time, observed_duration, time.monotonic()
            )
        mine = holder == self.identity
        expired = time.monotonic() > observed.at + observed.duration
        if holder and not mine and not expired:
            return False
        body = self._lease_body(name, namespace, duration, now, acquired=not mine)
        body["metadata"]["resourceVersion"] = lease["metadata"]["resourceVersion"]
        if mine:
            body["spec"]["acquireTime"] = spec.get("acquireTime") or micro_time(now)
            body["spec"]["leaseTransitions"] = spec.get("leaseTransitions") or 0
        else:
            body["spec"]["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        try:
            self.coordination.replace_namespaced_lease(name, namespace, cast(Any, body))
        except k8s.ApiException as error:
            if error.status == 409:
                return False  # another replica wrote first; look again next round
            raise
        return True

    def _lease_body(
        self, name: str, namespace: str, duration: int, now: datetime, *, acquired: bool
    ) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": duration,
            "renewTime": micro_time(now),
        }
        if acquired:
            spec["acquireTime"] = micro_time(now)
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }

    def _release(self) -> None:
        name = self.settings.lease_name
        namespace = self.settings.lease_namespace
        lease = read_json_or_none(self.coordination.read_namespaced_lease, name, namespace)
        if lease is None:
            return
        spec = lease.get("spec") or {}
        if spec.get("holderIdentity") != self.identity:
            return
        spec.update({"holderIdentity": "", "leaseDurationSeconds": 1})
        lease["spec"] = spec
        try:
            self.coordination.replace_namespaced_lease(name, namespace, cast(Any, lease))
        except k8s.ApiException as error:
            if error.status != 409:
                raise
