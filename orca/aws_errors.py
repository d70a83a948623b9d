"""The one place that reads AWS error codes. Callers ask questions; they never parse codes.

Classes, after Karpenter's `pkg/errors`:
- capacity: this offering (type x zone x capacity type) cannot be had now; try the next one and
  remember it for a few minutes;
- throttled: the account's token bucket is empty; retry the same call with jittered backoff;
- not found: the thing is gone or not there yet. Callers that expect it ask `is_not_found`
  (terminating a terminated instance is success); one that escapes to an activity is permanent
  only for the things ORCA's configuration names (`PERMANENT_NOT_FOUND_ERROR_CODES`: an SSM
  parameter, a log group, a queue) and transient otherwise (a just-launched instance);
- access denied / invalid configuration: retrying will not help; a person must fix IAM or config;
- credentials rejected: AWS does not accept *who* is calling (expired token, wrong key). It is not
  the pod's fault and an operator fixes it for every pod at once, so it is retried for as long as
  it lasts; the node-health probe reports it on the virtual node;
- transient: the service or the network failed (5xx, timeouts); retried;
- unclassified: a code this module does not know; retried with a bounded budget, then permanent.

`disposition` answers the one question the activity boundary asks (`activities/aws_failures.py`):
fail the pod, retry for ever, or retry a bounded number of times.
"""

from __future__ import annotations

from enum import StrEnum
from functools import cache

import botocore.exceptions
import botocore.session

CAPACITY_ERROR_CODES = frozenset(
    {
        "InsufficientInstanceCapacity",
        "InsufficientHostCapacity",
        "InsufficientReservedInstanceCapacity",
        "InsufficientCapacityOnOutpost",
        "InstanceLimitExceeded",
        "VcpuLimitExceeded",
        "MaxSpotInstanceCountExceeded",
        "SpotMaxPriceTooLow",
        "Unsupported",
        "UnfulfillableCapacity",
        "InsufficientFreeAddressesInSubnet",
        "ReservationCapacityExceeded",
    }
)
THROTTLING_ERROR_CODES = frozenset(
    {"RequestLimitExceeded", "Throttling", "ThrottlingException", "TooManyRequestsException"}
)
NOT_FOUND_ERROR_CODES = frozenset(
    {
        "InvalidInstanceID.NotFound",
        "InvalidInstanceID.Malformed",
        "InvalidCommandId",
        "InvalidInstanceId",
        "ParameterNotFound",
        "ResourceNotFoundException",
        "AWS.SimpleQueueService.NonExistentQueue",
        "InvalidParameter.NotFound",
        "InvalidVolume.NotFound",
    }
)
PERMANENT_NOT_FOUND_ERROR_CODES = frozenset(
    {"ParameterNotFound", "ResourceNotFoundException", "AWS.SimpleQueueService.NonExistentQueue"}
)
"""Not-found codes about things ORCA's settings name; no retry makes them appear."""
ACCESS_ERROR_CODES = frozenset(
    {
        "UnauthorizedOperation",
        "AccessDenied",
        "AccessDeniedException",
        "OptInRequired",
        "Blocked",
    }
)
CREDENTIALS_ERROR_CODES = frozenset(
    {
        "AuthFailure",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
        "UnrecognizedClientException",
        "InvalidAccessKeyId",
        "MissingAuthenticationToken",
    }
)
TRANSIENT_ERROR_CODES = frozenset(
    {
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "InternalServerException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "Unavailable",
        "RequestTimeout",
        "RequestTimeoutException",
        "IncorrectState",
        "IncorrectInstanceState",
    }
)
CONFIGURATION_ERROR_CODES = frozenset(
    {
        "InvalidSubnetID.NotFound",
        "InvalidGroup.NotFound",
        "InvalidAMIID.NotFound",
        "InvalidAMIID.Malformed",
        "InvalidParameterValue",
        "InvalidParameterCombination",
        "InvalidCapacityReservationId.NotFound",
        "InvalidBlockDeviceMapping",
        "IdempotentParameterMismatch",
        "InvalidParameter",
        "InvalidParameterException",
        "InvalidDocument",
        "ValidationError",
        "ValidationException",
        "MissingParameter",
        "InvalidKeyPair.NotFound",
        "InvalidParameterValueException",
        "MalformedPolicyDocument",
        "PackedPolicyTooLarge",
    }
)


class AwsErrorKind(StrEnum):
    CAPACITY = "capacity"
    THROTTLED = "throttled"
    NOT_FOUND = "not-found"
    ACCESS_DENIED = "access-denied"
    CREDENTIALS_REJECTED = "credentials-rejected"
    CONFIGURATION = "configuration"
    TRANSIENT = "transient"
    UNCLASSIFIED = "unclassified"


class Disposition(StrEnum):
    """What an activity does with an AWS error nobody handled closer to the call."""

    FAIL = "fail"
    """Permanent: fail the pod (and terminate what it launched); a person must act."""
    RETRY = "retry"
    """Retry with backoff for as long as it lasts."""
    RETRY_BOUNDED = "retry-bounded"
    """Unknown: retry a bounded number of times, then fail the pod."""


_CONNECTION_ERRORS = (
    botocore.exceptions.ConnectionError,
    botocore.exceptions.HTTPClientError,
    botocore.exceptions.ConnectionClosedError,
)


def error_code(error: BaseException) -> str | None:
    if isinstance(error, botocore.exceptions.ClientError):
        code = error.response.get("Error", {}).get("Code")
        return str(code) if code else None
    return None


def classify_code(code: str | None) -> AwsErrorKind:
    if code in CAPACITY_ERROR_CODES:
        return AwsErrorKind.CAPACITY
    if code in THROTTLING_ERROR_CODES:
        return AwsErrorKind.THROTTLED
    if code in NOT_FOUND_ERROR_CODES:
        return AwsErrorKind.NOT_FOUND
    if code in ACCESS_ERROR_CODES:
        return AwsErrorKind.ACCESS_DENIED
    if code in CREDENTIALS_ERROR_CODES:
        return AwsErrorKind.CREDENTIALS_REJECTED
    if code in CONFIGURATION_ERROR_CODES:
        return AwsErrorKind.CONFIGURATION
    if code in TRANSIENT_ERROR_CODES:
        return AwsErrorKind.TRANSIENT
    return AwsErrorKind.UNCLASSIFIED


def classify(error: BaseException) -> AwsErrorKind:
    if isinstance(error, botocore.exceptions.NoCredentialsError):
        return AwsErrorKind.CREDENTIALS_REJECTED
    if isinstance(error, botocore.exceptions.NoRegionError):
        return AwsErrorKind.CONFIGURATION
    if isinstance(error, _CONNECTION_ERRORS):
        return AwsErrorKind.TRANSIENT
    if isinstance(error, botocore.exceptions.ClientError):
        code = error_code(error)
        if code is None:  # no code: judge by the HTTP status alone
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            return AwsErrorKind.TRANSIENT if status >= 500 else AwsErrorKind.UNCLASSIFIED
        return classify_code(code)
    return AwsErrorKind.UNCLASSIFIED


def disposition(error: BaseException) -> Disposition:
    """Fail, retry, or retry a bounded number of times: the activity boundary's question."""
    kind = classify(error)
    if kind in (AwsErrorKind.ACCESS_DENIED, AwsErrorKind.CONFIGURATION):
        return Disposition.FAIL
    if kind is AwsErrorKind.NOT_FOUND:
        code = error_code(error)
        return Disposition.FAIL if code in PERMANENT_NOT_FOUND_ERROR_CODES else Disposition.RETRY
    if kind is AwsErrorKind.UNCLASSIFIED:
        return Disposition.RETRY_BOUNDED
    return Disposition.RETRY  # capacity (when not handled as a result), throttled, credentials


VOLUME_REFUSAL_ERROR_CODES = frozenset(
    {
        "InvalidParameterValue",
        "InvalidParameterCombination",
        "InvalidParameter",
        "MissingParameter",
        "InvalidZone.NotFound",
        "InvalidKMSKey.Id",
        "InvalidKMSKey.State",
        "InvalidKMSKey.KeyState",
        "KMSKeyNotAccessibleFault",
        "KMS.NotFoundException",
        "IdempotentParameterMismatch",
        "VolumeLimitExceeded",
        "MaxIOPSLimitExceeded",
        "UnauthorizedOperation",
    }
)
"""`CreateVolume` refusals that no retry changes: the class asks for what the account or EBS
does not allow (a KMS key ORCA cannot use, a volume quota, a zone it does not have); the claim
gets a `ProvisioningFailed` event and no volume."""
VOLUME_BUSY_ERROR_CODES = frozenset({"VolumeInUse", "IncorrectState"})
"""`DeleteVolume` of a volume still attached (or attaching/detaching): wait and try again."""


def is_volume_refusal(error: BaseException) -> bool:
    """A `CreateVolume` refusal that will not change by retrying (see the codes above)."""
    return error_code(error) in VOLUME_REFUSAL_ERROR_CODES or classify(error) in (
        AwsErrorKind.ACCESS_DENIED,
    )


def is_volume_busy(error: BaseException) -> bool:
    """DeleteVolume: the volume is still attached, attaching or detaching."""
    return error_code(error) in VOLUME_BUSY_ERROR_CODES


def is_credentials_rejected(error: BaseException) -> bool:
    return classify(error) is AwsErrorKind.CREDENTIALS_REJECTED


def is_not_found(error: BaseException) -> bool:
    return classify(error) is AwsErrorKind.NOT_FOUND


_SERVICES = ("ec2", "ssm", "logs", "sqs", "sts", "secretsmanager", "pricing")
"""The services ORCA calls, in the order an ambiguous operation name is attributed."""


@cache
def _service_of_operation() -> dict[str, str]:
    """Operation name → IAM prefix of the service, from botocore's own service models."""
    session = botocore.session.get_session()
    services: dict[str, str] = {}
    for service in reversed(_SERVICES):
        model = session.get_service_model(service)
        prefix = model.signing_name or service
        services.update(dict.fromkeys(model.operation_names, prefix))
    return services


def aws_call(error: BaseException) -> str | None:
    """The failed call as IAM spells it (`ssm:SendCommand`), when the error names one."""
    operation = getattr(error, "operation_name", None)
    if not operation:
        return None
    service = _service_of_operation().get(operation)
    return f"{service}:{operation}" if service else str(operation)


def describe(error: BaseException) -> str:
    """One line a person can act on: `ssm:SendCommand AccessDenied: <AWS's message>`."""
    call = aws_call(error)
    code = error_code(error) or type(error).__name__
    head = f"{call} {code}" if call else code
    return f"{head}: {error_message(error)}"


def error_message(error: BaseException) -> str:
    if isinstance(error, botocore.exceptions.ClientError):
        return str(error.response.get("Error", {}).get("Message") or error)
    return str(error)


COMMAND_FINISHED_STATUSES = frozenset({"Success", "Failed"})
"""Invocation statuses whose ResponseCode is the script's own exit code."""
COMMAND_UNDELIVERED_STATUSES = frozenset(
    {
        "Cancelled",
        "TimedOut",
        "DeliveryTimedOut",
        "ExecutionTimedOut",
        "Undeliverable",
        "Terminated",
    }
)
"""Invocation statuses that say the script did not run to its end (agent offline, instance gone,
timeout): no exit code of the command's."""


def exec_refusal(error: BaseException) -> tuple[int, str]:
    """The HTTP code and message `kubectl exec` gets when an AWS call behind it fails."""
    kind = classify(error)
    text = describe(error)
    if kind is AwsErrorKind.ACCESS_DENIED:
        return 403, f"{text} (the watcher's IAM role needs ssm:SendCommand, see docs/exec.md)"
    if kind is AwsErrorKind.NOT_FOUND:
        return 404, f"{text} (the pod's instance or its SSM agent is not reachable)"
    if kind is AwsErrorKind.THROTTLED:
        return 429, f"{text} (AWS is throttling; try again)"
    return 500, text


# -- AttachVolume / DetachVolume (the pod lifecycle's volume attachments) ---------------------
VOLUME_IN_USE_ERROR_CODES = frozenset({"VolumeInUse"})
"""AttachVolume: the volume is attached to another instance (a previous incarnation of the pod,
or a previous pod still being terminated). Wait until it is available and attach again."""
VOLUME_NOT_ATTACHED_ERROR_CODES = frozenset({"IncorrectState", "InvalidAttachment.NotFound"})
"""DetachVolume: the volume is not attached (any more) to that instance; detaching is done."""
VOLUME_REFUSAL_MESSAGES = {
    "InvalidVolume.ZoneMismatch": (
        "the volume and the instance are in different availability zones; a pod's EBS volumes "
        "can only be attached to an instance in the volume's zone"
    ),
    "AttachmentLimitExceeded": (
        "the instance type cannot take another EBS attachment; ask for fewer volumes or a "
        "larger instance type"
    ),
    "InvalidVolume.NotFound": (
        "the EBS volume does not exist (any more); check the PersistentVolume's volume ID"
    ),
    "InvalidVolume.Malformed": "the PersistentVolume names a malformed EBS volume ID",
}
"""AttachVolume errors no retry fixes, with what a person can do about them."""


def is_volume_in_use(error: BaseException) -> bool:
    return error_code(error) in VOLUME_IN_USE_ERROR_CODES


def is_volume_not_attached(error: BaseException) -> bool:
    return error_code(error) in VOLUME_NOT_ATTACHED_ERROR_CODES


def volume_attach_refusal(error: BaseException) -> str | None:
    """The reason an AttachVolume can never succeed (`describe` + what to do), or None."""
    hint = VOLUME_REFUSAL_MESSAGES.get(error_code(error) or "")
    return f"{describe(error)} ({hint})" if hint else None
