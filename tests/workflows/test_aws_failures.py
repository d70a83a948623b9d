"""A permanent AWS failure stops the spending: the pod fails with a reason naming the AWS call
and its instance is terminated; rejected credentials are retried and the pod carries on.

The workflow runs on the time-skipping test server with the scripted activities of
test_pod_lifecycle.py, except the step under test: it raises the error botocore raises for the
AWS answer (`ClientError(parsed response, operation)`) through the same `fails_on_aws_errors`
boundary the real activities use (the real activities against the AWS emulator's injected
faults are in tests/activities/test_aws_failures.py).
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError
from temporalio import activity
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from orca.activities.aws_failures import UNCLASSIFIED_ERROR_ATTEMPTS, fails_on_aws_errors
from orca.activities.models import (
    MonitorInput,
    MonitorOutcome,
    StartContainersInput,
    StartContainersOutcome,
)
from orca.failure_types import FailureType
from orca.workflows.models import Stage
from orca.workflows.pod_lifecycle import PodLifecycle
from tests.workflows.test_pod_lifecycle import Harness, harness


def aws_answer(code: str, operation: str) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": "User is not authorized to perform this action"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        },
        operation,
    )


def worker_with(h: Harness, *replacements: Any) -> Worker:
    """The harness's worker with some scripted activities replaced (matched by name)."""
    replaced = {fn.__name__ for fn in replacements}
    activities = [fn for fn in h.cloud.activities() if fn.__name__ not in replaced]
    return Worker(
        h.client,
        task_queue=h.task_queue,
        workflows=[PodLifecycle],
        activities=[*activities, *replacements],
    )


async def test_ssm_access_denied_fails_the_pod_and_terminates_the_instance(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    h = harness(time_skipping_env)
    attempts: list[int] = []

    @activity.defn(name="start_containers")
    @fails_on_aws_errors()
    async def start_containers(input: StartContainersInput) -> StartContainersOutcome:
        attempts.append(activity.info().attempt)
        raise aws_answer("AccessDeniedException", "SendCommand")

    async with worker_with(h, start_containers):
        handle = await h.start()
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
    assert attempts == [1]  # not retried
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == FailureType.AWS_ACCESS_DENIED
    assert h.cloud.terminated == ["i-00000001"]
    failed = h.cloud.statuses[-1]
    assert failed.phase == "Failed"
    assert failed.reason == FailureType.AWS_ACCESS_DENIED
    assert failed.message is not None
    assert failed.message.startswith("ssm:SendCommand AccessDeniedException: ")
    assert any(
        e.reason == FailureType.AWS_ACCESS_DENIED and e.type == "Warning" for e in h.cloud.events
    )
    assert h.cloud.monitor_rounds == 0


async def test_logs_access_denied_while_running_fails_the_pod_and_terminates(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    h = harness(time_skipping_env)

    @activity.defn(name="monitor_pod")
    @fails_on_aws_errors()
    async def monitor_pod(input: MonitorInput) -> MonitorOutcome:
        raise aws_answer("AccessDeniedException", "FilterLogEvents")

    async with worker_with(h, monitor_pod):
        handle = await h.start()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
    assert h.cloud.terminated == ["i-00000001"]
    assert h.cloud.statuses[-1].reason == FailureType.AWS_ACCESS_DENIED
    assert "logs:FilterLogEvents" in (h.cloud.statuses[-1].message or "")


async def test_unknown_aws_error_fails_the_pod_after_its_budget(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    h = harness(time_skipping_env)
    attempts: list[int] = []

    @activity.defn(name="start_containers")
    @fails_on_aws_errors()
    async def start_containers(input: StartContainersInput) -> StartContainersOutcome:
        attempts.append(activity.info().attempt)
        raise aws_answer("SomethingNewFromAws", "SendCommand")

    async with worker_with(h, start_containers):
        handle = await h.start()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
    assert attempts == list(range(1, UNCLASSIFIED_ERROR_ATTEMPTS + 1))
    assert h.cloud.terminated == ["i-00000001"]
    assert h.cloud.statuses[-1].reason == FailureType.AWS_CALL_FAILED


async def test_rejected_credentials_are_retried_and_the_pod_carries_on(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    h = harness(time_skipping_env)
    attempts: list[int] = []

    @activity.defn(name="start_containers")
    @fails_on_aws_errors()
    async def start_containers(input: StartContainersInput) -> StartContainersOutcome:
        attempts.append(activity.info().attempt)
        if len(attempts) <= 3:  # until an operator rotates the key
            raise aws_answer("ExpiredToken", "SendCommand")
        return StartContainersOutcome(command_id="cmd-1")

    async with worker_with(h, start_containers):
        handle = await h.start()
        result = await handle.result()
    assert attempts == [1, 2, 3, 4]
    assert result.stage is Stage.SUCCEEDED
    assert all(s.phase != "Failed" for s in h.cloud.statuses)
