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
from orca.settings import AwsSettings
from orca_devstack.emulators.aws import AwsEmulator
from tests.fixtures.aws import AwsClientFactory

INTERVAL = 0.2


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


def write_state(logs: Any, group: str, pod_uid: str, state: str) -> None:
    """What the instance script writes: one JSON line per container state change."""
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_stream(logGroupName=group, logStreamName=pod_uid)
    event = {
        "podUID": pod_uid,
        "container": "main",
        "state": state,
        "at": datetime.now(UTC).isoformat(),
    }
    logs.put_log_events(
        logGroupName=group,
        logStreamName=pod_uid,
        logEvents=[{"timestamp": int(time.time() * 1000), "message": json.dumps(event)}],
    )


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
    write_state(logs, group, earlier, "running")
    # A pod this worker starts: expect() before the start command, then its events arrive.
    mine = str(uuid.uuid4())
    feed.expect(mine)
    await asyncio.sleep(INTERVAL / 2)
    write_state(logs, group, mine, "waiting")
    write_state(logs, group, mine, "running")

    calls_before = feed.calls
    await feed.subscribe(mine, None)  # no start time: only expect() spares the backfill
    assert feed.calls == calls_before, "an expected pod was backfilled"
    assert await eventually_states(feed, mine, 2) == ["waiting", "running"]

    calls_before = feed.calls
    await feed.subscribe(earlier, datetime.now(UTC) - timedelta(hours=1))
    assert feed.calls == calls_before + 1, "the earlier pod needs exactly one backfill call"
    assert [e.state for e in feed.events(earlier)] == ["running"]

    # Steady state: both pods together cost one call per interval, not one each.
    rounds_before = feed.calls
    await asyncio.sleep(INTERVAL * 5)
    assert 3 <= feed.calls - rounds_before <= 6
    feed.unsubscribe(mine)
    feed.unsubscribe(earlier)
    await feed.close()
