"""The one place that reads AWS error codes. Callers ask questions; they never parse codes.

Classes, after Karpenter's `pkg/errors`:
- capacity: this offering (type x zone x capacity type) cannot be had now; try the next one and
  remember it for a few minutes;
- throttled: the account's token bucket is empty; retry the same call with jittered backoff;
- not found: the thing is already gone (terminating a terminated instance is success);
- access denied / invalid configuration: retrying will not help; a person must fix IAM or config;
- everything else is transient and retried.
"""

from __future__ import annotations

from enum import StrEnum

import botocore.exceptions

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
    }
)
ACCESS_ERROR_CODES = frozenset(
    {
        "UnauthorizedOperation",
        "AccessDenied",
        "AccessDeniedException",
        "AuthFailure",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "UnrecognizedClientException",
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
    }
)


class AwsErrorKind(StrEnum):
    CAPACITY = "capacity"
    THROTTLED = "throttled"
    NOT_FOUND = "not-found"
    ACCESS_DENIED = "access-denied"
    CONFIGURATION = "configuration"
    TRANSIENT = "transient"


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
    if code in CONFIGURATION_ERROR_CODES:
        return AwsErrorKind.CONFIGURATION
    return AwsErrorKind.TRANSIENT


def classify(error: BaseException) -> AwsErrorKind:
    if isinstance(
        error, botocore.exceptions.NoCredentialsError | botocore.exceptions.NoRegionError
    ):
        return AwsErrorKind.ACCESS_DENIED
    return classify_code(error_code(error))


def is_capacity_error(error: BaseException) -> bool:
    return classify(error) is AwsErrorKind.CAPACITY


def is_not_found(error: BaseException) -> bool:
    return classify(error) is AwsErrorKind.NOT_FOUND


def error_message(error: BaseException) -> str:
    if isinstance(error, botocore.exceptions.ClientError):
        return str(error.response.get("Error", {}).get("Message") or error)
    return str(error)
