"""A permanent AWS failure stops the spending: the pod fails with a reason naming the AWS call
and its instance is terminated; rejected credentials are retried and the pod carries on.

The workflow runs on the time-skipping test server with the fakes of
`tests/workflows/fake_activities.py`, told to raise, for the step under test, the error botocore
raises for the AWS answer (`ClientError(parsed response, operation)`) through the same
`fails_on_aws_errors` boundary the real activities use (the real activities against the AWS
emulator's injected faults are in tests/activities/test_aws_failures.py).
"""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from orca.activities.aws_failures import UNCLASSIFIED_ERROR_ATTEMPTS
from orca.failure_types import FailureType
from orca.workflows.models import Stage
from tests.workflows.test_pod_lifecycle import harness


def aws_answer(code: str, operation: str) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": "User is not authorized to perform this action"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        },
        operation,
    )


@pytest.mark.parametrize(
    ("activity_name", "code", "operation", "attempts", "reason", "names_the_call"),
    [
        pytest.param(
            "start_containers",
            "AccessDeniedException",
            "SendCommand",
            [1],  # not retried
            FailureType.AWS_ACCESS_DENIED,
            "ssm:SendCommand AccessDeniedException: ",
            id="ssm-access-denied",
        ),
        pytest.param(
            "monitor_pod",
            "AccessDeniedException",
            "FilterLogEvents",
            [1],
            FailureType.AWS_ACCESS_DENIED,
            "logs:FilterLogEvents AccessDeniedException: ",
            id="logs-access-denied-while-running",
        ),
        pytest.param(
            "start_containers",
            "SomethingNewFromAws",
            "SendCommand",
            list(range(1, UNCLASSIFIED_ERROR_ATTEMPTS + 1)),  # its budget, then it gives up
            FailureType.AWS_CALL_FAILED,
            "ssm:SendCommand SomethingNewFromAws: ",
            id="unknown-error-after-its-budget",
        ),
    ],
)
async def test_a_permanent_aws_failure_fails_the_pod_and_terminates_the_instance(
    time_skipping_env: WorkflowEnvironment,
    activity_name: str,
    code: str,
    operation: str,
    attempts: list[int],
    reason: FailureType,
    names_the_call: str,
) -> None:
    h = harness(time_skipping_env)
    # More errors than the activity may try: it must stop on its own.
    h.containers.fail_next(
        activity_name,
        *(aws_answer(code, operation) for _ in range(UNCLASSIFIED_ERROR_ATTEMPTS + 2)),
    )
    async with h.worker():
        handle = await h.start()
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
    assert h.containers.attempts[activity_name] == attempts
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == reason
    assert h.instances.terminated == ["i-00000001"]
    failed = h.pod_status.statuses[-1]
    assert failed.phase == "Failed"
    assert failed.reason == reason
    assert failed.message is not None
    assert failed.message.startswith(names_the_call)
    assert any(e.reason == reason and e.type == "Warning" for e in h.pod_status.events)
    if activity_name == "start_containers":
        assert "monitor_pod" not in h.containers.attempts  # nothing ran, nothing to watch


async def test_rejected_credentials_are_retried_and_the_pod_carries_on(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    h = harness(time_skipping_env)
    # Three rejections, until an operator rotates the key.
    h.containers.fail_next(
        "start_containers", *(aws_answer("ExpiredToken", "SendCommand") for _ in range(3))
    )
    async with h.worker():
        handle = await h.start()
        result = await handle.result()
    assert h.containers.attempts["start_containers"] == [1, 2, 3, 4]
    assert result.stage is Stage.SUCCEEDED
    assert all(s.phase != "Failed" for s in h.pod_status.statuses)
