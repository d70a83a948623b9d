"""Instance limits: `limits.maxConcurrentInstances`, `maxInstancesPerNamespace` and
`namespaceQuotas.<ns>.maxInstances` / `maxGPUs`, checked before every launch.

The count of live ORCA instances in this cluster comes from the worker's cluster listing
(`orca.activities.cluster_instances`, the same DescribeInstances round that watches every instance)
at most every `refresh_seconds`, shared by every launch in the worker; launches admitted since
the last refresh are added locally, so a burst cannot overshoot between refreshes. A pod over a
limit is not failed: the workflow keeps it Pending and retries, as for missing capacity. Limits
are per worker process and eventually consistent across replicas; budgets in dollars are not
enforced (docs say so).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from orca.settings import LimitsSettings


@dataclass(frozen=True)
class LiveInstance:
    instance_id: str
    namespace: str
    instance_type: str


def limit_violation(
    live: Sequence[LiveInstance],
    namespace: str,
    instance_type: str,
    gpus_of: Callable[[str], int],
    limits: LimitsSettings,
) -> str | None:
    """Why one more `instance_type` for `namespace` would break a limit, or None (pure)."""
    if limits.max_concurrent_instances and len(live) >= limits.max_concurrent_instances:
        return (
            f"limits.maxConcurrentInstances ({limits.max_concurrent_instances}) reached: "
            f"{len(live)} ORCA instances are running"
        )
    mine = [i for i in live if i.namespace == namespace]
    per_namespace = limits.max_instances_per_namespace
    if per_namespace and len(mine) >= per_namespace:
        return (
            f"limits.maxInstancesPerNamespace ({per_namespace}) reached: namespace "
            f"{namespace} has {len(mine)} instances"
        )
    quota = limits.namespace_quotas.get(namespace)
    if quota is not None:
        if quota.max_instances is not None and len(mine) >= quota.max_instances:
            return (
                f"limits.namespaceQuotas.{namespace}.maxInstances ({quota.max_instances}) "
                f"reached: {len(mine)} instances"
            )
        if quota.max_gpus is not None:
            used = sum(gpus_of(i.instance_type) for i in mine)
            wanted = gpus_of(instance_type)
            if wanted and used + wanted > quota.max_gpus:
                return (
                    f"limits.namespaceQuotas.{namespace}.maxGPUs ({quota.max_gpus}) would be "
                    f"exceeded: {used} GPUs in use, {instance_type} has {wanted}"
                )
    return None


class InstanceInventory:
    def __init__(
        self,
        list_live: Callable[[], Awaitable[list[LiveInstance]]],
        limits: LimitsSettings,
        refresh_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._list_live = list_live
        self._limits = limits
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._live: list[LiveInstance] = []
        self._admitted: list[LiveInstance] = []
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    @property
    def enabled(self) -> bool:
        limits = self._limits
        return bool(
            limits.max_concurrent_instances
            or limits.max_instances_per_namespace
            or limits.namespace_quotas
        )

    async def admit(
        self, namespace: str, instance_type: str, gpus_of: Callable[[str], int]
    ) -> str | None:
        """None and a reservation for the launch, or the limit it would break."""
        if not self.enabled:
            return None
        async with self._lock:
            now = self._clock()
            if self._fetched_at is None or now - self._fetched_at > self._refresh_seconds:
                self._live = await self._list_live()
                self._admitted = []
                self._fetched_at = now
            known = {i.instance_id for i in self._live}
            current = self._live + [i for i in self._admitted if i.instance_id not in known]
            violation = limit_violation(current, namespace, instance_type, gpus_of, self._limits)
            if violation is None:
                slot = LiveInstance(f"admitted-{len(self._admitted)}", namespace, instance_type)
                self._admitted.append(slot)
            return violation

    def release(self, namespace: str, instance_type: str) -> None:
        """Give back an admission whose launch did not create an instance."""
        for index, slot in enumerate(self._admitted):
            if slot.namespace == namespace and slot.instance_type == instance_type:
                del self._admitted[index]
                return
