"""Names derived from the longest pods Kubernetes admits fit the limits of where they go."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from orca import pod_names
from orca.activities.models import EventType, PodEventReport
from orca.activities.pod_status import event_body
from orca.instance_tags import instance_tags
from orca.launch_spec import PodRef
from orca.workflow_ids import pod_ref_from_workflow_id, pod_workflow_id

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LONGEST = PodRef(
    namespace="n" * 63,
    name=("a" * 60 + ".") * 4 + "b" * 9,  # 253 characters, dots included
    uid="0b7e0f5e-7a3c-4c55-9d55-8f1b5f3f6a01",
)


def test_longest_pod_name_is_admissible() -> None:
    assert len(LONGEST.name) == 253
    assert DNS_SUBDOMAIN.match(LONGEST.name)


def test_short_names_are_kept() -> None:
    assert pod_names.event_name("train-0", "abc123") == "train-0.abc123"
    assert pod_names.instance_name_tag("lab", "train-0") == "orca/lab/train-0"
    assert pod_names.shorten("x" * 10, 10) == "x" * 10


def test_shortening_keeps_a_prefix_and_tells_apart_names_sharing_it() -> None:
    first = pod_names.shorten("p" * 300 + "1", 100)
    second = pod_names.shorten("p" * 300 + "2", 100)
    assert len(first) == len(second) == 100
    assert first.startswith("p" * 80)
    assert first != second
    assert pod_names.shorten("p" * 300 + "1", 100) == first  # deterministic


def test_event_names_of_the_longest_pod_are_valid_object_names() -> None:
    report = PodEventReport(pod=LONGEST, type=EventType.NORMAL, reason="Started", message="m")
    name = event_body(report, "orca-node", datetime(2026, 1, 1, tzinfo=UTC))["metadata"]["name"]
    assert len(name) <= pod_names.MAX_OBJECT_NAME
    assert DNS_SUBDOMAIN.match(name)
    # a prefix that would end in "-" or "." is trimmed, so the name stays a DNS subdomain
    for pod_name in ("a" * 241 + "-" * 12, "a" * 236 + "." + "b" * 16):
        trimmed = pod_names.event_name(pod_name, "0123456789")
        assert len(trimmed) <= pod_names.MAX_OBJECT_NAME
        assert DNS_SUBDOMAIN.match(trimmed), trimmed


def test_tags_fit_ec2_and_keep_the_full_pod_name() -> None:
    tags = instance_tags(LONGEST, cluster="c", budget_namespace="b", extra={"project": "x" * 300})
    assert all(len(value) <= pod_names.MAX_TAG_VALUE for value in tags.values())
    assert tags["orca.research/pod-name"] == LONGEST.name
    assert tags["Name"].startswith(f"orca/{LONGEST.namespace}/")


def test_workflow_id_and_log_stream_fit_and_round_trip() -> None:
    workflow_id = pod_workflow_id(LONGEST)
    assert len(workflow_id) <= pod_names.MAX_WORKFLOW_ID
    assert pod_ref_from_workflow_id(workflow_id) == LONGEST
    stream = pod_names.container_log_stream(LONGEST.namespace, LONGEST.name, LONGEST.uid, "c" * 63)
    assert len(stream) <= pod_names.MAX_LOG_STREAM_NAME
    assert ":" not in stream
    assert "*" not in stream
