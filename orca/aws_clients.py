"""boto3 clients built from `AwsSettings`: one session per process, every client from it.

Credentials come from, in order: `aws.credentials` in the file (discouraged), `aws.profile`, or
boto3's default chain (environment, shared files, IRSA / instance role). `aws.roleARN` is assumed
on top through STS with automatic refresh. `aws.endpointURL` sends every call to another endpoint
(the AWS emulator of `orca dev`, LocalStack); nothing else in ORCA knows about emulators.

Every session gets the audit hooks (`orca.aws_audit`): each AWS mutation made through any client
of it is one record on the `orca.audit` logger.

botocore's `adaptive` retry mode already backs off on `RequestLimitExceeded` with jitter and a
client-side token bucket; ORCA's own retries (Temporal's) sit on top for longer outages.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import boto3
import botocore.exceptions
from botocore.config import Config

from orca.aws_audit import register_audit
from orca.settings import AwsSettings

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_pricing import PricingClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_ssm import SSMClient

_CLIENT_CONFIG = Config(
    retries={"mode": "adaptive", "max_attempts": 8},
    connect_timeout=5,
    read_timeout=30,
    max_pool_connections=64,
)


class AwsCredentialsError(Exception):
    """No usable AWS credentials; the message says where ORCA looked."""


@dataclass
class AwsClients:
    settings: AwsSettings

    @cached_property
    def session(self) -> boto3.Session:
        kwargs: dict[str, Any] = {"region_name": self.settings.region}
        if self.settings.credentials is not None:
            creds = self.settings.credentials
            kwargs["aws_access_key_id"] = creds.access_key_id
            kwargs["aws_secret_access_key"] = creds.secret_access_key.get_secret_value()
            if creds.session_token is not None:
                kwargs["aws_session_token"] = creds.session_token.get_secret_value()
        elif self.settings.profile:
            kwargs["profile_name"] = self.settings.profile
        try:
            session = boto3.Session(**kwargs)
        except botocore.exceptions.ProfileNotFound:
            raise AwsCredentialsError(
                f"aws.profile {self.settings.profile!r} is not in ~/.aws/config or "
                "~/.aws/credentials"
            ) from None
        if self.settings.role_arn:
            session = _assume_role(session, self.settings)
        register_audit(session.events)
        return session

    def client(self, service: str) -> Any:
        return self.session.client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.settings.endpoint,
            config=_CLIENT_CONFIG,
        )

    @cached_property
    def ec2(self) -> EC2Client:
        client: EC2Client = self.client("ec2")
        return client

    @cached_property
    def ssm(self) -> SSMClient:
        client: SSMClient = self.client("ssm")
        return client

    @cached_property
    def logs(self) -> CloudWatchLogsClient:
        client: CloudWatchLogsClient = self.client("logs")
        return client

    @cached_property
    def cloudwatch(self) -> CloudWatchClient:
        client: CloudWatchClient = self.client("cloudwatch")
        return client

    @cached_property
    def sqs(self) -> SQSClient:
        client: SQSClient = self.client("sqs")
        return client

    @cached_property
    def secretsmanager(self) -> Any:
        """Only DescribeSecret: ORCA never reads a secret's value (orca.secrets_manager)."""
        return self.client("secretsmanager")

    @cached_property
    def sts(self) -> Any:
        return self.client("sts")

    @cached_property
    def pricing(self) -> PricingClient:
        # The Pricing API lives in us-east-1 (and a few others) whatever the launch region.
        client: PricingClient = self.session.client(
            "pricing",
            region_name="us-east-1",
            endpoint_url=self.settings.endpoint,
            config=_CLIENT_CONFIG,
        )
        return client

    @cached_property
    def account_id(self) -> str:
        """The account ORCA's session (and so every instance it launches) is in: GetCallerIdentity
        needs no permission."""
        return str(self.client("sts").get_caller_identity()["Account"])

    def instance_arn(self, instance_id: str) -> str:
        """The ARN IAM puts in `ec2:SourceInstanceARN` for the instance's role credentials."""
        region = self.settings.region
        partition = (
            "aws-cn"
            if region.startswith("cn-")
            else "aws-us-gov"
            if region.startswith("us-gov-")
            else "aws"
        )
        return f"arn:{partition}:ec2:{region}:{self.account_id}:instance/{instance_id}"

    def check_credentials(self) -> None:
        """Fail with a clear message when no credentials can be found at all."""
        if self.session.get_credentials() is None:
            raise AwsCredentialsError(
                "no AWS credentials found: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                "aws.profile, a web identity (IRSA) or an instance role"
            )


def _assume_role(base: boto3.Session, settings: AwsSettings) -> boto3.Session:
    from botocore.credentials import DeferredRefreshableCredentials, create_assume_role_refresher

    sts = base.client("sts", endpoint_url=settings.endpoint)
    refresher = create_assume_role_refresher(
        sts, {"RoleArn": settings.role_arn, "RoleSessionName": "orca"}
    )
    credentials = DeferredRefreshableCredentials(refresher, method="assume-role")
    botocore_session = base._session  # boto3 exposes no public way to swap credentials
    botocore_session._credentials = credentials  # type: ignore[attr-defined]
    return boto3.Session(botocore_session=botocore_session, region_name=settings.region)
