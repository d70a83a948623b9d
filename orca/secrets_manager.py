"""Secrets Manager secrets for a pod, fetched on its instance: the grant ORCA hands over (pure).

A pod names secrets by ARN in `orca.research/secrets-manager-env` (`NAME=<ARN>[#json-key]`) and
`orca.research/secrets-manager-files` (`/path=<ARN>[#json-key]`), parsed strictly by
`orca.launch_spec`. ORCA never reads a secret's value:

1. `plan_launch` checks each ARN with DescribeSecret (metadata only): it must exist, be in the
   pod's region (`aws.region`) and ORCA's account, and carry the tag `NAMESPACE_TAG` = the
   pod's namespace (`check_described_secret`). Anything else fails the pod with
   `InvalidPodSpec` before an instance is launched. Without `aws.secretsReaderRoleARN` the
   annotations are refused.
2. `start_containers` calls STS AssumeRole on the reader role with the inline session policy of
   `session_policy` (GetSecretValue on exactly the pod's ARNs, `kms:Decrypt` only through
   Secrets Manager in the region) and the session tag `NAMESPACE_TAG` = the pod's namespace, for
   `SESSION_SECONDS`. The reader role's own policy (deploy/iam/orca-secrets-reader-policy.json)
   allows GetSecretValue only where the secret's `NAMESPACE_TAG` equals the session's: the
   effective permission is the intersection, so a pod reads only secrets it names *and* its
   namespace owns, even if ORCA's check were skipped.
3. The temporary credentials become the pod's SecureString parameter
   `credentials_parameter(uid)` (`SessionCredentials.to_parameter`: the base64 of their JSON,
   one token without quotes, so the log redaction's `Value` shape covers it whole even in a
   read that is not decrypted), tagged with the instance's ARN
   like the pod's other secrets, redacted while ORCA holds them, never an activity input or
   result, deleted with the pod's parameters. The runner on the instance reads them, fetches
   each secret once at start (the credentials in its environment, never argv) and exposes the
   values as env vars and files exactly as it does for Kubernetes Secrets.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from orca.instance_contract import POD_PARAMETER_PREFIX
from orca.launch_spec import Annotation, InvalidPodSpec, LaunchSpec, secret_region

NAMESPACE_TAG = "orca.research/namespace"
"""The tag a secret carries naming the one namespace whose pods may read it; also the session
tag of the reader role's sessions."""
SESSION_SECONDS = 900
"""The grant's lifetime (AssumeRole's minimum): the runner fetches every secret once, at start."""
CREDENTIALS_NAME = "secrets-manager-credentials"
READER_ROLE_SETTING = "aws.secretsReaderRoleARN"


class SessionCredentials(BaseModel):
    """The reader session's temporary credentials, as the runner reads them from SSM."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    access_key_id: str = Field(alias="AccessKeyId")
    secret_access_key: str = Field(alias="SecretAccessKey")
    session_token: str = Field(alias="SessionToken")

    def to_json(self) -> str:
        return json.dumps(self.model_dump(by_alias=True), sort_keys=True)

    def to_parameter(self) -> str:
        """The parameter's value: base64 of the JSON (the runner decodes it)."""
        return base64.b64encode(self.to_json().encode("utf-8")).decode("ascii")

    @classmethod
    def from_parameter(cls, value: str) -> SessionCredentials:
        return cls.model_validate_json(base64.b64decode(value))

    def secret_values(self) -> tuple[str, ...]:
        """What the log redaction must know while ORCA holds them."""
        return (self.secret_access_key, self.session_token, self.to_parameter())


def credentials_parameter(pod_uid: str) -> str:
    return f"{POD_PARAMETER_PREFIX}/{pod_uid}/{CREDENTIALS_NAME}"


def pod_secret_arns(spec: LaunchSpec) -> tuple[str, ...]:
    """Every secret ARN the pod names, once each, in the order named."""
    named = [e.secret_arn for e in spec.secrets_manager_env]
    named += [f.secret_arn for f in spec.secrets_manager_files]
    return tuple(dict.fromkeys(named))


def annotation_naming(spec: LaunchSpec, arn: str) -> str:
    """The annotation an ARN came from (the env one when both name it)."""
    if any(e.secret_arn == arn for e in spec.secrets_manager_env):
        return Annotation.SECRETS_MANAGER_ENV
    return Annotation.SECRETS_MANAGER_FILES


def require_reader_role(spec: LaunchSpec, role_arn: str | None) -> str | None:
    """The reader role when the pod names secrets (None when it names none); `InvalidPodSpec`
    when it does and the feature is off."""
    arns = pod_secret_arns(spec)
    if not arns:
        return None
    if not role_arn:
        raise InvalidPodSpec(
            annotation_naming(spec, arns[0]),
            "Secrets Manager secrets are not enabled on this cluster: the operator sets "
            f"{READER_ROLE_SETTING} (docs/security.md); use a Kubernetes Secret instead",
        )
    return role_arn


def session_policy(arns: Sequence[str], region: str) -> dict[str, Any]:
    """The AssumeRole session policy: read exactly these secrets, decrypt only through Secrets
    Manager in the region (a secret under a customer managed key needs `kms:Decrypt`)."""
    suffix = ".amazonaws.com.cn" if region.startswith("cn-") else ".amazonaws.com"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadTheSecretsThePodNames",
                "Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": list(dict.fromkeys(arns)),
            },
            {
                "Sid": "DecryptThroughSecretsManager",
                "Effect": "Allow",
                "Action": "kms:Decrypt",
                "Resource": "*",
                "Condition": {
                    "StringEquals": {"kms:ViaService": f"secretsmanager.{region}{suffix}"}
                },
            },
        ],
    }


SESSION_POLICY_MAX_CHARACTERS = 2048
"""AWS's limit on an inline session policy's plaintext."""


def session_policy_text(arns: Sequence[str], region: str) -> str:
    """`session_policy` as AssumeRole's `Policy` (compact JSON)."""
    return json.dumps(session_policy(arns, region), separators=(",", ":"))


def check_session_policy_size(spec: LaunchSpec, region: str) -> None:
    """The pod names no more secrets than one session policy can list (checked at planning:
    AssumeRole would refuse it only after the instance is launched)."""
    arns = pod_secret_arns(spec)
    size = len(session_policy_text(arns, region))
    if size > SESSION_POLICY_MAX_CHARACTERS:
        raise InvalidPodSpec(
            annotation_naming(spec, arns[0]),
            f"the pod names {len(arns)} secrets, more than one grant can list (its session "
            f"policy would be {size} characters, AWS allows {SESSION_POLICY_MAX_CHARACTERS}); "
            "keep several values in one secret's JSON and name them by #key",
        )


def session_name(pod_uid: str) -> str:
    """RoleSessionName (at most 64 of `[\\w+=,.@-]`): CloudTrail shows which pod read what."""
    return f"orca-pod-{pod_uid}"[:64]


def session_tags(namespace: str) -> list[dict[str, str]]:
    return [{"Key": NAMESPACE_TAG, "Value": namespace}]


def check_secret_region(spec: LaunchSpec, region: str) -> None:
    """Every named secret is in ORCA's region (checked before any AWS call)."""
    for arn in pod_secret_arns(spec):
        if secret_region(arn) != region:
            raise InvalidPodSpec(
                annotation_naming(spec, arn),
                f"secret {arn} is in {secret_region(arn)}; pods here run in {region} "
                f"(aws.region) and can read secrets of {region} only",
            )


def check_secret_account(spec: LaunchSpec, account: str) -> None:
    """Every named secret is in ORCA's account: the reader role reads no other account's."""
    for arn in pod_secret_arns(spec):
        owner = arn.split(":")[4]
        if owner != account:
            raise InvalidPodSpec(
                annotation_naming(spec, arn),
                f"secret {arn} is in account {owner}; pods here can read secrets of this "
                f"cluster's account {account} only",
            )


def check_described_secret(
    spec: LaunchSpec, arn: str, description: Mapping[str, Any] | None
) -> None:
    """DescribeSecret's answer (None: no such secret) allows the pod to name the secret: it
    exists, is not scheduled for deletion and is tagged with the pod's namespace."""
    annotation = annotation_naming(spec, arn)
    namespace = spec.pod.namespace
    required = f"a secret tagged {NAMESPACE_TAG}={namespace}"
    if description is None:
        raise InvalidPodSpec(
            annotation,
            f"secret {arn} does not exist (or ORCA may not describe it); name {required}",
        )
    if description.get("DeletedDate") is not None:
        raise InvalidPodSpec(annotation, f"secret {arn} is scheduled for deletion")
    tags = {str(t.get("Key")): str(t.get("Value")) for t in description.get("Tags") or ()}
    owner = tags.get(NAMESPACE_TAG)
    if owner != namespace:
        found = "has no such tag" if owner is None else f"belongs to namespace {owner}"
        raise InvalidPodSpec(
            annotation,
            f"secret {arn} {found}; pods of namespace {namespace} may read only {required}",
        )
