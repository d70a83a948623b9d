"""The lifecycle events' messages (activities/lifecycle_events.py): the same for a run that
posts them itself and for an activity that tells them (`pod-lifecycle-2`)."""

from __future__ import annotations

from datetime import UTC, datetime

from orca.activities import lifecycle_events
from orca.activities.models import LaunchOutcome, LaunchRequest
from orca.launch_spec import LaunchSpec, PodRef, SelectionMethod
from tests.workflows.fake_activities import candidate

POD = PodRef(namespace="research", name="train-1", uid="8d1c6a50-3f0e-4a4e-9d2a-1b8f0c3e6a11")


def request_for(offering_type: str = "g5.xlarge") -> LaunchRequest:
    offering = candidate(offering_type, spot=True)
    spec = LaunchSpec(
        pod=POD,
        selection=SelectionMethod.EXPLICIT,
        instance_types=(offering_type,),
        budget_namespace="research",
    )
    return LaunchRequest(
        spec=spec,
        candidate=offering,
        client_token="t",
        requested_at=datetime(2026, 12, 4, tzinfo=UTC),
        records_events=True,
    )


def test_a_launch_tells_launched_or_out_of_capacity_but_not_a_budget_hold() -> None:
    request = request_for()
    [launched] = lifecycle_events.launch_events(request, LaunchOutcome(instance_id="i-1"))
    assert (launched.reason, launched.type) == ("Launched", "Normal")
    assert launched.message == f"Launched i-1: {request.candidate.reason}."
    out = LaunchOutcome(capacity_error="InsufficientInstanceCapacity", message="none left")
    [failed] = lifecycle_events.launch_events(request, out)
    assert (failed.reason, failed.type) == ("LaunchFailed", "Warning")
    assert failed.message == (
        f"g5.xlarge spot in {request.candidate.zone}: InsufficientInstanceCapacity (none left); "
        "trying the next offering."
    )
    held = LaunchOutcome(limit_reached="limits.maxConcurrentInstances", message="held")
    assert lifecycle_events.launch_events(request, held) == []


def test_offerings_selected_names_five_and_counts_the_rest() -> None:
    offerings = [candidate(f"g5.{n}xlarge") for n in range(1, 8)]
    report = lifecycle_events.offerings_selected(POD, offerings)
    assert report.message.startswith(f"Candidates in order: 1. {offerings[0].reason}; 2. ")
    assert f"5. {offerings[4].reason}; and 2 more" in report.message
    assert report.message.endswith("; and 2 more")


def test_undersized_types_are_warnings_and_started_names_the_command() -> None:
    [warning] = lifecycle_events.undersized_instance_types(POD, ("g5.xlarge has 4 vCPUs",))
    assert (warning.reason, warning.type) == ("UndersizedInstanceType", "Warning")
    started = lifecycle_events.containers_started(POD, "i-1", "cmd-9")
    assert started.message == "Containers started on i-1 (SSM command cmd-9)."
