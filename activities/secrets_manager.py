"""A pod's Secrets Manager secrets: checked before launch, granted to its instance at start.

The rules are `orca.secrets_manager` (pure); this module makes the two AWS calls. `check` runs in
`plan_launch`: DescribeSecret per named ARN (metadata only, never a value), so a missing or
foreign secret fails the pod with `InvalidPodSpec` before anything is launched. `grant` runs in
`start_containers`: STS AssumeRole on `aws.secretsReaderRoleARN` with the session policy naming
exactly the pod's ARNs and the session tag naming its namespace; it returns the SSM parameters
to write (the temporary credentials), which the caller stores and redacts like the pod's other
secrets. Neither returns anything that reaches an activity result.
"""

from __future__ import annotations

import botocore.exceptions

from orca.aws_clients import AwsClients
from orca.aws_errors import is_not_found
from orca.launch_spec import LaunchSpec
from orca.secrets_manager import (
    SESSION_SECONDS,
    SessionCredentials,
    check_described_secret,
    check_secret_account,
    check_secret_region,
    check_session_policy_size,
    credentials_parameter,
    pod_secret_arns,
    require_reader_role,
    session_name,
    session_policy_text,
    session_tags,
)


class PodSecretsManager:
    def __init__(self, aws: AwsClients) -> None:
        self._aws = aws

    def check(self, spec: LaunchSpec) -> None:
        """Raises `InvalidPodSpec` unless every secret the pod names may be granted to it."""
        if require_reader_role(spec, self._aws.settings.secrets_reader_role_arn) is None:
            return
        check_secret_region(spec, self._aws.settings.region)
        check_secret_account(spec, self._aws.account_id)
        check_session_policy_size(spec, self._aws.settings.region)
        for arn in pod_secret_arns(spec):
            try:
                description = self._aws.secretsmanager.describe_secret(SecretId=arn)
            except botocore.exceptions.ClientError as error:
                if not is_not_found(error):
                    raise
                description = None
            check_described_secret(spec, arn, description)

    def grant(self, spec: LaunchSpec) -> SessionCredentials | None:
        """Temporary credentials that read exactly the pod's secrets (None: it names none)."""
        role_arn = require_reader_role(spec, self._aws.settings.secrets_reader_role_arn)
        if role_arn is None:
            return None
        answer = self._aws.sts.assume_role(
            RoleArn=role_arn,
            RoleSessionName=session_name(spec.pod.uid),
            Policy=session_policy_text(pod_secret_arns(spec), self._aws.settings.region),
            Tags=session_tags(spec.pod.namespace),
            DurationSeconds=SESSION_SECONDS,
        )
        return SessionCredentials.model_validate(answer["Credentials"])

    @staticmethod
    def parameters(spec: LaunchSpec, credentials: SessionCredentials | None) -> dict[str, str]:
        """The SSM parameter the runner reads the credentials from."""
        if credentials is None:
            return {}
        return {credentials_parameter(spec.pod.uid): credentials.to_parameter()}
