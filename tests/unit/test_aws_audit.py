"""The audit trail's pure parts: which calls are mutations, the IDs a call names, the record."""

from __future__ import annotations

from datetime import UTC, datetime

import botocore.exceptions

from orca.aws_audit import audit_record, is_mutation, resource_ids


def test_mutations_are_every_operation_but_the_read_only_verbs() -> None:
    for operation in (
        "RunInstances",
        "CreateFleet",
        "CreateTags",
        "TerminateInstances",
        "SendCommand",
        "PutParameter",
        "DeleteParameters",
        "CancelSpotInstanceRequests",
        "ModifyInstanceAttribute",
        "DeleteMessageBatch",
    ):
        assert is_mutation(operation), operation
    for operation in (
        "DescribeInstances",
        "GetParameter",
        "ListCommands",
        "FilterLogEvents",
        "ReceiveMessage",
        "GetProducts",
    ):
        assert not is_mutation(operation), operation


def test_resource_ids_come_from_identifier_fields_only() -> None:
    params = {
        "Name": "/orca/pods/u/env/main/TOKEN",
        "Value": "secret",
        "InstanceIds": ["i-1"],
        "Parameters": {"commands": ["echo i-9"]},
        "TagSpecifications": [{"Tags": [{"Key": "Name", "Value": "x"}]}],
    }
    assert resource_ids(params) == ("/orca/pods/u/env/main/TOKEN", "i-1")
    tagged = {"ResourceType": "Parameter", "ResourceId": "/orca/pods/u/status-key", "Tags": []}
    assert resource_ids(tagged) == ("/orca/pods/u/status-key",)  # SSM AddTagsToResource
    run = {"Instances": [{"InstanceId": "i-2", "ImageId": "ami-1"}, {"InstanceId": "i-3"}]}
    assert resource_ids({}, run) == ("i-2", "i-3")
    fleet = {"Instances": [{"InstanceIds": ["i-4", "i-5"]}], "FleetId": "fleet-1"}
    assert resource_ids({}, fleet) == ("i-4", "i-5", "fleet-1")
    command = {"Command": {"CommandId": "c-1", "Parameters": {"commands": ["x"]}}}
    assert resource_ids({"InstanceIds": ["i-1"]}, command) == ("i-1", "c-1")
    cancel = {"CancelledSpotInstanceRequests": [{"SpotInstanceRequestId": "sir-1"}]}
    assert resource_ids({"SpotInstanceRequestIds": ["sir-1"]}, cancel) == ("sir-1",)


def test_the_record_takes_pod_and_uid_from_the_workflow_id_and_classifies_errors() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    context = {"workflow_id": "pod/ml/train/uid-7", "component": "worker"}
    ok = audit_record(
        operation="ec2:RunInstances",
        resources=(),
        work_context=context,
        response={
            "Instances": [{"InstanceId": "i-1"}],
            "ResponseMetadata": {"RequestId": "r-1", "RetryAttempts": 2},
        },
        now=now,
    )
    assert (ok.outcome, ok.resource_ids, ok.request_id, ok.retry_attempts) == (
        "success",
        ("i-1",),
        "r-1",
        2,
    )
    assert (ok.pod, ok.pod_uid, ok.component) == ("ml/train", "uid-7", "worker")
    throttled = audit_record(
        operation="ec2:TerminateInstances",
        resources=("i-1",),
        work_context={},
        response={
            "Error": {"Code": "RequestLimitExceeded"},
            "ResponseMetadata": {"RequestId": "r"},
        },
    )
    assert (throttled.outcome, throttled.error_code) == ("throttled", "RequestLimitExceeded")
    lost = audit_record(
        operation="ssm:SendCommand",
        resources=("i-1",),
        work_context={},
        error=botocore.exceptions.EndpointConnectionError(endpoint_url="http://x"),
    )
    assert (lost.outcome, lost.error_code, lost.request_id) == (
        "transient",
        "EndpointConnectionError",
        None,
    )
