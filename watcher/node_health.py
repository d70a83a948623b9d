"""Whether the virtual node can run pods: the facts behind its Ready condition.

Ready needs all three: AWS credentials that AWS accepts (STS GetCallerIdentity, free and not
throttled with EC2's buckets), a reachable Temporal, and at least one worker polling the task queue
the workflows run on (without one, pods would sit in Pending with nothing happening). Each failure
has its own condition reason, so `kubectl describe node` says what to fix.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.service import RPCError

from orca import aws_errors
from orca.aws_clients import AwsClients, AwsCredentialsError
from orca.watcher.node import READY, NodeHealth

HealthCheck = Callable[[], Awaitable[NodeHealth]]


class NodeHealthProbe:
    def __init__(
        self, aws: AwsClients, temporal: Client, task_queue: str, timeout: float = 10.0
    ) -> None:
        self.aws = aws
        self.temporal = temporal
        self.task_queue = task_queue
        self.timeout = timeout

    async def check(self) -> NodeHealth:
        for probe in (self._aws, self._temporal):
            try:
                health = await asyncio.wait_for(probe(), self.timeout)
            except TimeoutError:
                health = NodeHealth(False, "ProbeTimeout", f"{probe.__name__} did not answer")
            if not health.ready:
                return health
        return READY

    async def _aws(self) -> NodeHealth:
        try:
            await asyncio.to_thread(self._caller_identity)
        except AwsCredentialsError as error:
            return NodeHealth(False, "AwsCredentialsUnavailable", str(error))
        except Exception as error:
            kind = aws_errors.classify(error)
            reason = (
                "AwsCredentialsRejected"
                if kind
                in (
                    aws_errors.AwsErrorKind.CREDENTIALS_REJECTED,
                    aws_errors.AwsErrorKind.ACCESS_DENIED,
                )
                else "AwsUnreachable"
            )
            return NodeHealth(False, reason, aws_errors.error_message(error))
        return READY

    def _caller_identity(self) -> None:
        self.aws.check_credentials()
        self.aws.client("sts").get_caller_identity()

    async def _temporal(self) -> NodeHealth:
        request = DescribeTaskQueueRequest(
            namespace=self.temporal.namespace,
            task_queue=TaskQueue(name=self.task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
        try:
            response = await self.temporal.workflow_service.describe_task_queue(
                request, timeout=timedelta(seconds=self.timeout)
            )
        except RPCError as error:
            return NodeHealth(False, "TemporalUnavailable", f"Temporal: {error.message}")
        if not response.pollers:
            return NodeHealth(
                False,
                "NoWorkerPolling",
                f"no ORCA worker polls task queue {self.task_queue!r}; start `orca worker`",
            )
        return READY


def always_ready() -> HealthCheck:
    async def check() -> NodeHealth:
        return READY

    return check
