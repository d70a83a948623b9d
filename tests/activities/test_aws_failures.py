"""Every AWS error reaches Temporal classified: the activities against the AWS emulator, with
its fault injection answering the way AWS answers (the error's code, message and HTTP status).

One test per class at the boundary: access denied and configuration fail the pod naming the
call; rejected credentials and unknown codes (within their budget) are retried; terminating
retries even a permanent error, since giving up would leave the instance running.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest
from kubernetes import client
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from orca.activities.aws_failures import UNCLASSIFIED_ERROR_ATTEMPTS
from orca.activities.batched_poller import BatchedPoller
from orca.activities.container_status_feed import ContainerStatusFeed
from orca.activities.containers import ContainerActivities
from orca.activities.models import (
    LaunchRequest,
    MonitorInput,
    PlanLaunchInput,
    StartContainersInput,
    TerminateInput,
    WaitForInstanceInput,
)
from orca.activities.pod_parameters import PodParameters
from orca.activities.pod_references import PodReferences
from orca.activities.ssm_commands import SsmCommands
from orca.failure_types import FailureType
from orca.instance_state import InstanceState
from orca.pod_api import PodApi
from orca_devstack.emulators.aws import AwsEmulator
from tests.activities.test_activities import NOW, Wiring, pod_manifest


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


def containers_for(wiring: Wiring) -> ContainerActivities:
    # These activities never reach the Kubernetes API in these tests (no referenced
    # ConfigMaps or Secrets, and the failures come first), so the client points nowhere.
    core = client.CoreV1Api(client.ApiClient(client.Configuration(host="http://127.0.0.1:9")))
    commands = SsmCommands(wiring.aws, wiring.settings.aws.log_group)
    agents: BatchedPoller[bool] = BatchedPoller(
        commands.agents_online,
        lambda _id: False,
        interval_seconds=0.2,
        name="ssm-agents",
    )
    feed = ContainerStatusFeed(wiring.aws, wiring.settings.aws.status_log_group, 0.2)
    return ContainerActivities(
        wiring.settings.aws,
        commands,
        agents,
        PodParameters(wiring.aws),
        PodReferences(core),
        wiring.cluster,
        feed,
        PodApi(core),
        "orca-aws-node",
    )


async def failure_of(activity_fn: Any, arg: Any, attempt: int = 1) -> ApplicationError:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=attempt)
    with pytest.raises(ApplicationError) as raised:
        await env.run(activity_fn, arg)
    return raised.value


def _plan_input() -> PlanLaunchInput:
    return PlanLaunchInput(pod=pod_manifest({"orca.research/instance-type": "m5.large"}))


async def launched(wiring: Wiring) -> tuple[dict[str, Any], Any, str]:
    pod = pod_manifest({"orca.research/instance-type": "m5.large"})
    plan = await wiring.plan(pod)
    request = LaunchRequest(
        spec=plan.spec, candidate=plan.candidates[0], client_token="t", requested_at=NOW
    )
    outcome = await ActivityEnvironment().run(wiring.instances.launch_instance, request)
    assert outcome.instance_id is not None
    return pod, plan, outcome.instance_id


async def test_ssm_access_denied_on_send_command_fails_the_pod_naming_the_call(
    aws: AwsEmulator,
) -> None:
    wiring = Wiring(aws)
    pod, plan, instance_id = await launched(wiring)
    running = await ActivityEnvironment().run(
        wiring.instances.wait_until_running,
        WaitForInstanceInput(instance_id=instance_id, timeout=timedelta(seconds=30)),
    )
    assert running.status.state is InstanceState.RUNNING
    aws.control.inject_fault("SendCommand", "AccessDeniedException")
    failure = await failure_of(
        containers_for(wiring).start_containers,
        StartContainersInput(pod=pod, spec=plan.spec, instance=running.status),
    )
    assert failure.type == FailureType.AWS_ACCESS_DENIED
    assert failure.non_retryable
    assert failure.message.startswith("ssm:SendCommand AccessDeniedException: ")


async def test_logs_access_denied_fails_the_monitor_round(aws: AwsEmulator) -> None:
    wiring = Wiring(aws)
    aws.control.inject_fault("FilterLogEvents", "AccessDeniedException")
    failure = await failure_of(
        containers_for(wiring).monitor_pod,
        MonitorInput(
            pod=pod_manifest({}), instance_id="i-0123456789abcdef0", round_duration=timedelta(1)
        ),
    )
    assert failure.type == FailureType.AWS_ACCESS_DENIED
    assert failure.non_retryable
    assert "logs:FilterLogEvents AccessDeniedException" in failure.message


async def test_ec2_unauthorized_fails_planning(aws: AwsEmulator) -> None:
    wiring = Wiring(aws)
    aws.control.inject_fault("DescribeSubnets", "UnauthorizedOperation")
    with pytest.raises(ApplicationError) as raised:
        await wiring.plan(pod_manifest({"orca.research/instance-type": "m5.large"}))
    assert raised.value.type == FailureType.AWS_ACCESS_DENIED
    assert raised.value.non_retryable
    assert "ec2:DescribeSubnets UnauthorizedOperation" in raised.value.message


async def test_invalid_parameter_on_run_instances_is_a_configuration_failure(
    aws: AwsEmulator,
) -> None:
    wiring = Wiring(aws)
    pod = pod_manifest({"orca.research/instance-type": "m5.large"})
    plan = await wiring.plan(pod)
    aws.control.inject_fault("RunInstances", "InvalidParameterValue")
    failure = await failure_of(
        wiring.instances.launch_instance,
        LaunchRequest(
            spec=plan.spec,
            candidate=plan.candidates[0],
            client_token="t",
            requested_at=NOW,
        ),
    )
    assert failure.type == FailureType.CONFIGURATION
    assert failure.non_retryable
    assert "ec2:RunInstances InvalidParameterValue" in failure.message


async def test_rejected_credentials_are_retried_not_a_pod_failure(aws: AwsEmulator) -> None:
    wiring = Wiring(aws)
    aws.control.inject_fault("DescribeSubnets", "AuthFailure")
    failure = await failure_of(wiring.planning.plan_launch, _plan_input(), attempt=1_000)
    assert failure.type == FailureType.AWS_CREDENTIALS_REJECTED
    assert not failure.non_retryable


async def test_unknown_codes_are_retried_within_a_budget_then_fail_the_pod(
    aws: AwsEmulator,
) -> None:
    wiring = Wiring(aws)
    aws.control.inject_fault("DescribeSubnets", "SomethingNewFromAws")
    early = await failure_of(wiring.planning.plan_launch, _plan_input(), attempt=1)
    assert early.type == FailureType.AWS_TRANSIENT
    assert not early.non_retryable
    last = await failure_of(
        wiring.planning.plan_launch, _plan_input(), attempt=UNCLASSIFIED_ERROR_ATTEMPTS
    )
    assert last.type == FailureType.AWS_CALL_FAILED
    assert last.non_retryable
    assert "ec2:DescribeSubnets SomethingNewFromAws" in last.message


async def test_terminate_keeps_retrying_a_denied_terminate(aws: AwsEmulator) -> None:
    wiring = Wiring(aws)
    _pod, plan, instance_id = await launched(wiring)
    aws.control.inject_fault("TerminateInstances", "UnauthorizedOperation")
    failure = await failure_of(
        wiring.instances.terminate_instances,
        TerminateInput(pod=plan.spec.pod, instance_ids=(instance_id,)),
        attempt=UNCLASSIFIED_ERROR_ATTEMPTS,
    )
    assert not failure.non_retryable
    assert "ec2:TerminateInstances UnauthorizedOperation" in failure.message
