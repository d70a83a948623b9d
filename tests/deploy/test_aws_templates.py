"""The IAM policies and the AWS stack (deploy/aws/orca.cfn.yaml) in deploy/: they parse, their tag
conditions hold, they allow every AWS call the code makes (a new boto3 call without a policy
update fails here, not in a cluster with AccessDenied), and the stack's policies are the JSON
files' exactly, with the account, region and names as parameters. The stack is also created on
the AWS emulator (test_aws_stack.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from orca import instance_tags
from orca.activities.pod_parameters import INSTANCE_ARN_TAG, SECRET_PREFIX
from orca.settings import AwsSettings, load_settings
from orca.watcher import interruption_events
from tests.deploy.conftest import DEPLOY, REPO

IAM = DEPLOY / "iam"
CFN = DEPLOY / "aws" / "orca.cfn.yaml"
MANAGED_BY = f"aws:ResourceTag/{instance_tags.MANAGED_BY}"
SERVICES = ("ec2", "ssm", "logs", "sqs", "pricing", "secretsmanager", "sts")


def load_policy(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((IAM / name).read_text())
    assert document["Version"] == "2012-10-17"
    return document


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def statements(policy: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in policy["Statement"] if action in as_list(s["Action"])]


def allowed_actions(policy: dict[str, Any]) -> set[str]:
    return {
        action
        for statement in policy["Statement"]
        if statement["Effect"] == "Allow"
        for action in as_list(statement["Action"])
    }


def config() -> Any:
    return load_settings(DEPLOY / "base" / "config.yaml")


@pytest.mark.parametrize("path", sorted(IAM.glob("*.json")), ids=lambda p: p.name)
def test_every_policy_is_valid_json_without_wildcard_actions(path: Path) -> None:
    document = json.loads(path.read_text())
    assert document["Version"] == "2012-10-17"
    sids = [s.get("Sid") for s in document["Statement"]]
    assert len(sids) == len(set(sids)), "duplicate Sid"
    for statement in document["Statement"]:
        assert statement["Effect"] in ("Allow", "Deny")
        for action in as_list(statement["Action"]):
            assert action != "*", path.name
            assert not action.endswith(":*"), f"{path.name}: {action}"
        assert "NotAction" not in statement
        assert "NotResource" not in statement


def test_terminate_and_modify_only_apply_to_orca_instances() -> None:
    policy = load_policy("orca-controller-policy.json")
    for action in ("ec2:TerminateInstances", "ec2:ModifyInstanceAttribute"):
        (statement,) = statements(policy, action)
        condition = statement["Condition"]["StringEquals"]
        assert condition[MANAGED_BY] == instance_tags.MANAGED_BY_VALUE
        cluster = condition[f"aws:ResourceTag/{instance_tags.CLUSTER}"]
        assert cluster == config().kubernetes.cluster_name
        assert as_list(statement["Resource"]) == [
            r for r in as_list(statement["Resource"]) if ":instance/" in r
        ]


def test_run_instances_requires_the_orca_request_tags() -> None:
    policy = load_policy("orca-controller-policy.json")
    created = [
        s
        for s in statements(policy, "ec2:RunInstances")
        if any(":instance/" in r for r in as_list(s["Resource"]))
    ]
    assert len(created) == 1, (
        "the instance resource must sit in exactly one, tag-conditioned statement"
    )
    condition = created[0]["Condition"]["StringEquals"]
    key = f"aws:RequestTag/{instance_tags.MANAGED_BY}"
    assert condition[key] == instance_tags.MANAGED_BY_VALUE
    assert any(":volume/" in r for r in as_list(created[0]["Resource"]))


def test_create_tags_only_while_launching() -> None:
    policy = load_policy("orca-controller-policy.json")
    actions = {
        statement["Condition"]["StringEquals"]["ec2:CreateAction"]
        for statement in statements(policy, "ec2:CreateTags")
    }
    assert actions == {"RunInstances", "CreateVolume"}


def test_volumes_are_created_tagged_and_deleted_only_as_orcas() -> None:
    policy = load_policy("orca-controller-policy.json")
    for action, prefix in (
        ("ec2:CreateVolume", "aws:RequestTag"),
        ("ec2:DeleteVolume", "aws:ResourceTag"),
    ):
        (statement,) = statements(policy, action)
        condition = statement["Condition"]["StringEquals"]
        assert condition[f"{prefix}/{instance_tags.MANAGED_BY}"] == instance_tags.MANAGED_BY_VALUE
        assert f"{prefix}/{instance_tags.CLUSTER}" in condition


@pytest.mark.parametrize("role", ["orca-controller-policy.json", "orca-watcher-policy.json"])
def test_send_command_only_to_orca_instances_with_the_shell_document(role: str) -> None:
    """The controller starts and stops containers, the watcher runs `kubectl exec` commands
    (docs/exec.md); neither may run a command on any other instance or with another document."""
    policy = load_policy(role)
    assert statements(policy, "ssm:SendCommand")
    for statement in statements(policy, "ssm:SendCommand"):
        for resource in as_list(statement["Resource"]):
            if ":instance/" in resource:
                tags = statement["Condition"]["StringEquals"]
                assert tags[f"ssm:resourceTag/{instance_tags.MANAGED_BY}"] == "orca"
            else:
                assert resource.endswith(":document/AWS-RunShellScript")


@pytest.mark.parametrize("role", ["orca-controller-policy.json", "orca-watcher-policy.json"])
def test_sessions_only_to_orca_instances_with_orcas_session_documents(role: str) -> None:
    """`kubectl exec -it` and `port-forward` (docs/exec.md): sessions only with ORCA's
    instances, only through the documents that run the given command or forward one port
    (never a plain shell on the host)."""
    policy = load_policy(role)
    found = statements(policy, "ssm:StartSession")
    assert found
    for statement in found:
        for resource in as_list(statement["Resource"]):
            if ":instance/" in resource:
                tags = statement["Condition"]["StringEquals"]
                assert tags[f"ssm:resourceTag/{instance_tags.MANAGED_BY}"] == "orca"
            else:
                assert resource.rsplit(":document/", 1)[1] in (
                    "AWS-StartInteractiveCommand",
                    "AWS-StartPortForwardingSession",
                )


def test_ssm_parameters_are_scoped_to_pod_secrets_and_public_amis() -> None:
    prefix = f"parameter{SECRET_PREFIX}/*"
    controller = load_policy("orca-controller-policy.json")
    for action in ("ssm:PutParameter", "ssm:GetParametersByPath", "ssm:DeleteParameters"):
        for statement in statements(controller, action):
            assert all(r.endswith(prefix) for r in as_list(statement["Resource"])), action
    # Public AMI parameters, and the pods' status keys (the status feed verifies reports).
    for statement in statements(controller, "ssm:GetParameter"):
        resources = as_list(statement["Resource"])
        assert all(r.endswith(("::parameter/aws/service/*", prefix)) for r in resources)
    instance = load_policy("orca-instance-policy.json")
    (statement,) = statements(instance, "ssm:GetParameter")
    assert all(r.endswith(prefix) for r in as_list(statement["Resource"]))


def test_an_instance_reads_only_the_secret_parameters_tagged_with_its_own_arn() -> None:
    """Instance-profile sessions carry no principal tags, but IAM puts the instance's ARN in
    `ec2:SourceInstanceARN`; ORCA tags each of a pod's parameters with its instance's ARN."""
    instance = load_policy("orca-instance-policy.json")
    reads = [
        s
        for s in instance["Statement"]
        if {"ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"}
        & set(as_list(s["Action"]))
    ]
    assert len(reads) == 1
    assert as_list(reads[0]["Action"]) == ["ssm:GetParameter"]
    assert reads[0]["Condition"] == {
        "StringEquals": {
            f"ssm:resourceTag/{INSTANCE_ARN_TAG}": "${ec2:SourceInstanceARN}",
        }
    }
    controller = load_policy("orca-controller-policy.json")
    (tagging,) = statements(controller, "ssm:AddTagsToResource")
    assert all(r.endswith(f"parameter{SECRET_PREFIX}/*") for r in as_list(tagging["Resource"]))


def test_an_instance_may_only_append_to_status_streams() -> None:
    """CloudWatch Logs has no condition key on the stream and no policy variable names the pod,
    so IAM cannot keep one instance out of another's status stream: the instance may only create
    streams and put events there (no listing of pods' streams, no reading); the reports are
    signed per pod (docs/security.md)."""
    instance = load_policy("orca-instance-policy.json")
    status = [
        s
        for s in instance["Statement"]
        if any("log-group:/orca/container-status" in r for r in as_list(s["Resource"]))
    ]
    assert len(status) == 1
    assert sorted(as_list(status[0]["Action"])) == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert as_list(status[0]["Resource"]) == [
        "arn:aws:logs:us-west-2:111122223333:log-group:/orca/container-status:log-stream:*"
    ]
    readers = {"logs:GetLogEvents", "logs:FilterLogEvents", "logs:StartQuery"}
    assert not readers & allowed_actions(instance)


def test_resources_match_the_configuration() -> None:
    """Region, log groups, queue, instance role: the policy names what config.yaml names."""
    settings = config()
    defaults = AwsSettings(region="us-west-2")
    assert (settings.aws.log_group, settings.aws.status_log_group) == (
        defaults.log_group,
        defaults.status_log_group,
    )
    controller = (IAM / "orca-controller-policy.json").read_text()
    for group in (settings.aws.log_group, settings.aws.status_log_group):
        assert f":log-group:{group}:*" in controller
        assert f":log-group:{group}:" in (IAM / "orca-instance-policy.json").read_text()
    queue_name = str(settings.aws.interruption_queue_url).rsplit("/", 1)[-1]
    assert f":sqs:{settings.aws.region}:" in controller
    assert controller.count(f':{queue_name}"') == 1
    policy = load_policy("orca-controller-policy.json")
    (pass_role,) = statements(policy, "iam:PassRole")
    assert pass_role["Resource"].endswith(f":role/{settings.aws.instance_profile}")
    assert pass_role["Condition"]["StringEquals"]["iam:PassedToService"] == "ec2.amazonaws.com"
    template = load_template()
    assert template["Parameters"]["QueueName"]["Default"] == queue_name


def test_trust_policies_name_the_right_principals() -> None:
    instance = load_policy("orca-instance-trust-policy.json")
    (statement,) = instance["Statement"]
    assert statement["Principal"] == {"Service": "ec2.amazonaws.com"}
    controller = load_policy("orca-controller-trust-policy.json")
    (statement,) = controller["Statement"]
    (subjects,) = [
        v for k, v in statement["Condition"]["StringEquals"].items() if k.endswith(":sub")
    ]
    assert sorted(subjects) == [
        "system:serviceaccount:orca-system:orca-watcher",
        "system:serviceaccount:orca-system:orca-worker",
    ]


def test_a_pod_reads_only_secrets_it_names_and_its_namespace_owns() -> None:
    """The reader role reads a secret only where its namespace tag is the session's (the
    session policy of orca.secrets_manager narrows that to the ARNs the pod names); the worker
    may assume it, tag the session and describe secrets, and never read one."""
    namespace = "orca.research/namespace"
    reader = load_policy("orca-secrets-reader-policy.json")
    assert allowed_actions(reader) == {"secretsmanager:GetSecretValue", "kms:Decrypt"}
    (read,) = statements(reader, "secretsmanager:GetSecretValue")
    assert read["Condition"] == {
        "StringEquals": {
            f"secretsmanager:ResourceTag/{namespace}": f"${{aws:PrincipalTag/{namespace}}}"
        }
    }
    (decrypt,) = statements(reader, "kms:Decrypt")
    assert decrypt["Condition"]["StringEquals"] == {
        "kms:ViaService": "secretsmanager.us-west-2.amazonaws.com"
    }
    (trust,) = load_policy("orca-secrets-reader-trust-policy.json")["Statement"]
    assert trust["Principal"] == {"AWS": "arn:aws:iam::111122223333:role/orca-worker"}
    assert sorted(as_list(trust["Action"])) == ["sts:AssumeRole", "sts:TagSession"]
    controller = load_policy("orca-controller-policy.json")
    (assume,) = statements(controller, "sts:AssumeRole")
    assert assume["Resource"] == "arn:aws:iam::111122223333:role/orca-secrets-reader"
    assert "sts:TagSession" in as_list(assume["Action"])
    assert "secretsmanager:GetSecretValue" not in allowed_actions(controller)
    assert "secretsmanager:DescribeSecret" in allowed_actions(controller)


# -- every AWS call the code makes is allowed ---------------------------------------------------

_CALL = re.compile(r"\b(" + "|".join(SERVICES) + r")\.([a-z_]+)\b")
_PAGINATOR = re.compile(r"\b(" + "|".join(SERVICES) + r")\.get_paginator\(\s*\"([a-z_]+)\"")
IAM_ACTION_OF_OPERATION = {
    # SQS authorizes its batch calls by the single-message action; there is no Batch action.
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
    "sqs:SendMessageBatch": "sqs:SendMessage",
}


def aws_operations(*folders: str) -> Iterator[tuple[str, str, str]]:
    """(IAM action, file, method) for each boto3 client method named in the controller code.

    The CLI, the emulators and the dev stack are left out: people run them, not the pods."""
    mappings = {
        service: boto3.client(
            service,  # type: ignore[call-overload]
            region_name="us-east-1",
            aws_access_key_id="unused",
            aws_secret_access_key="unused",
        ).meta.method_to_api_mapping
        for service in SERVICES
    }
    for folder in folders:
        for path in sorted((REPO / folder).rglob("*.py")):
            if {"cli", "emulators", "devstack"} & set(path.relative_to(REPO).parts):
                continue
            text = path.read_text()
            for service, method in _CALL.findall(text) + _PAGINATOR.findall(text):
                operation = mappings[service].get(method)
                if operation is not None:
                    action = f"{service}:{operation}"
                    action = IAM_ACTION_OF_OPERATION.get(action, action)
                    yield action, str(path.relative_to(REPO)), method


def test_controller_policy_allows_every_call_in_the_code() -> None:
    found = list(aws_operations("activities", "watcher", "worker", "orca", "workflows"))
    assert {"ec2:RunInstances", "ssm:SendCommand", "sqs:ReceiveMessage"} <= {a for a, _, _ in found}
    allowed = allowed_actions(load_policy("orca-controller-policy.json"))
    missing = sorted({f"{a} ({path}: {method})" for a, path, method in found if a not in allowed})
    assert not missing, "add to deploy/iam/orca-controller-policy.json: " + ", ".join(missing)


def test_watcher_policy_allows_every_call_in_the_watcher() -> None:
    allowed = allowed_actions(load_policy("orca-watcher-policy.json"))
    missing = sorted({a for a, _, _ in aws_operations("watcher")} - allowed)
    assert not missing, "add to deploy/iam/orca-watcher-policy.json: " + ", ".join(missing)
    assert allowed <= allowed_actions(load_policy("orca-controller-policy.json"))


# -- CloudFormation ---------------------------------------------------------------------------


class _CfnLoader(yaml.SafeLoader):
    """A safe loader that keeps CloudFormation's short-form tags as {"!Tag": value}."""


def _tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {f"!{suffix}": value}


_CfnLoader.add_multi_constructor("!", _tagged)


def load_template() -> dict[str, Any]:
    document: dict[str, Any] = yaml.load(CFN.read_text(), Loader=_CfnLoader)
    return document


def test_cloudformation_parses_and_routes_the_four_event_kinds_to_the_queue() -> None:
    template = load_template()
    resources = template["Resources"]
    queues = [n for n, r in resources.items() if r["Type"] == "AWS::SQS::Queue"]
    assert queues == ["InterruptionQueue"]
    assert resources["InterruptionQueue"]["Properties"]["SqsManagedSseEnabled"] is True
    rules = {n: r for n, r in resources.items() if r["Type"] == "AWS::Events::Rule"}
    routed: dict[str, dict[str, Any]] = {}
    for name, rule in rules.items():
        properties = rule["Properties"]
        (target,) = properties["Targets"]
        assert target["Arn"] == {"!GetAtt": "InterruptionQueue.Arn"}, name
        for detail_type in properties["EventPattern"]["detail-type"]:
            routed[detail_type] = properties["EventPattern"]
    assert set(routed) == {
        interruption_events.SPOT_WARNING,
        interruption_events.REBALANCE,
        interruption_events.STATE_CHANGE,
        interruption_events.HEALTH_EVENT,
    }
    states = routed[interruption_events.STATE_CHANGE]["detail"]["state"]
    assert set(states) == interruption_events.ENDING_STATES
    health = routed[interruption_events.HEALTH_EVENT]
    assert health["source"] == ["aws.health"]
    assert health["detail"] == {"service": ["EC2"], "eventTypeCategory": ["scheduledChange"]}


def test_queue_policy_lets_only_the_rules_send() -> None:
    resources = load_template()["Resources"]
    (policy,) = [r for r in resources.values() if r["Type"] == "AWS::SQS::QueuePolicy"]
    document = policy["Properties"]["PolicyDocument"]
    (allow,) = [s for s in document["Statement"] if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "events.amazonaws.com"}
    assert allow["Action"] == "sqs:SendMessage"
    sources = allow["Condition"]["ArnEquals"]["aws:SourceArn"]
    rules = [n for n, r in resources.items() if r["Type"] == "AWS::Events::Rule"]
    assert sorted(s["!GetAtt"] for s in sources) == sorted(f"{n}.Arn" for n in rules)
    (deny,) = [s for s in document["Statement"] if s["Effect"] == "Deny"]
    assert deny["Condition"]["Bool"]["aws:SecureTransport"] == "false"


# -- the stack's IAM policies are deploy/iam/*.json ---------------------------------------------

# What the JSON files write where the stack has a parameter, a pseudo parameter or an attribute.
EXAMPLE_OIDC = "oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
EXAMPLE_VALUES = {
    "AWS::Partition": "aws",
    "AWS::Region": "us-west-2",
    "AWS::AccountId": "111122223333",
    "OidcProvider": EXAMPLE_OIDC,
    "InterruptionQueue.Arn": "arn:aws:sqs:us-west-2:111122223333:orca-interruptions",
    "InstanceRole.Arn": "arn:aws:iam::111122223333:role/orca-instance",
    "WorkerRole.Arn": "arn:aws:iam::111122223333:role/orca-worker",
}
_SUB_VARIABLE = re.compile(r"\$\{([^}]+)\}")


def example_value(name: str, template: dict[str, Any]) -> str:
    if name in EXAMPLE_VALUES:
        return EXAMPLE_VALUES[name]
    return str(template["Parameters"][name]["Default"])


def resolve(value: Any, template: dict[str, Any]) -> Any:
    """The template's value with the JSON files' example account, region and names filled in
    (!Ref, !Sub, !GetAtt; parameters at their defaults)."""
    if isinstance(value, list):
        return [resolve(item, template) for item in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"!Ref"}:
        return example_value(value["!Ref"], template)
    if set(value) == {"!GetAtt"}:
        return example_value(value["!GetAtt"], template)
    if set(value) == {"!Sub"}:
        return _SUB_VARIABLE.sub(lambda m: example_value(m.group(1), template), value["!Sub"])
    return {key: resolve(item, template) for key, item in value.items()}


def role_policies(role: str) -> dict[str, Any]:
    template = load_template()
    properties = template["Resources"][role]["Properties"]
    return {
        policy["PolicyName"]: resolve(policy["PolicyDocument"], template)
        for policy in properties["Policies"]
    }


def trust_policy(role: str) -> dict[str, Any]:
    template = load_template()
    document = resolve(
        template["Resources"][role]["Properties"]["AssumeRolePolicyDocument"], template
    )
    parsed: dict[str, Any] = json.loads(document) if isinstance(document, str) else document
    return parsed


@pytest.mark.parametrize(
    ("role", "policy_file"),
    [
        ("WorkerRole", "orca-controller-policy.json"),
        ("WatcherRole", "orca-watcher-policy.json"),
        ("InstanceRole", "orca-instance-policy.json"),
        ("SecretsReaderRole", "orca-secrets-reader-policy.json"),
    ],
)
def test_stack_policies_equal_the_json_files(role: str, policy_file: str) -> None:
    (document,) = role_policies(role).values()
    assert document == load_policy(policy_file), (
        f"{role}'s policy in deploy/aws/orca.cfn.yaml differs from deploy/iam/{policy_file}"
    )


def test_stack_trust_policies_equal_the_json_files() -> None:
    assert trust_policy("InstanceRole") == load_policy("orca-instance-trust-policy.json")
    reader = load_policy("orca-secrets-reader-trust-policy.json")
    assert trust_policy("SecretsReaderRole") == reader
    both = load_policy("orca-controller-trust-policy.json")
    subjects = {}
    for role in ("WorkerRole", "WatcherRole"):
        (statement,) = trust_policy(role)["Statement"]
        conditions = statement["Condition"]["StringEquals"]
        subjects[role] = conditions.pop(f"{EXAMPLE_OIDC}:sub")
        (expected,) = json.loads(json.dumps(both["Statement"]))
        expected["Condition"]["StringEquals"].pop(f"{EXAMPLE_OIDC}:sub")
        assert statement == expected, role
    # Each role trusts only its own ServiceAccount (the JSON's one role trusts both).
    assert subjects == {
        "WorkerRole": "system:serviceaccount:orca-system:orca-worker",
        "WatcherRole": "system:serviceaccount:orca-system:orca-watcher",
    }


def test_instance_profile_and_log_groups_match_the_configuration() -> None:
    template = load_template()
    resources = template["Resources"]
    settings = config()
    profile = resources["InstanceProfile"]["Properties"]
    assert resolve(profile["InstanceProfileName"], template) == settings.aws.instance_profile
    assert profile["Roles"] == [{"!Ref": "InstanceRole"}]
    groups = {
        resolve(r["Properties"]["LogGroupName"], template): r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::Logs::LogGroup"
    }
    assert set(groups) == {settings.aws.log_group, settings.aws.status_log_group}
    for properties in groups.values():
        assert int(resolve(properties["RetentionInDays"], template)) > 0


def test_stack_outputs_name_real_chart_values() -> None:
    """The HelmValues output's --set keys, and every output's "Helm value ...", exist in the
    chart's values.yaml (a renamed value fails here)."""
    values = yaml.safe_load((DEPLOY / "helm" / "orca" / "values.yaml").read_text())
    outputs = load_template()["Outputs"]
    keys = re.findall(r"--set ([\w.]+)=", outputs["HelmValues"]["Value"]["!Sub"])
    keys += [
        match.group(1)
        for output in outputs.values()
        if (match := re.search(r"Helm value ([\w.]+)\.", output.get("Description", "")))
    ]
    assert len(keys) >= 12
    for key in keys:
        node: Any = values
        for part in key.split("."):
            assert isinstance(node, dict), key
            assert part in node, f"{key} is not a chart value"
            node = node[part]
