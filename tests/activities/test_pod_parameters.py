"""A pod's secret parameters in SSM Parameter Store, against the AWS emulator."""

from __future__ import annotations

import uuid

import pytest

from orca.activities.pod_parameters import (
    INSTANCE_ARN_TAG,
    PodParameters,
    pod_uid_of,
    secret_parameter_prefix,
)
from orca.aws_clients import AwsClients
from orca_devstack.emulators.aws import AwsEmulator
from tests.activities.test_activities import settings_for


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


def test_a_pods_parameters_are_written_listed_and_deleted_in_batches(aws: AwsEmulator) -> None:
    parameters = PodParameters(AwsClients(settings_for(aws).aws))
    pod, other = str(uuid.uuid4()), str(uuid.uuid4())
    # More than one DeleteParameters call's worth (10 names).
    mine = {f"{secret_parameter_prefix(pod)}env/KEY_{n}": f"value-{n}" for n in range(12)}
    parameters.put(mine, "i-0123456789abcdef0")
    parameters.put({f"{secret_parameter_prefix(other)}env/KEY": "kept"}, "i-0fedcba9876543210")
    ssm = AwsClients(settings_for(aws).aws).ssm
    tags = ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=next(iter(mine)))
    # The instance policy lets only the instance with this ARN read the parameter.
    assert tags["TagList"] == [
        {
            "Key": INSTANCE_ARN_TAG,
            "Value": "arn:aws:ec2:us-west-2:123456789012:instance/i-0123456789abcdef0",
        }
    ]
    listed = parameters.list()
    assert {name for name, _ in listed} == {*mine, f"{secret_parameter_prefix(other)}env/KEY"}
    assert {pod_uid_of(name) for name, _ in listed} == {pod, other}
    parameters.delete_pod(pod)
    assert [name for name, _ in parameters.list()] == [f"{secret_parameter_prefix(other)}env/KEY"]
    parameters.delete_pod(pod)  # nothing left is fine
