"""Tags on every instance ORCA creates: who owns it, so retries and sweeps can find it.

The pod-UID tag makes launches idempotent across activity retries (look it up before launching)
and lets termination find an instance whose launch call was cut off. The cluster tag keeps
several clusters sharing an account apart; `managed-by` scopes the IAM policy's tag conditions.
"""

from __future__ import annotations

from datetime import UTC, datetime

from orca import pod_names
from orca.launch_spec import PodRef

POD_NAMESPACE = "orca.research/pod-namespace"
POD_NAME = "orca.research/pod-name"
POD_UID = "orca.research/pod-uid"
CLUSTER = "orca.research/cluster"
MANAGED_BY = "orca.research/managed-by"
BUDGET_NAMESPACE = "orca.research/budget-namespace"
TEAM = "orca.research/team"
"""Team or department, for AWS cost allocation tags; only set when the pod has one."""
CREATED_AT = "orca.research/created-at"
MANAGED_BY_VALUE = "orca"


def instance_tags(
    pod: PodRef,
    *,
    cluster: str,
    budget_namespace: str,
    team: str | None = None,
    extra: dict[str, str],
    now: datetime | None = None,
) -> dict[str, str]:
    created = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    tags = {key: pod_names.tag_value(value) for key, value in extra.items()}
    tags.update(
        {
            "Name": pod_names.instance_name_tag(pod.namespace, pod.name),
            POD_NAMESPACE: pod.namespace,
            POD_NAME: pod.name,
            POD_UID: pod.uid,
            CLUSTER: cluster,
            MANAGED_BY: MANAGED_BY_VALUE,
            BUDGET_NAMESPACE: budget_namespace,
            CREATED_AT: created,
        }
    )
    if team is not None:
        tags[TEAM] = team
    return tags
