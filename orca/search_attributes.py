"""ORCA's Temporal search attributes: the columns and filters of the Temporal UI's workflow list.

One definition used by the workflow (upserts), `orca dev` (registers them on the dev server) and
`orca temporal setup` (registers them on a real cluster). All are Keyword attributes, so the UI can
filter with `OrcaPodNamespace = "ml" AND OrcaPhase = "Running"`.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

POD_NAMESPACE = SearchAttributeKey.for_keyword("OrcaPodNamespace")
POD_NAME = SearchAttributeKey.for_keyword("OrcaPodName")
INSTANCE_TYPE = SearchAttributeKey.for_keyword("OrcaInstanceType")
INSTANCE_ID = SearchAttributeKey.for_keyword("OrcaInstanceId")
LAUNCH_TYPE = SearchAttributeKey.for_keyword("OrcaLaunchType")
ZONE = SearchAttributeKey.for_keyword("OrcaZone")
PHASE = SearchAttributeKey.for_keyword("OrcaPhase")
BUDGET_NAMESPACE = SearchAttributeKey.for_keyword("OrcaBudgetNamespace")

ALL = (
    POD_NAMESPACE,
    POD_NAME,
    INSTANCE_TYPE,
    INSTANCE_ID,
    LAUNCH_TYPE,
    ZONE,
    PHASE,
    BUDGET_NAMESPACE,
)
