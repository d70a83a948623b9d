"""The node's conditions and taints as pure functions: Ready follows the watcher only; each
dependency has its condition; the dependency taint comes and goes; other owners' taints stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import botocore.exceptions

from orca.aws_clients import AwsCredentialsError
from orca.settings import NodeSettings
from orca.watcher.node import (
    AWS_AVAILABLE,
    DEPENDENCY_TAINT_KEY,
    TAINTS_ANNOTATION,
    TEMPORAL_AVAILABLE,
    WORKER_POLLING,
    DependencyCondition,
    NodeHealth,
    build_node,
    merge_taints,
    node_conditions,
    parse_owned_taints,
    wanted_taints,
)
from orca.watcher.node_health import aws_condition, live_pollers, worker_condition

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
BURST = {"key": "orca.research/burst-node", "value": "true", "effect": "NoSchedule"}
DEPENDENCY = {"key": DEPENDENCY_TAINT_KEY, "effect": "NoSchedule"}
UNREACHABLE = {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": "t"}


def healthy() -> tuple[DependencyCondition, ...]:
    return (
        DependencyCondition(TEMPORAL_AVAILABLE, "True", "TemporalReachable", "ok"),
        DependencyCondition(WORKER_POLLING, "True", "WorkerPolling", "1 worker(s)"),
        DependencyCondition(AWS_AVAILABLE, "True", "AwsCredentialsValid", "ok"),
    )


def temporal_down() -> tuple[DependencyCondition, ...]:
    return (
        DependencyCondition(TEMPORAL_AVAILABLE, "False", "TemporalUnavailable", "refused"),
        DependencyCondition(WORKER_POLLING, "Unknown", "TemporalUnavailable", "refused"),
        healthy()[2],
    )


def by_type(conditions: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    return {c["type"]: c for c in conditions}


def test_a_dependency_outage_leaves_ready_true_and_says_which() -> None:
    conditions = by_type(node_conditions(NodeHealth(dependencies=temporal_down()), NOW))
    assert (conditions["Ready"]["status"], conditions["Ready"]["reason"]) == (
        "True",
        "KubeletReady",
    )
    temporal = conditions[TEMPORAL_AVAILABLE]
    assert (temporal["status"], temporal["reason"]) == ("False", "TemporalUnavailable")
    assert conditions[WORKER_POLLING]["status"] == "Unknown"
    assert conditions[AWS_AVAILABLE]["status"] == "True"


def test_dependency_conditions_keep_their_transition_time_while_unchanged() -> None:
    first = node_conditions(NodeHealth(dependencies=healthy()), NOW)
    later = NOW + timedelta(minutes=1)
    same = by_type(node_conditions(NodeHealth(dependencies=healthy()), later, first))
    assert same[AWS_AVAILABLE]["lastTransitionTime"] == "2026-01-01T12:00:00Z"
    down = by_type(node_conditions(NodeHealth(dependencies=temporal_down()), later, first))
    assert down[TEMPORAL_AVAILABLE]["lastTransitionTime"] == "2026-01-01T12:01:00Z"
    assert down["Ready"]["lastTransitionTime"] == "2026-01-01T12:00:00Z"


def test_the_dependency_taint_is_wanted_only_while_a_dependency_is_unavailable() -> None:
    settings = NodeSettings()
    assert wanted_taints(settings, NodeHealth(dependencies=healthy())) == [BURST]
    assert wanted_taints(settings, NodeHealth(dependencies=temporal_down())) == [BURST, DEPENDENCY]
    node = build_node(settings, NodeHealth(dependencies=temporal_down()), NOW)
    assert node["spec"]["taints"] == [BURST, DEPENDENCY]
    assert parse_owned_taints(node["metadata"]["annotations"][TAINTS_ANNOTATION]) == {
        ("orca.research/burst-node", "NoSchedule")
    }


def test_merge_keeps_other_owners_taints_in_place() -> None:
    admin = {"key": "example.org/maintenance", "effect": "NoSchedule"}
    current = [admin, BURST, UNREACHABLE]
    owned = {("orca.research/burst-node", "NoSchedule")}
    merged = merge_taints(current, [BURST, DEPENDENCY], owned)
    assert merged == [admin, BURST, UNREACHABLE, DEPENDENCY]
    assert merge_taints(merged, [BURST], set()) == current, "the dependency taint is ORCA's"
    assert merge_taints(current, [BURST], set()) == current, "nothing to change"


def test_merge_removes_a_taint_orca_applied_before_and_updates_a_changed_value() -> None:
    old = {"key": "orca.research/old", "value": "x", "effect": "NoSchedule"}
    assert merge_taints([old, UNREACHABLE], [BURST], {("orca.research/old", "NoSchedule")}) == [
        UNREACHABLE,
        BURST,
    ]
    changed = {**BURST, "value": "false"}
    assert merge_taints([BURST, UNREACHABLE], [changed], set()) == [changed, UNREACHABLE]


def test_only_recent_pollers_count() -> None:
    polls = [NOW - timedelta(seconds=30), NOW - timedelta(minutes=4)]
    assert live_pollers(polls, NOW, timedelta(minutes=2)) == 1
    assert live_pollers(polls, NOW, timedelta(seconds=10)) == 0
    none = worker_condition("orca-pods", 0)
    assert (none.status, none.reason) == ("False", "NoWorkerPolling")
    assert "orca-pods" in none.message


def test_aws_condition_reasons() -> None:
    rejected = botocore.exceptions.ClientError(
        {"Error": {"Code": "InvalidClientTokenId", "Message": "The security token is invalid."}},
        "GetCallerIdentity",
    )
    condition = aws_condition(rejected)
    assert (condition.status, condition.reason) == ("False", "AwsCredentialsRejected")
    assert "The security token is invalid." in condition.message
    unreachable = botocore.exceptions.EndpointConnectionError(endpoint_url="http://nowhere")
    assert aws_condition(unreachable).reason == "AwsUnreachable"
    missing = aws_condition(AwsCredentialsError("no credentials"))
    assert missing.reason == "AwsCredentialsUnavailable"
    assert aws_condition(None).available
