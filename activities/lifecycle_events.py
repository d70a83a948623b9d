"""The lifecycle events a step's own activity posts about its pod (`pod-lifecycle-2`).

Under patch `pod-lifecycle-2` the activity that did a step tells it as a Kubernetes event, in the
same call: `plan_launch` the offerings selected (and each undersized type it was asked for),
`launch_instance` the launch or the offering out of capacity, `start_containers` the start. Each
event posted by the workflow itself cost a local activity, a history marker of about 560 bytes
per event. Workflow runs recorded before the patch post the same events, built by the same
functions here, as local activities (`PodLifecycle._event`); the activities are told which runs
want them posted (`records_events` in their inputs), so no event is posted twice.

Events are best effort, as the kubelet's are: one that cannot be posted is logged and never fails
the step (a launch that failed because its event could not be posted would launch again). An
event's name is stable for its pod, reason and message, so the repeat of a retried activity, or of
a step done again (the same offering out of capacity after a wait), counts on the one object.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import structlog

from orca.activities.models import EventType, LaunchOutcome, LaunchRequest, PodEventReport
from orca.activities.pod_status import event_body
from orca.launch_spec import PodRef
from orca.pod_api import PodApi
from orca.selection import CandidateOffering

log = structlog.get_logger(__name__)

OFFERINGS_SELECTED = "OfferingsSelected"
UNDERSIZED_INSTANCE_TYPE = "UndersizedInstanceType"
LAUNCHED = "Launched"
LAUNCH_FAILED = "LaunchFailed"
STARTED = "Started"
OFFERINGS_LISTED = 5
"""How many candidates the `OfferingsSelected` message names (then "and N more")."""


def offerings_selected(pod: PodRef, candidates: Sequence[CandidateOffering]) -> PodEventReport:
    lines = "; ".join(f"{i + 1}. {c.reason}" for i, c in enumerate(candidates[:OFFERINGS_LISTED]))
    more = len(candidates) - OFFERINGS_LISTED
    suffix = f"; and {more} more" if more > 0 else ""
    return PodEventReport(
        pod=pod,
        type=EventType.NORMAL,
        reason=OFFERINGS_SELECTED,
        message=f"Candidates in order: {lines}{suffix}",
    )


def undersized_instance_types(pod: PodRef, warnings: Sequence[str]) -> list[PodEventReport]:
    return [
        PodEventReport(
            pod=pod, type=EventType.WARNING, reason=UNDERSIZED_INSTANCE_TYPE, message=warning
        )
        for warning in warnings
    ]


def launched(pod: PodRef, instance_id: str, candidate: CandidateOffering) -> PodEventReport:
    return PodEventReport(
        pod=pod,
        type=EventType.NORMAL,
        reason=LAUNCHED,
        message=f"Launched {instance_id}: {candidate.reason}.",
    )


def launch_failed(
    pod: PodRef, candidate: CandidateOffering, capacity_error: str | None, message: str
) -> PodEventReport:
    return PodEventReport(
        pod=pod,
        type=EventType.WARNING,
        reason=LAUNCH_FAILED,
        message=(
            f"{candidate.instance_type} {candidate.capacity_type} in {candidate.zone}: "
            f"{capacity_error} ({message}); trying the next offering."
        ),
    )


def launch_events(request: LaunchRequest, outcome: LaunchOutcome) -> list[PodEventReport]:
    """What a launch tells: launched, or out of capacity (a hold by a budget is told by the
    workflow, which waits)."""
    pod = request.spec.pod
    if outcome.instance_id is not None:
        return [launched(pod, outcome.instance_id, request.candidate)]
    if outcome.limit_reached is None:
        return [launch_failed(pod, request.candidate, outcome.capacity_error, outcome.message)]
    return []


def containers_started(pod: PodRef, instance_id: str, command_id: str) -> PodEventReport:
    return PodEventReport(
        pod=pod,
        type=EventType.NORMAL,
        reason=STARTED,
        message=f"Containers started on {instance_id} (SSM command {command_id}).",
    )


class LifecycleEvents:
    """Posts lifecycle events about pods as ORCA's node; every call through `PodApi`."""

    def __init__(self, pods: PodApi, node_name: str) -> None:
        self._pods = pods
        self._node_name = node_name

    async def post(self, reports: Sequence[PodEventReport]) -> None:
        if reports:
            await asyncio.to_thread(self._post_all, reports)

    def _post_all(self, reports: Sequence[PodEventReport]) -> None:
        now = datetime.now(UTC)
        for report in reports:
            body = event_body(report, self._node_name, now, series=True)
            try:
                self._pods.post_or_count_event(report.pod.namespace, body)
            except Exception as error:  # best effort, as the kubelet's events
                log.warning(
                    "pod event not posted",
                    pod=report.pod.key,
                    reason=report.reason,
                    error=str(error) or type(error).__name__,
                )
