"""deploy/aws/orca.cfn.yaml created as a stack on the AWS emulator (moto's CloudFormation, over
HTTP), its resources read back with the ordinary APIs, and its outputs fed to the Helm chart as
docs/deploy.md says, so the rendered ConfigMap loads as ORCA's settings.

moto's CloudFormation creates every resource type of the stack except AWS::SQS::QueuePolicy,
which it skips with a warning; that policy is checked on the parsed template
(test_aws_templates.py::test_queue_policy_lets_only_the_rules_send). Inline role policies come
back from moto's GetRolePolicy in a form the real IAM does not return (a Python repr), so their
content is checked on the parsed template too (test_stack_policies_equal_the_json_files); here
only their names are read.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from orca.settings import load_settings
from orca.watcher import interruption_events
from orca_devstack.emulators.aws import AwsEmulator
from tests.deploy.conftest import DEPLOY, render_chart, strictly_invalid
from tests.deploy.test_kustomize import config_map, named
from tests.fixtures.aws import AwsClientFactory

pytestmark = pytest.mark.filterwarnings(r"ignore:Tried to parse AWS..SQS..QueuePolicy:UserWarning")

TEMPLATE = DEPLOY / "aws" / "orca.cfn.yaml"
OIDC = "oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
# Names of their own: the emulator's account already has ORCA's default queue and log groups.
PARAMETERS = {
    "ClusterName": "cfn-test",
    "OidcProvider": OIDC,
    "QueueName": "cfn-test-interruptions",
    "InstanceRoleName": "cfn-test-instance",
    "PodLogGroupName": "/cfn-test/pods",
    "StatusLogGroupName": "/cfn-test/container-status",
    "LogRetentionDays": "14",
}


def wait_for_stack(cloudformation: Any, name: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        (stack,) = cloudformation.describe_stacks(StackName=name)["Stacks"]
        if not stack["StackStatus"].endswith("_IN_PROGRESS") or time.monotonic() > deadline:
            return dict(stack)
        time.sleep(0.1)


@pytest.fixture(scope="module")
def client(aws_emulator: AwsEmulator) -> AwsClientFactory:
    """boto3 clients for the emulator (the module shares one stack, so not `aws_client`)."""

    def make(service: str) -> Any:
        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=aws_emulator.endpoint_url,
            region_name=aws_emulator.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    return make


@pytest.fixture(scope="module")
def stack(aws_emulator: AwsEmulator, client: AwsClientFactory) -> dict[str, str]:
    """The stack created once on a freshly reset emulator; its outputs."""
    aws_emulator.control.reset()
    cloudformation = client("cloudformation")
    cloudformation.create_stack(
        StackName="orca",
        TemplateBody=TEMPLATE.read_text(),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in PARAMETERS.items()],
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )
    created = wait_for_stack(cloudformation, "orca")
    assert created["StackStatus"] == "CREATE_COMPLETE", created.get("StackStatusReason")
    return {o["OutputKey"]: o["OutputValue"] for o in created["Outputs"]}


def test_stack_creates_the_roles_for_irsa(stack: dict[str, str], client: AwsClientFactory) -> None:
    iam = client("iam")
    for output, account, policy in (
        ("WorkerRoleArn", "orca-worker", "orca-controller"),
        ("WatcherRoleArn", "orca-watcher", "orca-watcher"),
    ):
        name = stack[output].rsplit("/", 1)[-1]
        role = iam.get_role(RoleName=name)["Role"]
        assert role["Arn"] == stack[output]
        trust = role["AssumeRolePolicyDocument"]
        (statement,) = trust["Statement"]
        assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
        assert statement["Principal"]["Federated"].endswith(f":oidc-provider/{OIDC}")
        assert statement["Condition"]["StringEquals"] == {
            f"{OIDC}:aud": "sts.amazonaws.com",
            f"{OIDC}:sub": f"system:serviceaccount:orca-system:{account}",
        }
        assert iam.list_role_policies(RoleName=name)["PolicyNames"] == [policy]


def test_stack_creates_the_instance_profile_with_the_instance_role(
    stack: dict[str, str], client: AwsClientFactory
) -> None:
    iam = client("iam")
    assert stack["InstanceProfileName"] == PARAMETERS["InstanceRoleName"]
    profile = iam.get_instance_profile(InstanceProfileName=stack["InstanceProfileName"])
    (role,) = profile["InstanceProfile"]["Roles"]
    assert role["Arn"] == stack["InstanceRoleArn"]
    trust = role["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    assert iam.list_role_policies(RoleName=role["RoleName"])["PolicyNames"] == ["orca-instance"]


def test_stack_creates_log_groups_with_retention(
    stack: dict[str, str], client: AwsClientFactory
) -> None:
    groups = client("logs").describe_log_groups(logGroupNamePrefix="/cfn-test/")["logGroups"]
    assert {g["logGroupName"]: g.get("retentionInDays") for g in groups} == {
        PARAMETERS["PodLogGroupName"]: 14,
        PARAMETERS["StatusLogGroupName"]: 14,
    }
    assert stack["PodLogGroupName"] == PARAMETERS["PodLogGroupName"]
    assert stack["StatusLogGroupName"] == PARAMETERS["StatusLogGroupName"]


def test_stack_routes_the_four_event_kinds_to_its_queue(
    stack: dict[str, str], client: AwsClientFactory
) -> None:
    sqs = client("sqs")
    url = stack["InterruptionQueueURL"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["QueueArn"] == stack["InterruptionQueueArn"]
    assert attributes["MessageRetentionPeriod"] == "300"
    assert attributes["VisibilityTimeout"] == "60"
    assert attributes["SqsManagedSseEnabled"] == "true"
    events = client("events")
    routed: set[str] = set()
    for rule in events.list_rules(NamePrefix="orca-")["Rules"]:
        targets = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
        assert [t["Arn"] for t in targets] == [stack["InterruptionQueueArn"]]
        routed.update(json.loads(rule["EventPattern"])["detail-type"])
    assert routed == {
        interruption_events.SPOT_WARNING,
        interruption_events.REBALANCE,
        interruption_events.STATE_CHANGE,
        interruption_events.HEALTH_EVENT,
    }


def test_stack_outputs_install_the_chart(
    stack: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`helm template` with the HelmValues output, as docs/deploy.md does it: the ServiceAccounts
    carry the roles, and ORCA loads the ConfigMap with the stack's names."""
    arguments = stack["HelmValues"].split()
    assert arguments[0::2] == ["--set"] * (len(arguments) // 2)
    objects = render_chart(*arguments)
    assert strictly_invalid(objects) == []
    for process in ("worker", "watcher"):
        account = named(objects, "ServiceAccount", f"orca-{process}")
        role = account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
        assert role == stack[f"{process.capitalize()}RoleArn"]
    path = tmp_path / "config.yaml"
    path.write_text(config_map(objects)["data"]["config.yaml"])
    for variable in [n for n in os.environ if n.startswith("ORCA_")]:
        monkeypatch.delenv(variable)
    settings = load_settings(path)
    assert settings.aws.interruption_queue_url == stack["InterruptionQueueURL"]
    assert settings.aws.instance_profile == stack["InstanceProfileName"]
    assert settings.aws.log_group == stack["PodLogGroupName"]
    assert settings.aws.status_log_group == stack["StatusLogGroupName"]
    assert settings.kubernetes.cluster_name == PARAMETERS["ClusterName"]
