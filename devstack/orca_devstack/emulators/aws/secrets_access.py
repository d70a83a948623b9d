"""Who may read a Secrets Manager secret: IAM as strict as AWS for assumed-role sessions.

moto keeps an AssumeRole session's inline policy but neither checks it nor keeps the session
tags, so a GetSecretValue signed with any credentials would read any secret. The middleware
records each session it answers (``record``: access key ID → role, session policy, session tags,
expiry) and asks ``authorize`` before moto answers a GetSecretValue signed with one of those
keys (the emulated instances ask it too, reading their pod's secrets with the credentials ORCA
delivered). A session reads a secret only when, as in AWS:

* its session policy allows ``secretsmanager:GetSecretValue`` on the secret's ARN (``*`` and
  ``?`` wildcards; an explicit Deny wins; no policy means the role's permissions alone), and
* the role's own policy allows it: the emulator plays the reader role of deploy/iam
  (``orca-secrets-reader-policy.json``), which allows it only where the secret's tag
  ``orca.research/namespace`` equals the session tag of the same key;
* the session has not expired.

Anything else is ``AccessDeniedException`` with AWS's wording. Calls signed with the emulator's
static keys (not a session) are an administrator's and pass, as moto answers them.
"""

from __future__ import annotations

import fnmatch
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from orca_devstack.emulators.aws.errors import AwsError

NAMESPACE_TAG = "orca.research/namespace"
GET_SECRET_VALUE = "secretsmanager:GetSecretValue"
MIN_DURATION_SECONDS = 900
MAX_DURATION_SECONDS = 3600
"""A role's default maximum session duration."""


@dataclass(frozen=True)
class RoleSession:
    role_arn: str
    session_arn: str
    policy: Mapping[str, Any] | None
    tags: Mapping[str, str]
    expires_at: float


@dataclass
class SecretsAccess:
    sessions: dict[str, RoleSession] = field(default_factory=dict)

    def reset(self) -> None:
        self.sessions.clear()

    def record(self, access_key_id: str, session: RoleSession) -> None:
        self.sessions[access_key_id] = session

    def authorize(self, access_key_id: str, secret_arn: str, tags: Mapping[str, str]) -> None:
        """Raise ``AccessDeniedException`` unless the key may read the secret."""
        session = self.sessions.get(access_key_id)
        if session is None:
            return  # the emulator's static credentials: an administrator
        if time.time() >= session.expires_at:
            raise AwsError.of(
                "ExpiredTokenException", "The security token included in the request is expired"
            )
        denied = f"User: {session.session_arn} is not authorized to perform: {GET_SECRET_VALUE} "
        denied += f"on resource: {secret_arn} because "
        if session.policy is not None and not policy_allows(session.policy, secret_arn):
            raise AwsError.of(
                "AccessDeniedException",
                denied + f"no session policy allows the {GET_SECRET_VALUE} action",
            )
        wanted = session.tags.get(NAMESPACE_TAG)
        if wanted is None or tags.get(NAMESPACE_TAG) != wanted:
            raise AwsError.of(
                "AccessDeniedException",
                denied + f"no identity-based policy allows the {GET_SECRET_VALUE} action",
            )


def _listed(value: str | Iterable[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def policy_allows(policy: Mapping[str, Any], resource: str) -> bool:
    """Whether the policy document allows GetSecretValue on the resource (conditions on other
    actions ignored: GetSecretValue's statements here carry none)."""
    allowed = False
    for statement in _listed_statements(policy.get("Statement")):
        actions = _listed(statement.get("Action") or [])
        if not any(fnmatch.fnmatchcase(GET_SECRET_VALUE, a) for a in actions):
            continue
        resources = _listed(statement.get("Resource") or [])
        if not any(fnmatch.fnmatchcase(resource, r) for r in resources):
            continue
        if statement.get("Effect") == "Deny":
            return False
        if statement.get("Effect") == "Allow" and not statement.get("Condition"):
            allowed = True
    return allowed


def _listed_statements(value: Any) -> list[Mapping[str, Any]]:
    if isinstance(value, Mapping):
        return [value]
    return [s for s in value or () if isinstance(s, Mapping)]


def parse_policy(text: str | None) -> Mapping[str, Any] | None:
    """A session policy as AssumeRole received it; malformed is AWS's MalformedPolicyDocument."""
    if not text:
        return None
    try:
        policy = json.loads(text)
    except ValueError:
        raise AwsError.of(
            "MalformedPolicyDocument", "The policy is not in the valid JSON format."
        ) from None
    if not isinstance(policy, Mapping):
        raise AwsError.of("MalformedPolicyDocument", "The policy is not a JSON object.")
    return policy


def check_duration(seconds: int) -> None:
    if not MIN_DURATION_SECONDS <= seconds <= MAX_DURATION_SECONDS:
        raise AwsError.of(
            "ValidationError",
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
            if seconds > MAX_DURATION_SECONDS
            else f"1 validation error detected: Value '{seconds}' at 'durationSeconds' failed to "
            f"satisfy constraint: Member must have value greater than or equal to "
            f"{MIN_DURATION_SECONDS}",
        )
