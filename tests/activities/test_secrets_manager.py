"""A pod's Secrets Manager secrets against the AWS emulator: `plan_launch` refuses a missing or
foreign secret (DescribeSecret, before anything is launched), the grant's credentials read
exactly the pod's secrets, and AssumeRole is in the audit trail (never the credentials)."""

from __future__ import annotations

import io
import json
import uuid
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from orca.activities.models import PlanLaunchInput
from orca.activities.planning import PlanningActivities
from orca.activities.secrets_manager import PodSecretsManager
from orca.aws_clients import AwsClients
from orca.failure_types import FailureType
from orca.launch_spec import Annotation, LaunchSpec, parse_launch_spec
from orca.logging import bind_work_context
from orca.secrets_manager import NAMESPACE_TAG, SessionCredentials, credentials_parameter
from orca.settings import InstancesSettings, LimitsSettings
from orca_devstack.emulators.aws import AwsEmulator
from tests.activities.test_activities import Wiring, pod_manifest, settings_for
from tests.activities.test_aws_audit import audit_records, output

__all__ = ["output"]  # the fixture: the process's log output as the worker configures it

READER = "arn:aws:iam::123456789012:role/orca-secrets-reader"


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


def admin(aws: AwsEmulator, service: str) -> Any:
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=aws.endpoint_url,
        region_name=aws.region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def secret(aws: AwsEmulator, namespace: str | None, value: str = "v") -> str:
    tags = [] if namespace is None else [{"Key": NAMESPACE_TAG, "Value": namespace}]
    name = f"s-{uuid.uuid4().hex[:8]}"
    created = admin(aws, "secretsmanager").create_secret(Name=name, SecretString=value, Tags=tags)
    return str(created["ARN"])


def clients(aws: AwsEmulator, reader_role: str | None = READER) -> AwsClients:
    settings = settings_for(aws).aws.model_copy(update={"secrets_reader_role_arn": reader_role})
    return AwsClients(settings)


def spec_of(pod: dict[str, Any]) -> LaunchSpec:
    return parse_launch_spec(pod, InstancesSettings(), LimitsSettings())


def secret_pod(env: str = "", files: str = "") -> dict[str, Any]:
    annotations = {"orca.research/instance-type": "m5.large"}
    if env:
        annotations[Annotation.SECRETS_MANAGER_ENV] = env
    if files:
        annotations[Annotation.SECRETS_MANAGER_FILES] = files
    return pod_manifest(annotations)  # namespace "research"


async def plan_with_secrets(aws: AwsEmulator, pod: dict[str, Any], role: str | None) -> Any:
    wiring = Wiring(aws)
    settings = wiring.settings.model_copy(
        update={"aws": wiring.settings.aws.model_copy(update={"secrets_reader_role_arn": role})}
    )
    planning = PlanningActivities(
        settings,
        wiring.catalog,
        wiring.unavailable,
        secrets=PodSecretsManager(AwsClients(settings.aws)),
    )
    return await ActivityEnvironment().run(planning.plan_launch, PlanLaunchInput(pod=pod))


async def test_planning_accepts_the_namespaces_own_secrets(aws: AwsEmulator) -> None:
    mine = secret(aws, "research")
    plan = await plan_with_secrets(aws, secret_pod(env=f"DB={mine}", files=f"/f={mine}"), READER)
    assert plan.candidates
    assert plan.spec.secrets_manager_env[0].secret_arn == mine


@pytest.mark.parametrize(
    ("namespace", "says"),
    [
        ("vision", "belongs to namespace vision; pods of namespace research may read only"),
        (None, "has no such tag"),
    ],
)
async def test_planning_refuses_a_foreign_secret(
    aws: AwsEmulator, namespace: str | None, says: str
) -> None:
    foreign = secret(aws, namespace)
    with pytest.raises(ApplicationError) as failure:
        await plan_with_secrets(aws, secret_pod(files=f"/etc/db={foreign}"), READER)
    assert failure.value.type == FailureType.INVALID_POD_SPEC
    assert failure.value.non_retryable
    message = str(failure.value)
    assert f"{Annotation.SECRETS_MANAGER_FILES}: secret {foreign}" in message
    assert says in message
    assert f"{NAMESPACE_TAG}=research" in message


async def test_planning_refuses_a_secret_that_does_not_exist(aws: AwsEmulator) -> None:
    gone = f"arn:aws:secretsmanager:{aws.region}:123456789012:secret:gone-AbCdEf"
    with pytest.raises(ApplicationError) as failure:
        await plan_with_secrets(aws, secret_pod(env=f"DB={gone}"), READER)
    assert failure.value.type == FailureType.INVALID_POD_SPEC
    assert f"secret {gone} does not exist" in str(failure.value)


async def test_without_the_reader_role_the_annotation_is_refused(aws: AwsEmulator) -> None:
    mine = secret(aws, "research")
    with pytest.raises(ApplicationError) as failure:
        await plan_with_secrets(aws, secret_pod(env=f"DB={mine}"), None)
    assert failure.value.type == FailureType.INVALID_POD_SPEC
    assert "aws.secretsReaderRoleARN" in str(failure.value)


def test_the_grant_reads_exactly_the_pods_secrets(aws: AwsEmulator, output: io.StringIO) -> None:
    named = secret(aws, "research", json.dumps({"password": "p"}))
    unnamed = secret(aws, "research")
    spec = spec_of(secret_pod(env=f"DB={named}#password"))
    secrets = PodSecretsManager(clients(aws))
    with bind_work_context(pod=spec.pod.key, pod_uid=spec.pod.uid):
        grant = secrets.grant(spec)
    assert grant is not None
    ((name, value),) = PodSecretsManager.parameters(spec, grant).items()
    assert name == credentials_parameter(spec.pod.uid)
    assert SessionCredentials.from_parameter(value) == grant
    reader = boto3.client(
        "secretsmanager",
        endpoint_url=aws.endpoint_url,
        region_name=aws.region,
        aws_access_key_id=grant.access_key_id,
        aws_secret_access_key=grant.secret_access_key,
        aws_session_token=grant.session_token,
    )
    assert reader.get_secret_value(SecretId=named)["SecretString"] == '{"password": "p"}'
    with pytest.raises(ClientError) as caught:
        reader.get_secret_value(SecretId=unnamed)
    assert caught.value.response["Error"]["Code"] == "AccessDeniedException"
    (record,) = [r for r in audit_records(output) if r["operation"] == "sts:AssumeRole"]
    assert (record["outcome"], record["pod_uid"]) == ("success", spec.pod.uid)
    assert READER in record["resource_ids"]
    text = output.getvalue()
    assert grant.secret_access_key not in text
    assert grant.session_token not in text


def test_a_pod_without_secrets_gets_no_grant_and_makes_no_call(aws: AwsEmulator) -> None:
    spec = spec_of(secret_pod())
    secrets = PodSecretsManager(clients(aws, reader_role=None))
    secrets.check(spec)
    assert secrets.grant(spec) is None
    assert PodSecretsManager.parameters(spec, None) == {}
