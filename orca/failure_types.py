"""The stable vocabulary of non-retryable failures (`ApplicationError.type`).

Activities raise `ApplicationError(message, type=FailureType.X, non_retryable=True)`; the workflow
matches on these names and fails with them, so the Temporal UI and `orca status` show the same
word a pod event shows. `AwsCredentialsRejected` and `AwsTransient` name *retryable* activity
errors (so the UI says what is being retried). The `POD_FAILURES` end the pod as Failed *and*
fail its workflow; the last group are reasons ORCA itself gives a pod it ends as Failed while
its workflow completes normally (the pod's `status.reason`, never an activity error). One word
per reason, wherever it is written: the values are recorded in histories and pod statuses.
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
    """AWS refused the call: the IAM policy (or an SCP) needs fixing; the message names the call."""
    AWS_CALL_FAILED = "AwsCallFailed"
    """An AWS call kept failing with an error ORCA does not recognise; it gave up."""
    AWS_CREDENTIALS_REJECTED = "AwsCredentialsRejected"
    """Retryable: AWS rejected ORCA's credentials; retried until an operator fixes them."""
    AWS_TRANSIENT = "AwsTransient"
    """Retryable: throttling, a service error or the network; retried with backoff."""
    # Reasons for a pod ORCA fails itself (its workflow completes):
    DRY_RUN = "DryRun"
    """ORCA runs in dry-run mode: the pod was planned, nothing was launched."""
    SPOT_INTERRUPTED = "SpotInterrupted"
    """EC2 sent a spot interruption notice; the containers were stopped before it struck."""
    EVICTED = "Evicted"
    """EC2 announced a rebalance recommendation or scheduled maintenance; the pod was evicted."""
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    """The pod reached its max lifetime and was stopped."""
    IDLE = "Idle"
    """The pod's accelerators stayed idle for its `idle-timeout` and it was stopped."""
    WORKFLOW_ENDED = "WorkflowEnded"
    """The orphan sweep failed a pod whose workflow had closed without finishing it."""


POD_FAILURES = frozenset(
    {
        FailureType.INVALID_POD_SPEC,
        FailureType.INSUFFICIENT_CAPACITY,
        FailureType.BUDGET_EXCEEDED,
        FailureType.CONFIGURATION,
        FailureType.AWS_ACCESS_DENIED,
        FailureType.AWS_CALL_FAILED,
        FailureType.INSTANCE_LOST,
    }
)
"""The types that end a pod as Failed (the others only describe what is being retried)."""
