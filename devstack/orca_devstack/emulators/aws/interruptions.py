"""EventBridge events for EC2, shaped exactly as AWS delivers them to an SQS target.

The SQS message body is the event JSON itself (an EventBridge rule targeting SQS sends the event
unwrapped). Shapes follow the EC2 User Guide: "Spot Instance interruption notices", "EC2 instance
rebalance recommendations" and "Instance state-change events". Note the quirk AWS documents and
sends for the spot warning: its resource ARN carries the *zone* and no account
(``arn:aws:ec2:us-west-2a:instance/i-...``); the other two carry region and account. Consumers
should read ``detail["instance-id"]``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class InterruptionKind(StrEnum):
    """What ``control.interrupt`` can do to an instance."""

    SPOT_INTERRUPTION = "spot-interruption"
    """Spot Instance Interruption Warning, then termination after the notice period."""
    REBALANCE = "rebalance"
    """Rebalance Recommendation only; the instance keeps running."""
    INSTANCE_LOST = "instance-lost"
    """Terminated at once by AWS (hardware failure): state-change notifications only."""


SPOT_WARNING = "EC2 Spot Instance Interruption Warning"
REBALANCE_RECOMMENDATION = "EC2 Instance Rebalance Recommendation"
STATE_CHANGE = "EC2 Instance State-change Notification"


def aws_time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _event(
    detail_type: str,
    *,
    account: str,
    region: str,
    at: datetime,
    resources: list[str],
    detail: dict[str, Any],
) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": "aws.ec2",
        "account": account,
        "time": aws_time(at),
        "region": region,
        "resources": resources,
        "detail": detail,
    }


def instance_arn(instance_id: str, *, region: str, account: str) -> str:
    return f"arn:aws:ec2:{region}:{account}:instance/{instance_id}"


def spot_interruption_warning(
    instance_id: str,
    *,
    account: str,
    region: str,
    zone: str,
    at: datetime,
    action: str = "terminate",
) -> dict[str, Any]:
    return _event(
        SPOT_WARNING,
        account=account,
        region=region,
        at=at,
        resources=[f"arn:aws:ec2:{zone}:instance/{instance_id}"],
        detail={"instance-id": instance_id, "instance-action": action},
    )


def rebalance_recommendation(
    instance_id: str, *, account: str, region: str, at: datetime
) -> dict[str, Any]:
    return _event(
        REBALANCE_RECOMMENDATION,
        account=account,
        region=region,
        at=at,
        resources=[instance_arn(instance_id, region=region, account=account)],
        detail={"instance-id": instance_id},
    )


def state_change_notification(
    instance_id: str, state: str, *, account: str, region: str, at: datetime
) -> dict[str, Any]:
    return _event(
        STATE_CHANGE,
        account=account,
        region=region,
        at=at,
        resources=[instance_arn(instance_id, region=region, account=account)],
        detail={"instance-id": instance_id, "state": state},
    )
