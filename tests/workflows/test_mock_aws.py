"""`development.mockAWS: true` (a Go ORCA file) launches nothing: the real planning and instance
activities against the AWS emulator, the workflow on the time-skipping test server. Only the
Kubernetes writes are recorded by stand-ins (the pod's status and events are what is asserted).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from orca.activities.models import (
    PodEventReport,
    PodStatusReport,
    StartContainersInput,
    StartContainersOutcome,
)
from orca.activities.planning import PlanningActivities
from orca.failure_types import FailureType
from orca.launch_spec import pod_ref_from_pod
from orca.metrics import AWS_API_CALLS
from orca.settings import DevelopmentSettings
from orca.workflow_ids import pod_workflow_id
from orca.workflows.models import PodLifecycleInput
from orca.workflows.pod_lifecycle import PodLifecycle
from orca_devstack.emulators.aws import AwsEmulator
from tests.activities.test_activities import Wiring, pod_manifest


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


async def test_mock_aws_config_launches_no_instance(
    aws: AwsEmulator, aws_client: Any, time_skipping_env: WorkflowEnvironment
) -> None:
    wiring = Wiring(aws)
    settings = wiring.settings.model_copy(
        update={"development": DevelopmentSettings(mock_aws=True)}
    )
    planning = PlanningActivities(settings, wiring.catalog, wiring.unavailable)
    statuses: list[PodStatusReport] = []
    events: list[PodEventReport] = []

    @activity.defn(name="report_pod_status")
    async def report_pod_status(report: PodStatusReport) -> None:
        statuses.append(report)

    @activity.defn(name="record_pod_event")
    async def record_pod_event(event: PodEventReport) -> None:
        events.append(event)

    @activity.defn(name="start_containers")
    async def start_containers(input: StartContainersInput) -> StartContainersOutcome:
        # Reached only if an instance was launched: end the workflow instead of hanging.
        raise ApplicationError(
            "an instance was launched", type=FailureType.CONFIGURATION, non_retryable=True
        )

    pod = pod_manifest({"orca.research/instance-type": "m5.large"})
    run_instances_before = AWS_API_CALLS.labels("ec2", "RunInstances")._value.get()
    task_queue = f"tq-{uuid.uuid4()}"
    async with Worker(
        time_skipping_env.client,
        task_queue=task_queue,
        workflows=[PodLifecycle],
        activities=[
            planning.plan_launch,
            wiring.instances.launch_instance,
            wiring.instances.wait_until_running,
            wiring.instances.terminate_instances,
            report_pod_status,
            record_pod_event,
            start_containers,
        ],
    ):
        handle = await time_skipping_env.client.start_workflow(
            PodLifecycle.run,
            PodLifecycleInput(pod=pod),
            id=pod_workflow_id(pod_ref_from_pod(pod)),
            task_queue=task_queue,
        )
        result = await handle.result()
    assert result.reason == "DryRun"
    assert any(e.reason == "DryRun" for e in events)
    assert AWS_API_CALLS.labels("ec2", "RunInstances")._value.get() == run_instances_before
    reservations = aws_client("ec2").describe_instances()["Reservations"]
    assert reservations == []  # the emulator holds no instance at all
