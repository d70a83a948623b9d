"""The worker's one view of EC2: every ORCA instance of this cluster, listed once per interval.

All of the worker's instance reads go through one `BatchedPoller` round — a paginated
DescribeInstances filtered by the cluster and managed-by tags (`Ec2Instances.describe_cluster`,
1000 instances per call):

- `status(id)`: waiting for an instance to run, and monitoring it, for every pod at once;
- `of_pod(uid)`: the pod-UID lookup that makes a retried launch and every terminate idempotent;
- `live()`: every live instance of the cluster (its pod's namespace and instance type).

So DescribeInstances costs ceil(N / 1000) calls per poll interval for N instances whatever asks,
and a lookup waits at most one interval for the next round (rounds only run while something
waits). Each answer is as fresh as EC2's eventually consistent listing: an instance launched a
moment ago may be absent for a few seconds, which `wait_until_running` tolerates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from orca.activities.batched_poller import BatchedPoller
from orca.activities.ec2_instances import ListedInstance
from orca.activities.models import InstanceStatus
from orca.instance_state import InstanceState, is_live


@dataclass(frozen=True)
class LiveInstance:
    instance_id: str
    namespace: str
    instance_type: str


def listed_missing(instance_id: str) -> ListedInstance:
    """What a round says about an instance it did not list."""
    return ListedInstance(
        status=InstanceStatus(instance_id=instance_id, state=InstanceState.MISSING)
    )


class ClusterInstances:
    def __init__(self, poller: BatchedPoller[ListedInstance]) -> None:
        self._poller = poller

    async def status(self, instance_id: str) -> InstanceStatus:
        """The instance's status from the next round (state MISSING when not listed)."""
        return (await self._poller.next(instance_id)).status

    async def of_pod(self, pod_uid: str) -> list[InstanceStatus]:
        """Live instances tagged with the pod's UID, from the next round."""
        listing = await self._poller.next_round()
        return [
            listed.status
            for listed in listing.values()
            if listed.pod_uid == pod_uid and is_live(listed.status.state)
        ]

    async def listing(self) -> Mapping[str, ListedInstance]:
        """Every instance of the cluster by ID, terminated ones included, from the next round
        (the orphan sweep's view)."""
        return await self._poller.next_round()

    async def live(self) -> list[LiveInstance]:
        """Every live ORCA instance of the cluster, from the next round."""
        listing = await self._poller.next_round()
        return [
            LiveInstance(
                instance_id=listed.status.instance_id,
                namespace=listed.pod_namespace or "",
                instance_type=listed.status.instance_type or "",
            )
            for listed in listing.values()
            if is_live(listed.status.state)
        ]

    async def close(self) -> None:
        await self._poller.close()
