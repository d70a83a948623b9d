"""The one AWS error classifier and the activity boundary's answer for each class.

Errors are built the way botocore builds them from a response (`ClientError(parsed, operation)`),
or are botocore's own exception classes; the same errors from the AWS emulator over HTTP are in
tests/activities/test_aws_failures.py.
"""

from __future__ import annotations

import botocore.exceptions
import pytest
from botocore.exceptions import ClientError

from orca import aws_errors
from orca.activities.aws_failures import UNCLASSIFIED_ERROR_ATTEMPTS, aws_failure
from orca.aws_errors import AwsErrorKind, Disposition
from orca.failure_types import POD_FAILURES, FailureType


def client_error(code: str, operation: str = "SendCommand", status: int = 400) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": f"{code} happened"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        operation,
    )


@pytest.mark.parametrize(
    ("code", "kind", "answer"),
    [
        ("InsufficientInstanceCapacity", AwsErrorKind.CAPACITY, Disposition.RETRY),
        ("RequestLimitExceeded", AwsErrorKind.THROTTLED, Disposition.RETRY),
        ("ThrottlingException", AwsErrorKind.THROTTLED, Disposition.RETRY),
        ("InvalidInstanceID.NotFound", AwsErrorKind.NOT_FOUND, Disposition.RETRY),
        ("ParameterNotFound", AwsErrorKind.NOT_FOUND, Disposition.FAIL),
        ("ResourceNotFoundException", AwsErrorKind.NOT_FOUND, Disposition.FAIL),
        ("AccessDenied", AwsErrorKind.ACCESS_DENIED, Disposition.FAIL),
        ("AccessDeniedException", AwsErrorKind.ACCESS_DENIED, Disposition.FAIL),
        ("UnauthorizedOperation", AwsErrorKind.ACCESS_DENIED, Disposition.FAIL),
        ("InvalidParameterValue", AwsErrorKind.CONFIGURATION, Disposition.FAIL),
        ("InvalidAMIID.NotFound", AwsErrorKind.CONFIGURATION, Disposition.FAIL),
        ("MalformedPolicyDocument", AwsErrorKind.CONFIGURATION, Disposition.FAIL),
        ("PackedPolicyTooLarge", AwsErrorKind.CONFIGURATION, Disposition.FAIL),
        ("AuthFailure", AwsErrorKind.CREDENTIALS_REJECTED, Disposition.RETRY),
        ("InvalidClientTokenId", AwsErrorKind.CREDENTIALS_REJECTED, Disposition.RETRY),
        ("SignatureDoesNotMatch", AwsErrorKind.CREDENTIALS_REJECTED, Disposition.RETRY),
        ("ExpiredToken", AwsErrorKind.CREDENTIALS_REJECTED, Disposition.RETRY),
        ("UnrecognizedClientException", AwsErrorKind.CREDENTIALS_REJECTED, Disposition.RETRY),
        ("InternalError", AwsErrorKind.TRANSIENT, Disposition.RETRY),
        ("ServiceUnavailable", AwsErrorKind.TRANSIENT, Disposition.RETRY),
        ("SomethingNobodyKnows", AwsErrorKind.UNCLASSIFIED, Disposition.RETRY_BOUNDED),
    ],
)
def test_codes_are_classified(code: str, kind: AwsErrorKind, answer: Disposition) -> None:
    error = client_error(code)
    assert aws_errors.classify(error) is kind
    assert aws_errors.disposition(error) is answer


def test_botocore_exceptions_without_a_code_are_classified() -> None:
    no_credentials = botocore.exceptions.NoCredentialsError()
    assert aws_errors.classify(no_credentials) is AwsErrorKind.CREDENTIALS_REJECTED
    no_region = botocore.exceptions.NoRegionError()
    assert aws_errors.classify(no_region) is AwsErrorKind.CONFIGURATION
    assert aws_errors.disposition(no_region) is Disposition.FAIL
    unreachable = botocore.exceptions.EndpointConnectionError(endpoint_url="https://ssm")
    assert aws_errors.classify(unreachable) is AwsErrorKind.TRANSIENT
    timeout = botocore.exceptions.ReadTimeoutError(endpoint_url="https://ec2")
    assert aws_errors.classify(timeout) is AwsErrorKind.TRANSIENT
    assert aws_errors.classify(ValueError("not AWS")) is AwsErrorKind.UNCLASSIFIED


def test_a_server_error_without_a_code_is_transient() -> None:
    error = ClientError({"Error": {}, "ResponseMetadata": {"HTTPStatusCode": 503}}, "GetParameter")
    assert aws_errors.classify(error) is AwsErrorKind.TRANSIENT


def test_the_failed_call_is_named_as_iam_spells_it() -> None:
    assert aws_errors.aws_call(client_error("AccessDenied", "SendCommand")) == "ssm:SendCommand"
    assert aws_errors.aws_call(client_error("X", "FilterLogEvents")) == "logs:FilterLogEvents"
    assert aws_errors.aws_call(client_error("X", "RunInstances")) == "ec2:RunInstances"
    assert aws_errors.aws_call(client_error("X", "AssumeRole")) == "sts:AssumeRole"
    describe = client_error("X", "DescribeSecret")
    assert aws_errors.aws_call(describe) == "secretsmanager:DescribeSecret"
    assert aws_errors.aws_call(botocore.exceptions.NoRegionError()) is None
    assert aws_errors.describe(client_error("AccessDenied", "SendCommand")) == (
        "ssm:SendCommand AccessDenied: AccessDenied happened"
    )


def test_access_denied_fails_the_pod_naming_the_call() -> None:
    failure = aws_failure(client_error("AccessDenied", "SendCommand"), attempt=1)
    assert failure is not None
    assert failure.type == FailureType.AWS_ACCESS_DENIED
    assert failure.non_retryable
    assert failure.type in POD_FAILURES
    assert failure.message.startswith("ssm:SendCommand AccessDenied: ")


@pytest.mark.parametrize(
    "error",
    [
        client_error("InvalidParameterValue", "RunInstances"),
        client_error("ParameterNotFound", "GetParameter"),
        botocore.exceptions.NoRegionError(),
    ],
)
def test_configuration_errors_fail_the_pod(error: Exception) -> None:
    failure = aws_failure(error, attempt=1)
    assert failure is not None
    assert failure.type == FailureType.CONFIGURATION
    assert failure.non_retryable


@pytest.mark.parametrize(
    "error",
    [
        client_error("ExpiredToken", "FilterLogEvents"),
        client_error("AuthFailure", "DescribeInstances"),
        botocore.exceptions.NoCredentialsError(),
    ],
)
def test_rejected_credentials_are_retried_for_ever(error: Exception) -> None:
    failure = aws_failure(error, attempt=10_000)
    assert failure is not None
    assert failure.type == FailureType.AWS_CREDENTIALS_REJECTED
    assert not failure.non_retryable
    assert failure.type not in POD_FAILURES


@pytest.mark.parametrize(
    "code", ["RequestLimitExceeded", "InternalError", "InsufficientInstanceCapacity"]
)
def test_throttling_capacity_and_transient_errors_are_retried(code: str) -> None:
    failure = aws_failure(client_error(code, "RunInstances"), attempt=10_000)
    assert failure is not None
    assert failure.type == FailureType.AWS_TRANSIENT
    assert not failure.non_retryable


def test_unclassified_errors_are_retried_within_a_budget_then_fail_the_pod() -> None:
    error = client_error("SomethingNobodyKnows", "SendCommand")
    for attempt in range(1, UNCLASSIFIED_ERROR_ATTEMPTS):
        failure = aws_failure(error, attempt=attempt)
        assert failure is not None
        assert not failure.non_retryable, attempt
    last = aws_failure(error, attempt=UNCLASSIFIED_ERROR_ATTEMPTS)
    assert last is not None
    assert last.non_retryable
    assert last.type == FailureType.AWS_CALL_FAILED
    assert last.type in POD_FAILURES
    assert "ssm:SendCommand SomethingNobodyKnows" in last.message


def test_when_stopping_spending_even_permanent_errors_are_retried() -> None:
    for error in (
        client_error("AccessDenied", "TerminateInstances"),
        client_error("SomethingNobodyKnows", "TerminateInstances"),
    ):
        failure = aws_failure(error, attempt=UNCLASSIFIED_ERROR_ATTEMPTS, permanent=False)
        assert failure is not None
        assert not failure.non_retryable
        assert "ec2:TerminateInstances" in failure.message


def test_errors_that_are_not_aws_errors_are_left_alone() -> None:
    assert aws_failure(ValueError("bug"), attempt=1) is None


@pytest.mark.parametrize(
    ("code", "status", "hint"),
    [
        ("AccessDenied", 403, "the watcher's IAM role needs ssm:SendCommand"),
        ("InvalidInstanceId", 404, "SSM agent is not reachable"),
        ("ThrottlingException", 429, "throttling"),
        ("InternalServerError", 500, "ssm:SendCommand InternalServerError"),
    ],
)
def test_a_failed_exec_call_says_what_to_fix(code: str, status: int, hint: str) -> None:
    answer, message = aws_errors.exec_refusal(client_error(code, "SendCommand"))
    assert answer == status
    assert message.startswith(f"ssm:SendCommand {code}: ")
    assert hint in message


def test_volume_attachment_errors_wait_refuse_or_mean_done() -> None:
    in_use = client_error("VolumeInUse", "AttachVolume")
    assert aws_errors.is_volume_in_use(in_use)
    assert aws_errors.volume_attach_refusal(in_use) is None
    zone = aws_errors.volume_attach_refusal(
        client_error("InvalidVolume.ZoneMismatch", "AttachVolume")
    )
    assert zone is not None
    assert zone.startswith("ec2:AttachVolume InvalidVolume.ZoneMismatch: ")
    assert "availability zones" in zone
    limit = aws_errors.volume_attach_refusal(
        client_error("AttachmentLimitExceeded", "AttachVolume")
    )
    assert limit is not None
    assert "larger instance type" in limit
    assert aws_errors.is_volume_not_attached(client_error("IncorrectState", "DetachVolume"))
    assert not aws_errors.is_volume_not_attached(in_use)
