"""The activity boundary for AWS errors: every activity that calls AWS is wrapped by
`fails_on_aws_errors`, so no botocore error reaches Temporal unclassified.

An error the activity did not handle closer to the call (capacity as a launch *result*, not found
as success when terminating) is turned into an `ApplicationError` by the one classifier's answer
(`orca.aws_errors.disposition`):

- permanent (access denied, invalid configuration, a configured thing that does not exist):
  non-retryable, typed `AwsAccessDenied` / `ConfigurationError`, with a message naming the call
  (`ssm:SendCommand AccessDenied: ...`). The workflow fails the pod with it and terminates the
  pod's instance, so a GPU instance does not keep running while a call that cannot succeed is
  retried;
- credentials rejected: retryable, typed `AwsCredentialsRejected`, for as long as it lasts. It is
  the operator's to fix for every pod at once, and the node-health probe shows it on the node;
  failing every pod would turn a rotated key into lost work;
- throttled, capacity, transient: retryable, typed `AwsTransient`; Temporal's backoff applies;
- unclassified: retryable until attempt `UNCLASSIFIED_ERROR_ATTEMPTS`, then non-retryable
  `AwsCallFailed` (a code nobody knows must not keep an instance running for ever).

An activity that *stops* spending (`terminate_instances`) passes `permanent=False`: giving up
there would leave the instance running, so it retries everything and says why in its message.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import botocore.exceptions
from temporalio import activity
from temporalio.exceptions import ApplicationError

from orca import aws_errors
from orca.aws_errors import AwsErrorKind, Disposition
from orca.failure_types import FailureType

UNCLASSIFIED_ERROR_ATTEMPTS = 8
"""Attempts an activity gets for an AWS error code ORCA does not know (about 4 minutes with the
workflow's backoff of 2 s doubling to 1 min), before the pod fails and its instance is
terminated."""

P = ParamSpec("P")
R = TypeVar("R")


def aws_failure(
    error: BaseException, attempt: int, *, permanent: bool = True
) -> ApplicationError | None:
    """The `ApplicationError` an AWS error becomes at the activity boundary; None if `error`
    is not an AWS error (it is raised unchanged)."""
    if not isinstance(error, botocore.exceptions.BotoCoreError | botocore.exceptions.ClientError):
        return None
    kind = aws_errors.classify(error)
    what = aws_errors.describe(error)
    answer = aws_errors.disposition(error)
    if answer is Disposition.FAIL and permanent:
        if kind is AwsErrorKind.ACCESS_DENIED:
            return ApplicationError(
                f"{what} (check the IAM policy: deploy/iam/orca-controller-policy.json)",
                type=FailureType.AWS_ACCESS_DENIED,
                non_retryable=True,
            )
        return ApplicationError(what, type=FailureType.CONFIGURATION, non_retryable=True)
    if kind is AwsErrorKind.CREDENTIALS_REJECTED:
        return ApplicationError(
            f"{what} (AWS rejected ORCA's credentials; retrying until they are fixed)",
            type=FailureType.AWS_CREDENTIALS_REJECTED,
        )
    if answer is Disposition.RETRY_BOUNDED and permanent:
        if attempt >= UNCLASSIFIED_ERROR_ATTEMPTS:
            return ApplicationError(
                f"{what} (unrecognised AWS error; gave up after {attempt} attempts)",
                type=FailureType.AWS_CALL_FAILED,
                non_retryable=True,
            )
        return ApplicationError(
            f"{what} (unrecognised AWS error; attempt {attempt} of {UNCLASSIFIED_ERROR_ATTEMPTS})",
            type=FailureType.AWS_TRANSIENT,
        )
    return ApplicationError(what, type=FailureType.AWS_TRANSIENT)


def fails_on_aws_errors(
    *, permanent: bool = True
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Decorate an async activity (below `@activity.defn`) so its AWS errors are classified."""

    def decorate(run: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(run)
        async def classified(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return await run(*args, **kwargs)
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
                # In a thread: naming the call loads botocore's service models once (~0.5 s).
                failure = await asyncio.to_thread(
                    aws_failure, error, activity.info().attempt, permanent=permanent
                )
                if failure is None:  # pragma: no cover - both types are AWS errors
                    raise
                activity.logger.warning(
                    "AWS call failed",
                    extra={
                        "aws_error": failure.message,
                        "failure_type": failure.type,
                        "retrying": not failure.non_retryable,
                    },
                )
                raise failure from None

        return classified

    return decorate
