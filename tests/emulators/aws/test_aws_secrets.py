"""Secrets Manager and STS in the AWS emulator, as strict as IAM: an assumed-role session reads a
secret only when its session policy names it and its namespace tag matches; the emulated runner
fetches a pod's secrets with the credentials in its parameter."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from orca.instance_contract import read_runner_document
from orca.launch_spec import Annotation
from orca.secrets_manager import (
    NAMESPACE_TAG,
    SessionCredentials,
    credentials_parameter,
    session_policy,
)
from orca_devstack.emulators.aws import AwsEmulator
from tests.emulators.aws.test_aws_ssm import invocation, running_instance, send, status_events
from tests.fixtures.aws import AwsClientFactory, wait_until
from tests.unit.pods import container, pod
from tests.unit.test_bootstrap_script import render

READER = "arn:aws:iam::123456789012:role/orca-secrets-reader"


def secret(aws_client: AwsClientFactory, name: str, value: str, namespace: str | None) -> str:
    tags = [] if namespace is None else [{"Key": NAMESPACE_TAG, "Value": namespace}]
    return str(
        aws_client("secretsmanager").create_secret(Name=name, SecretString=value, Tags=tags)["ARN"]
    )


def session(
    aws_client: AwsClientFactory, arns: list[str], namespace: str, duration: int = 900
) -> dict[str, str]:
    answer = aws_client("sts").assume_role(
        RoleArn=READER,
        RoleSessionName="orca-pod-test",
        Policy=json.dumps(session_policy(arns, "us-west-2")),
        Tags=[{"Key": NAMESPACE_TAG, "Value": namespace}],
        DurationSeconds=duration,
    )
    return dict(answer["Credentials"])


def reader(aws: AwsEmulator, credentials: dict[str, str]) -> Any:
    import boto3

    return boto3.client(
        "secretsmanager",
        endpoint_url=aws.endpoint_url,
        region_name="us-west-2",
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )


def test_a_session_reads_only_named_secrets_of_its_namespace(
    aws: AwsEmulator, aws_client: AwsClientFactory
) -> None:
    mine = secret(aws_client, "ml/db", "s3cret", "ml")
    unnamed = secret(aws_client, "ml/other", "x", "ml")
    foreign = secret(aws_client, "vision/db", "y", "vision")
    untagged = secret(aws_client, "loose", "z", None)
    client = reader(aws, session(aws_client, [mine, foreign, untagged], "ml"))
    assert client.get_secret_value(SecretId=mine)["SecretString"] == "s3cret"
    for arn, why in (
        (unnamed, "no session policy allows"),
        (foreign, "no identity-based policy allows"),
        (untagged, "no identity-based policy allows"),
    ):
        with pytest.raises(ClientError) as caught:
            client.get_secret_value(SecretId=arn)
        assert caught.value.response["Error"]["Code"] == "AccessDeniedException"
        assert f"secretsmanager:GetSecretValue on resource: {arn} because {why}" in str(
            caught.value
        )
    # the emulator's own keys are an administrator's
    assert aws_client("secretsmanager").get_secret_value(SecretId=foreign)["SecretString"] == "y"


def test_assume_role_refuses_a_session_longer_than_the_role_allows(
    aws: AwsEmulator, aws_client: AwsClientFactory
) -> None:
    with pytest.raises(ClientError) as caught:
        session(aws_client, [], "ml", duration=7200)
    assert "MaxSessionDuration" in str(caught.value)


def start(
    aws: AwsEmulator, aws_client: AwsClientFactory, arn: str, namespace: str, key: str = "password"
) -> tuple[str, str, str]:
    """A pod of namespace `research` whose env and file come from `arn`, granted by a session
    tagged `namespace`; returns (instance, command, pod uid)."""
    ssm = aws_client("ssm")
    instance_id = running_instance(aws, aws_client)
    manifest = pod(
        annotations={
            "orca.research/instance-type": "t3.small",
            "emulator.orca.research/run-seconds": "inf",
            Annotation.SECRETS_MANAGER_ENV: f"DB_PASSWORD={arn}#{key}",
            Annotation.SECRETS_MANAGER_FILES: f"/etc/db.json={arn}",
        },
        containers=[container("trainer")],
    )
    plan = render(manifest)
    document = read_runner_document(plan.script)
    assert document is not None
    uid = document.pod_uid
    credentials = SessionCredentials.model_validate(session(aws_client, [arn], namespace))
    ssm.put_parameter(
        Name=credentials_parameter(uid),
        Value=credentials.to_parameter(),
        Type="SecureString",
        Overwrite=True,
    )
    return instance_id, send(ssm, instance_id, "orca start research/train-1", plan.script), uid


def test_the_emulated_runner_gives_the_containers_their_secrets(
    aws: AwsEmulator, aws_client: AwsClientFactory
) -> None:
    value = json.dumps({"password": "pa55", "user": "u"})
    arn = secret(aws_client, "research/db", value, "research")
    _, _, uid = start(aws, aws_client, arn, "research")
    view = aws.control.container_view(uid)
    assert view["env"]["trainer"] == {"DB_PASSWORD": "pa55"}
    assert view["files"]["trainer"] == {"/etc/db.json": value}
    assert not view["finished"]


def test_a_grant_that_cannot_read_the_secret_fails_the_containers(
    aws: AwsEmulator, aws_client: AwsClientFactory
) -> None:
    arn = secret(aws_client, "research/db", json.dumps({"password": "p"}), "research")
    instance_id, command_id, uid = start(aws, aws_client, arn, "vision")  # the wrong session tag
    ssm = aws_client("ssm")
    wait_until(lambda: invocation(ssm, command_id, instance_id)["Status"] == "Failed")
    output = invocation(ssm, command_id, instance_id)["StandardOutputContent"]
    assert f"could not read secret {arn}: AccessDeniedException" in output
    (event,) = status_events(aws_client("logs"), uid)
    assert (event["state"], event["reason"], event["exitCode"]) == ("terminated", "Error", 1)
    assert aws.control.container_view(uid)["env"] == {}


def test_a_missing_json_key_fails_the_containers(
    aws: AwsEmulator, aws_client: AwsClientFactory
) -> None:
    arn = secret(aws_client, "research/db", json.dumps({"password": "p"}), "research")
    instance_id, command_id, _ = start(aws, aws_client, arn, "research", key="nope")
    ssm = aws_client("ssm")
    wait_until(lambda: invocation(ssm, command_id, instance_id)["Status"] == "Failed")
    assert (
        "has no JSON key 'nope'"
        in invocation(ssm, command_id, instance_id)["StandardOutputContent"]
    )
