"""The stable vocabulary of non-retryable failures (`ApplicationError.type`).

Activities raise `ApplicationError(message, type=FailureType.X, non_retryable=True)`; the workflow
matches on these names and fails with them, so the Temporal UI and `orca status` show the same
word a pod event shows. Everything not listed here is retried with backoff.
"""

from __future__ import annotations

from enum import StrEnum


class FailureType(StrEnum):
    INVALID_POD_SPEC = "InvalidPodSpec"
    """The pod's annotations or spec cannot be launched; nothing was launched."""
    INSUFFICIENT_CAPACITY = "InsufficientCapacity"
    """No candidate offering had capacity for longer than `capacityGiveUpAfter`."""
    BUDGET_EXCEEDED = "BudgetExceeded"
    """A configured limit (instances, namespace quota) forbids another instance."""
    INSTANCE_LOST = "InstanceLost"
    """The instance stopped or vanished while the pod ran."""
    CONFIGURATION = "ConfigurationError"
    """ORCA's own settings cannot serve this pod (no subnets, missing AMI parameter, ...)."""
    AWS_ACCESS_DENIED = "AwsAccessDenied"
    """AWS refused the call: credentials or IAM policy need fixing."""
