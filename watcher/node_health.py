"""Whether ORCA's dependencies are usable: the facts behind the node's dependency conditions.

Three conditions, each with its own reasons so `kubectl describe node` says what to fix:

* `orca.research/AwsAvailable`: AWS accepts ORCA's credentials (STS GetCallerIdentity, free and
  not throttled with EC2's buckets). False with `AwsCredentialsUnavailable`,
  `AwsCredentialsRejected`, `AwsUnreachable` or `ProbeTimeout`.
* `orca.research/TemporalAvailable`: Temporal answers. False with `TemporalUnavailable`.
* `orca.research/WorkerPolling`: some worker polls the task queue the workflows run on (without
  one, new pods would sit in Pending with nothing happening). Temporal keeps a gone worker in the
  task queue's poller list for five minutes, so a poller counts only if its last poll is newer
  than `watcher.workerPollerStaleAfter` (an idle worker polls about once a minute). False with
  `NoWorkerPolling`; Unknown while Temporal itself does not answer.

None of them touches `Ready` (see `node.py`): an outage of a dependency stops new pods from
landing on the node and leaves running pods alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.service import RPCError

from orca import aws_errors
from orca.aws_clients import AwsClients, AwsCredentialsError
from orca.units import format_duration
from orca.watcher.node import (
    AWS_AVAILABLE,
    TEMPORAL_AVAILABLE,
    WORKER_POLLING,
    DependencyCondition,
)

Dependencies = tuple[DependencyCondition, ...]
HealthCheck = Callable[[], Awaitable[Dependencies]]

DEFAULT_POLLER_STALE_AFTER = timedelta(minutes=2)


def condition(kind: str, status: str, reason: str, message: str) -> DependencyCondition:
    return DependencyCondition(type=kind, status=status, reason=reason, message=message)


def aws_condition(error: BaseException | None) -> DependencyCondition:
    """The AwsAvailable condition after a GetCallerIdentity that raised `error` (None: answered)."""
    if error is None:
        return condition(
            AWS_AVAILABLE, "True", "AwsCredentialsValid", "AWS accepts ORCA's credentials"
        )
    if isinstance(error, AwsCredentialsError):
        return condition(AWS_AVAILABLE, "False", "AwsCredentialsUnavailable", str(error))
    if aws_errors.classify(error) in (
        aws_errors.AwsErrorKind.CREDENTIALS_REJECTED,
        aws_errors.AwsErrorKind.ACCESS_DENIED,
    ):
        return condition(
            AWS_AVAILABLE,
            "False",
            "AwsCredentialsRejected",
            f"AWS rejected ORCA's credentials: {aws_errors.error_message(error)}",
        )
    return condition(
        AWS_AVAILABLE, "False", "AwsUnreachable", f"AWS: {aws_errors.error_message(error)}"
    )


def live_pollers(last_polls: list[datetime], now: datetime, stale_after: timedelta) -> int:
    """How many pollers polled within `stale_after` of `now`."""
    return sum(1 for last in last_polls if now - last <= stale_after)


def worker_condition(task_queue: str, live: int) -> DependencyCondition:
    if live == 0:
        return condition(
            WORKER_POLLING,
            "False",
            "NoWorkerPolling",
            f"no ORCA worker polls task queue {task_queue!r}; start `orca worker`",
        )
    return condition(
        WORKER_POLLING, "True", "WorkerPolling", f"{live} worker(s) poll task queue {task_queue!r}"
    )


class NodeHealthProbe:
    def __init__(
        self,
        aws: AwsClients,
        temporal: Client,
        task_queue: str,
        *,
        poller_stale_after: timedelta = DEFAULT_POLLER_STALE_AFTER,
        timeout: float = 10.0,
    ) -> None:
        self.aws = aws
        self.temporal = temporal
        self.task_queue = task_queue
        self.poller_stale_after = poller_stale_after
        self.timeout = timeout

    async def check(self) -> Dependencies:
        aws, temporal = await asyncio.gather(self._aws(), self._temporal())
        return (*temporal, aws)

    async def _aws(self) -> DependencyCondition:
        try:
            await asyncio.wait_for(asyncio.to_thread(self._caller_identity), self.timeout)
        except TimeoutError:
            return condition(
                AWS_AVAILABLE,
                "False",
                "ProbeTimeout",
                "sts:GetCallerIdentity did not answer within "
                f"{format_duration(timedelta(seconds=self.timeout))}",
            )
        except Exception as error:
            return aws_condition(error)
        return aws_condition(None)

    def _caller_identity(self) -> None:
        self.aws.check_credentials()
        self.aws.client("sts").get_caller_identity()

    async def _temporal(self) -> tuple[DependencyCondition, DependencyCondition]:
        request = DescribeTaskQueueRequest(
            namespace=self.temporal.namespace,
            task_queue=TaskQueue(name=self.task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
        try:
            response = await asyncio.wait_for(
                self.temporal.workflow_service.describe_task_queue(
                    request, timeout=timedelta(seconds=self.timeout)
                ),
                self.timeout + 1,
            )
        except (RPCError, TimeoutError) as error:
            detail = error.message if isinstance(error, RPCError) else "no answer"
            message = f"Temporal: {detail}"
            return (
                condition(TEMPORAL_AVAILABLE, "False", "TemporalUnavailable", message),
                condition(WORKER_POLLING, "Unknown", "TemporalUnavailable", message),
            )
        last_polls = [
            poller.last_access_time.ToDatetime(tzinfo=UTC)
            for poller in response.pollers
            if poller.HasField("last_access_time")
        ]
        live = live_pollers(last_polls, datetime.now(UTC), self.poller_stale_after)
        return (
            condition(
                TEMPORAL_AVAILABLE,
                "True",
                "TemporalReachable",
                f"Temporal namespace {self.temporal.namespace!r} answers",
            ),
            worker_condition(self.task_queue, live),
        )


def always_ready() -> HealthCheck:
    """Every dependency available, unprobed: for tests whose subject is not node health."""

    async def check() -> Dependencies:
        return (
            condition(TEMPORAL_AVAILABLE, "True", "NotProbed", "not probed"),
            condition(WORKER_POLLING, "True", "NotProbed", "not probed"),
            condition(AWS_AVAILABLE, "True", "NotProbed", "not probed"),
        )

    return check
