"""The operator commands' connections to Temporal, Kubernetes and AWS, with failures as messages.

Every command that talks to a service goes through here, so "the service is not there" reads the
same everywhere: the address that was tried, the setting that chooses it, exit code 1 (exit code 2
when the configuration itself is unusable). No traceback reaches the user for something they can
fix by starting a server or correcting a setting.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import botocore.exceptions
import urllib3.exceptions
from kubernetes import client as k8s
from temporalio.client import Client

from orca.aws_clients import AwsClients, AwsCredentialsError
from orca.cli.errors import EXIT_FAILURE, EXIT_USAGE, CommandError
from orca.kube_clients import KubeClients, KubeConfigError
from orca.logging import configure_logging
from orca.selection import CatalogSnapshot
from orca.settings import LogLevel, Settings, TemporalSettings, load_settings
from orca.temporal_client import TemporalUnavailable, connect

T = TypeVar("T")


def load_command_settings(config_path: Path | None) -> Settings:
    """The settings, with logging on stderr at warning level (debug stays debug), so a
    command's output is only what it prints."""
    settings = load_settings(config_path)
    logging_settings = settings.logging
    if logging_settings.level is not LogLevel.DEBUG:
        logging_settings = logging_settings.model_copy(update={"level": LogLevel.WARNING})
    configure_logging(logging_settings, component="cli")
    return settings


async def temporal(settings: Settings) -> Client:
    """A client for `settings.temporal`, or `CommandError` naming the address and the setting."""
    try:
        return await connect(settings.temporal)
    except TemporalUnavailable as error:
        raise CommandError(str(error), EXIT_FAILURE) from None


def kube_core(settings: Settings) -> k8s.CoreV1Api:
    """The Kubernetes core API, or `CommandError` (exit 2) when no configuration is usable."""
    try:
        return KubeClients(settings.kubernetes).core
    except KubeConfigError as error:
        raise CommandError(str(error), EXIT_USAGE) from None


def kube_call(core: k8s.CoreV1Api, what: str, call: Callable[[], T]) -> T:
    """Run one Kubernetes API call; an unreachable API server becomes a `CommandError`.

    `ApiException`s are left to the caller: only it knows what a 404 or 409 means there.
    """
    try:
        return call()
    except (urllib3.exceptions.HTTPError, OSError) as error:
        host = core.api_client.configuration.host
        raise CommandError(
            f"cannot reach the Kubernetes API server at {host} to {what} ({_reason(error)}). "
            "Check kubernetes.kubeconfig / kubernetes.context (or KUBECONFIG) and that the "
            "cluster is up.",
            EXIT_FAILURE,
        ) from None


def api_message(error: k8s.ApiException) -> str:
    """The API server's own sentence from a failed call (its Status message), else the reason."""
    try:
        body = json.loads(error.body or "{}")
    except (TypeError, ValueError):
        body = {}
    message = body.get("message") if isinstance(body, dict) else None
    return str(message or error.reason or error.status)


async def instance_catalog(settings: Settings) -> tuple[CatalogSnapshot, dict[str, str]]:
    """The region's catalog and `zone -> subnet`, fetched exactly as the worker fetches them."""
    from orca.activities.instance_catalog import InstanceCatalog

    try:
        return await InstanceCatalog(AwsClients(settings.aws), settings.aws).snapshot()
    except AwsCredentialsError as error:
        raise CommandError(str(error), EXIT_USAGE) from None
    except botocore.exceptions.NoCredentialsError:
        raise CommandError(
            "no AWS credentials found to read the instance catalog; set aws.profile, "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run where an instance role is available",
            EXIT_FAILURE,
        ) from None
    except botocore.exceptions.EndpointConnectionError as error:
        raise CommandError(
            f"cannot reach AWS at {error.kwargs.get('endpoint_url', '?')} to read the instance "
            f"catalog; check aws.region and aws.endpointURL (ORCA_AWS__ENDPOINT_URL)",
            EXIT_FAILURE,
        ) from None
    except botocore.exceptions.ClientError as error:
        raise CommandError(
            f"AWS refused to describe the instance catalog: {error}; check the credentials' "
            "permissions (ec2:DescribeInstanceTypes, DescribeInstanceTypeOfferings, "
            "DescribeSubnets, DescribeSpotPriceHistory)",
            EXIT_FAILURE,
        ) from None
    except botocore.exceptions.BotoCoreError as error:
        raise CommandError(f"cannot read the instance catalog from AWS: {error}") from None


def workflow_ui_url(settings: TemporalSettings, workflow_id: str, run_id: str | None = None) -> str:
    """The Temporal UI page of one workflow (its latest run unless `run_id` is given)."""
    base = (settings.ui_url or "").rstrip("/")
    url = f"{base}/namespaces/{quote(settings.namespace, safe='')}/workflows/"
    url += quote(workflow_id, safe="")
    if run_id:
        url += f"/{quote(run_id, safe='')}"
    return url


def _reason(error: Any) -> str:
    reason = getattr(error, "reason", None)
    return str(reason or error)
