"""The audit trail (`orca.audit`) of ORCA's own activities against the AWS emulator, over real
HTTP: a launch and a terminate are one record each, with the pod, the workflow, the instance and
the AWS request ID; a launch AWS refuses for capacity records that outcome; reads are not
audited; no record carries a secret parameter's value."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from temporalio.testing import ActivityEnvironment

from orca.activities.models import LaunchRequest, TerminateInput
from orca.aws_audit import AUDIT_LOGGER
from orca.logging import configure_logging
from orca.settings import LogFormat, LoggingSettings, LogLevel
from orca.workflow_ids import pod_workflow_id
from orca_devstack.emulators.aws import AwsEmulator
from tests.activities.test_activities import NOW, Wiring, pod_manifest


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    """The process's log output, configured as the worker configures it, at level error: the
    audit trail is written whatever the level."""
    stream = io.StringIO()
    configure_logging(LoggingSettings(format=LogFormat.JSON, level=LogLevel.ERROR), stream=stream)
    yield stream
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()


def audit_records(stream: io.StringIO) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    return [r for r in records if r.get("logger") == AUDIT_LOGGER]


async def test_launch_and_terminate_are_audited_with_pod_workflow_and_request_id(
    aws: AwsEmulator, output: io.StringIO
) -> None:
    wiring = Wiring(aws)
    plan = await wiring.plan(pod_manifest({"orca.research/instance-type": "m5.large"}))
    pod = plan.spec.pod
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, workflow_id=pod_workflow_id(pod))
    request = LaunchRequest(
        spec=plan.spec, candidate=plan.candidates[0], client_token="audit-1", requested_at=NOW
    )
    launched = await env.run(wiring.instances.launch_instance, request)
    assert launched.instance_id
    await env.run(
        wiring.instances.terminate_instances,
        TerminateInput(pod=pod, instance_ids=(launched.instance_id,)),
    )
    records = audit_records(output)
    # Termination protection is switched off before every terminate: a mutation of its own.
    assert [r["operation"] for r in records] == [
        "ec2:RunInstances",
        "ec2:ModifyInstanceAttribute",
        "ec2:TerminateInstances",
    ]
    for record in records:
        assert record["outcome"] == "success"
        assert record["resource_ids"] == [launched.instance_id]
        assert record["request_id"]
        assert record["pod"] == pod.key
        assert record["pod_uid"] == pod.uid
        assert record["workflow_id"] == pod_workflow_id(pod)
        assert record["time"]
    # The planning and the launch read the catalog and describe instances: none is a record.
    assert not any(r["operation"].split(":")[1].startswith("Describe") for r in records)


async def test_a_refused_launch_records_the_classified_outcome(
    aws: AwsEmulator, output: io.StringIO
) -> None:
    wiring = Wiring(aws)
    plan = await wiring.plan(pod_manifest({"orca.research/instance-type": "c5.xlarge"}))
    first = plan.candidates[0]
    aws.control.set_capacity("c5.xlarge", zone=first.zone, count=0)
    request = LaunchRequest(spec=plan.spec, candidate=first, client_token="a-2", requested_at=NOW)
    outcome = await ActivityEnvironment().run(wiring.instances.launch_instance, request)
    assert outcome.capacity_error == "InsufficientInstanceCapacity"
    (record,) = audit_records(output)
    assert record["operation"] == "ec2:RunInstances"
    assert record["outcome"] == "capacity"
    assert record["error_code"] == "InsufficientInstanceCapacity"
    assert record["http_status"] >= 400
    assert record["request_id"]
    assert record["resource_ids"] == []
    assert record["pod"] == plan.spec.pod.key


def test_a_secret_parameter_is_audited_by_name_never_by_value(
    aws: AwsEmulator, output: io.StringIO
) -> None:
    wiring = Wiring(aws)
    name = "/orca/pods/u-1/env/main/TOKEN"
    wiring.aws.ssm.put_parameter(
        Name=name, Value="value-that-is-secret", Type="SecureString", Overwrite=True
    )
    wiring.aws.ssm.delete_parameters(Names=[name])
    records = audit_records(output)
    assert [(r["operation"], r["resource_ids"]) for r in records] == [
        ("ssm:PutParameter", [name]),
        ("ssm:DeleteParameters", [name]),
    ]
    assert all(r["request_id"] for r in records)
    assert "value-that-is-secret" not in output.getvalue()
