"""The container status feed against the AWS emulator's CloudWatch Logs, over real HTTP.

One FilterLogEvents per interval covers every monitored pod; a pod is backfilled from its own
stream only when the feed cannot have seen its events (its containers started before the feed
was reading, e.g. before a worker restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orca.activities.container_status_feed import ContainerStatusFeed
from orca.aws_clients import AwsClients
from orca.instance_contract import (
    ContainerState,
    ContainerStateEvent,
    new_status_key,
    signed_status_line,
    status_key_parameter,
)
from orca.logging import redact_text
from orca.metrics import FORGED_STATUS_REPORTS
from orca.settings import AwsSettings
from orca_devstack.emulators.aws import AwsEmulator
from tests.fixtures.aws import AwsClientFactory

INTERVAL = 0.2


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


def write_state(
    logs: Any,
    group: str,
    pod_uid: str,
    state: str,
    key: str | None,
    *,
    stream: str | None = None,
) -> None:
    """What the instance script writes: one signed JSON line per container state change (`key`
    None: an unsigned line), in the pod's stream unless another is given."""
    stream = stream or pod_uid
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
    event = ContainerStateEvent(
        pod_uid=pod_uid, container="main", state=ContainerState(state), at=datetime.now(UTC)
    )
    message = json.dumps(event.to_line()) if key is None else signed_status_line(event, key)
    logs.put_log_events(
        logGroupName=group,
        logStreamName=stream,
        logEvents=[{"timestamp": int(time.time() * 1000), "message": message}],
    )


def store_key(ssm: Any, pod_uid: str) -> str:
    """The pod's status key, as `start_containers` stores it."""
    key = new_status_key()
    ssm.put_parameter(
        Name=status_key_parameter(pod_uid), Value=key, Type="SecureString", Overwrite=True
    )
    return key


async def eventually_states(feed: ContainerStatusFeed, pod_uid: str, count: int) -> list[str]:
    for _ in range(50):
        states = [e.state for e in feed.events(pod_uid)]
        if len(states) >= count:
            return states
        await asyncio.sleep(INTERVAL / 2)
    return [e.state for e in feed.events(pod_uid)]


async def test_expected_pods_need_no_backfill_and_others_get_one(
    aws: AwsEmulator, aws_client: AwsClientFactory
) -> None:
    group = f"/orca/status-{uuid.uuid4().hex[:6]}"
    logs = aws_client("logs")
    logs.create_log_group(logGroupName=group)
    settings = AwsSettings(region=aws.defaults.region, endpoint_url=aws.endpoint_url)
    feed = ContainerStatusFeed(AwsClients(settings), group, INTERVAL)

    # A pod whose containers started before this feed existed (another worker started them).
    earlier = str(uuid.uuid4())
    write_state(logs, group, earlier, "running", store_key(aws_client("ssm"), earlier))
    # A pod this worker starts: expect() before the start command, then its events arrive.
    mine = str(uuid.uuid4())
    key = new_status_key()
    feed.expect(mine, key)
    await asyncio.sleep(INTERVAL / 2)
    write_state(logs, group, mine, "waiting", key)
    write_state(logs, group, mine, "running", key)

    await feed.subscribe(mine, None)  # no start time: only expect() spares the backfill
    assert feed.backfill_calls == 0, "an expected pod was backfilled"
    assert await eventually_states(feed, mine, 2) == ["waiting", "running"]

    await feed.subscribe(earlier, datetime.now(UTC) - timedelta(hours=1))
    assert feed.backfill_calls == 1, "the earlier pod needs exactly one backfill call"
    assert [e.state for e in feed.events(earlier)] == ["running"]

    # Steady state: both pods together cost one call per interval, not one each.
    rounds_before = feed.calls
    await asyncio.sleep(INTERVAL * 5)
    assert 3 <= feed.calls - rounds_before <= 6
    feed.unsubscribe(mine)
    feed.unsubscribe(earlier)
    await feed.close()


async def test_reports_not_signed_by_the_pods_own_key_change_nothing_and_are_counted(
    aws: AwsEmulator, aws_client: AwsClientFactory
) -> None:
    """Any instance may append to any status stream (IAM cannot scope streams); only the pod's
    own instance knows the pod's key, so only its reports count."""
    group = f"/orca/status-{uuid.uuid4().hex[:6]}"
    logs = aws_client("logs")
    logs.create_log_group(logGroupName=group)
    settings = AwsSettings(region=aws.defaults.region, endpoint_url=aws.endpoint_url)
    feed = ContainerStatusFeed(AwsClients(settings), group, INTERVAL)
    victim, attacker = str(uuid.uuid4()), str(uuid.uuid4())
    victim_key, attacker_key = new_status_key(), new_status_key()
    feed.expect(victim, victim_key)
    feed.expect(attacker, attacker_key)
    await feed.subscribe(victim, None)
    await asyncio.sleep(INTERVAL / 2)
    write_state(logs, group, victim, "running", victim_key)
    assert await eventually_states(feed, victim, 1) == ["running"]
    before = FORGED_STATUS_REPORTS._value.get()

    # The attacker's instance, with its own key, names the victim: in the victim's stream,
    # unsigned, and in its own stream; and a copy of a well-signed victim line in its stream.
    write_state(logs, group, victim, "terminated", attacker_key)
    write_state(logs, group, victim, "terminated", None)
    write_state(logs, group, victim, "terminated", attacker_key, stream=attacker)
    write_state(logs, group, victim, "terminated", victim_key, stream=attacker)
    for _ in range(50):
        if FORGED_STATUS_REPORTS._value.get() - before >= 4:
            break
        await asyncio.sleep(INTERVAL / 2)
    assert FORGED_STATUS_REPORTS._value.get() - before == 4
    assert feed.forged >= 4
    assert [e.state for e in feed.events(victim)] == ["running"]
    assert feed.events(attacker) == []

    # The victim's own signed report still counts.
    write_state(logs, group, victim, "terminated", victim_key)
    assert await eventually_states(feed, victim, 2) == ["running", "terminated"]
    # The keys are secrets: no log line shows one while the feed holds it.
    assert victim_key not in redact_text(f"key={victim_key}")
    feed.unsubscribe(victim)
    await feed.close()
    assert victim_key in redact_text(f"key={victim_key}")
