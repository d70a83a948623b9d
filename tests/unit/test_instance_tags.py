"""The tags on every instance ORCA launches."""

from __future__ import annotations

from datetime import UTC, datetime

from orca import instance_tags
from orca.launch_spec import PodRef

POD = PodRef(namespace="vision", name="train-0", uid="u-1")
NOW = datetime(2026, 12, 2, tzinfo=UTC)


def test_the_team_is_a_tag_only_when_the_pod_has_one() -> None:
    tagged = instance_tags.instance_tags(
        POD, cluster="c", budget_namespace="vision", team="cv-lab", extra={}, now=NOW
    )
    assert tagged[instance_tags.TEAM] == "cv-lab"
    assert tagged[instance_tags.BUDGET_NAMESPACE] == "vision"
    untagged = instance_tags.instance_tags(
        POD, cluster="c", budget_namespace="vision", extra={}, now=NOW
    )
    assert instance_tags.TEAM not in untagged
