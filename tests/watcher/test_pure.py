"""Unit tests of the watcher's pure parts: causes, the Node builder, interruption parsing, log
formatting, and the per-pod queues' ordering guarantees."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from orca.settings import NodeSettings
from orca.watcher.interruption_events import parse_interruption_message
from orca.watcher.kubelet_server import LogQuery, format_log_line, log_stream_name
from orca.watcher.node import NodeHealth, build_node, node_conditions
from orca.watcher.pod_causes import PodCause, grace_period_seconds, pod_cause
from orca.watcher.pod_queues import PodEvent, PodQueues
from orca.watcher.pod_workflows import workflow_manifest
from orca.workflows.models import InterruptionKind

EVENTS = Path(__file__).parent / "events"
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def pod(
    uid: str = "u1", node: str | None = "orca", *, deleting: bool = False, phase: str = "Pending"
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": f"p-{uid}", "namespace": "ml", "uid": uid}
    if deleting:
        metadata["deletionTimestamp"] = "2024-05-01T12:00:00Z"
        metadata["deletionGracePeriodSeconds"] = 10
    return {"metadata": metadata, "spec": {"nodeName": node}, "status": {"phase": phase}}


# -- causes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "manifest", "cause"),
    [
        ("ADDED", pod(), PodCause.START),
        ("MODIFIED", pod(), PodCause.START),
        ("RELIST", pod(), PodCause.START),
        ("ADDED", pod(deleting=True), PodCause.DELETE),  # state wins over the event type
        ("MODIFIED", pod(deleting=True), PodCause.DELETE),
        ("DELETED", pod(), PodCause.GONE),
        ("MODIFIED", pod(node="another-node"), PodCause.NOTHING),
        ("MODIFIED", pod(node=None), PodCause.NOTHING),
        ("MODIFIED", pod(phase="Succeeded"), PodCause.NOTHING),
        ("RELIST", pod(phase="Failed"), PodCause.NOTHING),
        ("MODIFIED", pod(phase="Failed", deleting=True), PodCause.DELETE),
    ],
)
def test_pod_cause_is_derived_from_state(
    event_type: str, manifest: dict[str, Any], cause: PodCause
) -> None:
    assert pod_cause(event_type, manifest, "orca") is cause


def test_grace_period_defaults_to_30_seconds() -> None:
    assert grace_period_seconds(pod(deleting=True)) == 10
    assert grace_period_seconds(pod()) == 30


# -- node -----------------------------------------------------------------------------------


def test_build_node_has_labels_taint_accelerators_endpoint_and_conditions() -> None:
    settings = NodeSettings(name="burst", gpu="8", neuron="16", fpga="2", address="10.0.0.5")
    node = build_node(settings, NodeHealth(ready=True), NOW, kubelet_port=10555)
    assert node["metadata"]["name"] == "burst"
    assert node["metadata"]["labels"]["orca.research/provider"] == "aws"
    assert node["metadata"]["labels"]["type"] == "virtual-kubelet"
    assert node["spec"]["taints"] == [
        {"key": "orca.research/burst-node", "value": "true", "effect": "NoSchedule"}
    ]
    status = node["status"]
    assert status["capacity"] == status["allocatable"]
    assert status["allocatable"]["nvidia.com/gpu"] == "8"
    assert status["allocatable"]["aws.amazon.com/neuron"] == "16"
    assert status["allocatable"]["aws.amazon.com/fpga"] == "2"
    assert status["addresses"][0] == {"type": "InternalIP", "address": "10.0.0.5"}
    assert status["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 10555}}
    assert status["nodeInfo"]["kubeletVersion"].startswith("v1.")
    kinds = [c["type"] for c in status["conditions"]]
    assert kinds == ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable"]


def test_conditions_keep_transition_time_until_the_status_changes() -> None:
    first = node_conditions(NodeHealth(ready=True), NOW)
    later = NOW + timedelta(minutes=1)
    same = node_conditions(NodeHealth(ready=True), later, first)
    assert same[0]["lastTransitionTime"] == first[0]["lastTransitionTime"]
    assert same[0]["lastHeartbeatTime"] != first[0]["lastHeartbeatTime"]
    down = node_conditions(NodeHealth(False, "TemporalUnavailable", "no"), later, first)
    assert (down[0]["status"], down[0]["reason"]) == ("False", "TemporalUnavailable")
    assert down[0]["lastTransitionTime"] == "2024-05-01T12:01:00Z"


# -- interruption events --------------------------------------------------------------------


def parse(name: str) -> Any:
    return parse_interruption_message((EVENTS / name).read_text())


def test_spot_warning_is_due_two_minutes_after_the_event() -> None:
    (notice,) = parse("spot-interruption-warning.json").notices
    assert notice.kind is InterruptionKind.SPOT_INTERRUPTION
    assert notice.instance_id == "i-1234567890abcdef0"
    assert notice.time == NOW + timedelta(minutes=2)


def test_rebalance_recommendation() -> None:
    (notice,) = parse("rebalance-recommendation.json").notices
    assert notice.kind is InterruptionKind.REBALANCE_RECOMMENDATION
    assert notice.instance_id == "i-1234567890abcdef0"


def test_state_change_to_an_ending_state_carries_the_state() -> None:
    (notice,) = parse("state-change-terminated.json").notices
    assert notice.kind is InterruptionKind.STATE_CHANGE
    assert notice.state == "terminated"


def test_state_change_to_running_is_ignored() -> None:
    parsed = parse("state-change-running.json")
    assert parsed.notices == ()
    assert "running" in parsed.ignored_reason


def test_health_scheduled_change_names_every_affected_instance() -> None:
    notices = parse("health-scheduled-change.json").notices
    assert [n.instance_id for n in notices] == ["i-1234567890abcdef0", "i-0fedcba0987654321"]
    assert {n.kind for n in notices} == {InterruptionKind.SCHEDULED_CHANGE}
    assert notices[0].time == datetime(2024, 5, 8, 14, 0, tzinfo=UTC)
    assert "RETIREMENT" in notices[0].detail


@pytest.mark.parametrize(
    "body",
    [
        (EVENTS / "ebs-volume-notification.json").read_text(),
        "not json",
        "[1, 2]",
        '{"detail-type": "EC2 Spot Instance Interruption Warning", "detail": {}}',
    ],
)
def test_unknown_or_malformed_messages_are_ignored_with_a_reason(body: str) -> None:
    parsed = parse_interruption_message(body)
    assert parsed.notices == ()
    assert parsed.ignored_reason


# -- kubelet log formatting -----------------------------------------------------------------


def test_log_lines_and_stream_names_follow_the_instance_contract() -> None:
    assert log_stream_name("ml", "train", "uid-1", "main") == "ml/train/uid-1/main"
    at = int(NOW.timestamp() * 1000) + 250
    assert format_log_line("hello", at, False) == b"hello\n"
    assert format_log_line("hello\n", at, True) == b"2024-05-01T12:00:00.250000000Z hello\n"


def test_log_query_parses_the_kubelet_options() -> None:
    query = LogQuery({"tailLines": "5", "sinceSeconds": "60", "follow": "true"}, NOW)
    assert (query.tail_lines, query.follow, query.timestamps) == (5, True, False)
    assert query.start_ms == int((NOW - timedelta(seconds=60)).timestamp() * 1000)
    with pytest.raises(ValueError, match="tailLines"):
        LogQuery({"tailLines": "-1"}, NOW)


# -- per-pod queues -------------------------------------------------------------------------


async def test_pod_queues_keep_per_pod_order_and_do_not_block_other_pods() -> None:
    handled: list[tuple[str, str]] = []
    slow_started = asyncio.Event()
    release_slow = asyncio.Event()

    async def handler(event: PodEvent) -> None:
        uid = event.ref.uid
        if uid == "slow" and not handled:
            slow_started.set()
            await release_slow.wait()
        handled.append((uid, event.type))

    queues = PodQueues(handler)
    queues.put(PodEvent("ADDED", pod("slow")))
    await slow_started.wait()
    queues.put(PodEvent("MODIFIED", pod("slow")))
    queues.put(PodEvent("DELETED", pod("slow")))  # newer state replaces the queued MODIFIED
    for index in range(5):
        queues.put(PodEvent("ADDED", pod(f"fast-{index}")))
    await asyncio.sleep(0.05)
    assert {uid for uid, _ in handled} == {f"fast-{i}" for i in range(5)}  # not behind "slow"
    release_slow.set()
    await asyncio.wait_for(queues.idle(), 5)
    assert [kind for uid, kind in handled if uid == "slow"] == ["ADDED", "DELETED"]


async def test_pod_queues_retry_a_failed_event_with_the_newest_state() -> None:
    attempts: list[str] = []

    async def handler(event: PodEvent) -> None:
        attempts.append(event.type)
        if len(attempts) == 1:
            raise RuntimeError("Temporal is down")

    queues = PodQueues(handler, retry_initial=0.01)
    queues.put(PodEvent("ADDED", pod("a")))
    await asyncio.wait_for(queues.idle(), 5)
    assert attempts == ["ADDED", "ADDED"]


def test_daemonset_owner_reads_the_controller_reference() -> None:
    from orca.watcher.pod_causes import daemonset_owner

    owned = {"kind": "DaemonSet", "name": "kube-proxy", "controller": True}
    assert daemonset_owner({"metadata": {"ownerReferences": [owned]}}) == "kube-proxy"
    not_controller = {**owned, "controller": False}
    assert daemonset_owner({"metadata": {"ownerReferences": [not_controller]}}) is None
    job = {"kind": "Job", "name": "train", "controller": True}
    assert daemonset_owner({"metadata": {"ownerReferences": [job]}}) is None
    assert daemonset_owner({"metadata": {}}) is None


def test_the_workflow_keeps_the_pod_without_managed_fields_and_last_applied_configuration() -> None:
    applied = '{"apiVersion":"v1","kind":"Pod","metadata":{"name":"train-0"}}'
    pod = {
        "metadata": {
            "name": "train-0",
            "annotations": {
                "orca.research/instance-type": "g5.xlarge",
                "kubectl.kubernetes.io/last-applied-configuration": applied,
            },
            "managedFields": [{"manager": "kubectl-client-side-apply", "fieldsV1": {}}],
        },
        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
    }

    kept = workflow_manifest(pod)

    assert kept["metadata"] == {
        "name": "train-0",
        "annotations": {"orca.research/instance-type": "g5.xlarge"},
    }
    assert kept["spec"] == pod["spec"]
    assert "managedFields" in pod["metadata"], "the watcher's copy is left as it was"
