"""EventBridge messages from the interruption queue, parsed into ORCA's closed set of kinds.

After Karpenter's `controllers/interruption/messages`: the SQS body is the EventBridge event itself
(a rule targeting SQS sends it unwrapped). One message may name several instances (an AWS Health
scheduled change lists every affected instance). Everything else is `Unknown`: logged and deleted,
never retried forever.

- "EC2 Spot Instance Interruption Warning": the instance is reclaimed two minutes after the
  event's `time` (the event carries only the action, the exact time is in instance metadata);
- "EC2 Instance Rebalance Recommendation": an earlier, noisier risk signal;
- "EC2 Instance State-change Notification": only states that end the instance's usefulness
  (stopping, stopped, shutting-down, terminated); pending and running are ORCA's own doing;
- "AWS Health Event" with `eventTypeCategory` `scheduledChange` for EC2: maintenance, retirement.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from orca.instance_state import ENDING_STATES
from orca.workflows.models import InterruptionKind, InterruptionNotice

SPOT_WARNING = "EC2 Spot Instance Interruption Warning"
REBALANCE = "EC2 Instance Rebalance Recommendation"
STATE_CHANGE = "EC2 Instance State-change Notification"
HEALTH_EVENT = "AWS Health Event"
SPOT_NOTICE = timedelta(minutes=2)


@dataclass(frozen=True)
class ParsedMessage:
    """What one queue message says: notices to deliver, or why there are none."""

    notices: tuple[InterruptionNotice, ...]
    event_id: str = ""
    ignored_reason: str = ""
    """Set when there is nothing to deliver (unknown event, irrelevant state, malformed)."""


def parse_interruption_message(body: str) -> ParsedMessage:
    try:
        event = json.loads(body)
    except ValueError as error:
        return ParsedMessage((), ignored_reason=f"not JSON: {error}")
    if not isinstance(event, dict):
        return ParsedMessage((), ignored_reason="not a JSON object")
    event_id = str(event.get("id") or "")
    detail_type = event.get("detail-type")
    raw_detail = event.get("detail")
    detail: dict[str, Any] = raw_detail if isinstance(raw_detail, dict) else {}
    at = _parse_time(event.get("time"))
    try:
        notices = _notices(str(detail_type), detail, at)
    except (KeyError, TypeError, ValueError) as error:
        return ParsedMessage((), event_id, f"malformed {detail_type!r} event: {error!r}")
    if isinstance(notices, str):
        return ParsedMessage((), event_id, notices)
    return ParsedMessage(tuple(notices), event_id)


def _notices(
    detail_type: str, detail: dict[str, Any], at: datetime | None
) -> list[InterruptionNotice] | str:
    if detail_type == SPOT_WARNING:
        action = str(detail.get("instance-action") or "terminate")
        return [
            InterruptionNotice(
                kind=InterruptionKind.SPOT_INTERRUPTION,
                instance_id=str(detail["instance-id"]),
                time=at + SPOT_NOTICE if at else None,
                detail=f"EC2 will {action} this Spot instance in two minutes",
            )
        ]
    if detail_type == REBALANCE:
        return [
            InterruptionNotice(
                kind=InterruptionKind.REBALANCE_RECOMMENDATION,
                instance_id=str(detail["instance-id"]),
                time=at,
                detail="EC2 recommends rebalancing: this Spot instance is at elevated risk",
            )
        ]
    if detail_type == STATE_CHANGE:
        state = str(detail["state"])
        if state not in ENDING_STATES:
            return f"state-change to {state!r} needs no action"
        return [
            InterruptionNotice(
                kind=InterruptionKind.STATE_CHANGE,
                instance_id=str(detail["instance-id"]),
                time=at,
                state=state,
                detail=f"the instance is {state}",
            )
        ]
    if detail_type == HEALTH_EVENT:
        if detail.get("service") != "EC2" or detail.get("eventTypeCategory") != "scheduledChange":
            return "AWS Health event that is not an EC2 scheduled change"
        start = _parse_health_time(detail.get("startTime")) or at
        description = _health_description(detail)
        instances = [
            str(entity["entityValue"])
            for entity in detail.get("affectedEntities") or []
            if str(entity.get("entityValue", "")).startswith("i-")
        ]
        if not instances:
            return "scheduled change names no instance"
        return [
            InterruptionNotice(
                kind=InterruptionKind.SCHEDULED_CHANGE,
                instance_id=instance_id,
                time=start,
                detail=f"{detail.get('eventTypeCode', 'scheduled change')}: {description}"[:500],
            )
            for instance_id in instances
        ]
    return f"unknown event {detail_type!r}"


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _parse_health_time(value: Any) -> datetime | None:
    """AWS Health writes `Sat, 05 Jun 2021 14:00:00 GMT` in events; accept ISO 8601 too."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return _parse_time(value)


def _health_description(detail: dict[str, Any]) -> str:
    for item in detail.get("eventDescription") or []:
        if item.get("latestDescription"):
            return str(item["latestDescription"])
    return "scheduled maintenance"
