"""The operator commands' connections to Temporal, Kubernetes and AWS, with failures as messages.

Every command that talks to a service goes through here, so "the service is not there" reads the
same everywhere: the address that was tried, the setting that chooses it, exit code 1 (exit code 2
when the configuration itself is unusable). No traceback reaches the user for something they can
fix by starting a server or correcting a setting.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import quote

import botocore.exceptions
from kubernetes import client as k8s
from temporalio.client import Client

from orca.aws_clients import AwsClients, AwsCredentialsError
from orca.cli import cluster_settings, permissions
from orca.cli.errors import EXIT_FAILURE, EXIT_USAGE, CommandError
from orca.cli.permissions import Permission
from orca.logging import configure_logging
from orca.selection import CatalogSnapshot
from orca.settings import LogLevel, Settings, TemporalSettings
from orca.temporal_client import TemporalUnavailable, connect

T = TypeVar("T")


def load_command_settings(args: argparse.Namespace) -> Settings:
    """The command's settings (`orca.cli.cluster_settings`: the config file, or the settings the
    cluster publishes on ORCA's node), with logging on stderr at warning level (debug stays
    debug), so a command's output is only what it prints."""
    settings = cluster_settings.command_settings(
        getattr(args, "config", None),
        kubeconfig=getattr(args, "kubeconfig", None),
        context=getattr(args, "context", None),
    )
    logging_settings = settings.logging
    if logging_settings.level is not LogLevel.DEBUG:
        logging_settings = logging_settings.model_copy(update={"level": LogLevel.WARNING})
    configure_logging(logging_settings, component="cli")
    return settings


def namespace(args: argparse.Namespace, settings: Settings) -> str:
    """`-n`, else the kubeconfig context's namespace, else `default` (as kubectl)."""
    given: str | None = getattr(args, "namespace", None)
    return given or cluster_settings.default_namespace(settings.kubernetes)


async def temporal(settings: Settings) -> Client:
    """A client for `settings.temporal`, or `CommandError` naming the address and the setting."""
    global current_temporal
    current_temporal = settings.temporal
    try:
        return await connect(settings.temporal)
    except TemporalUnavailable as error:
        raise CommandError(str(error), EXIT_FAILURE) from None


current_temporal: TemporalSettings | None = None
"""The Temporal connection the command made, for `orca.cli.main` to name in a refusal."""


def kube_core(settings: Settings) -> k8s.CoreV1Api:
    """The Kubernetes core API, or `CommandError` (exit 2) when no configuration is usable."""
    return cluster_settings.kube_core(settings.kubernetes)


def kube_call(core: k8s.CoreV1Api, what: str, call: Callable[[], T], needs: Permission) -> T:
    """Run one Kubernetes API call (`orca.cli.permissions.kube_call`): an unreachable API
    server, a 401 or a 403 becomes a `CommandError` naming the permission `needs`."""
    return permissions.kube_call(core, what, call, needs)


def api_message(error: k8s.ApiException) -> str:
    """The API server's own sentence from a failed call (its Status message), else the reason."""
    try:
        body = json.loads(error.body or "{}")
    except (TypeError, ValueError):
        body = {}
    message = body.get("message") if isinstance(body, dict) else None
    return str(message or error.reason or error.status)


class AwsUnavailableError(CommandError):
    """AWS cannot be asked for the instance catalog (`orca submit` goes on without it)."""


class NoAwsCredentialsError(AwsUnavailableError):
    """No AWS credentials to read the instance catalog."""


class AwsUnreachableError(AwsUnavailableError):
    """The AWS endpoint does not answer."""


async def instance_catalog(settings: Settings) -> tuple[CatalogSnapshot, dict[str, str]]:
    """The region's catalog and `zone -> subnet`, fetched exactly as the worker fetches them."""
    from orca.activities.instance_catalog import InstanceCatalog

    try:
        return await InstanceCatalog(AwsClients(settings.aws), settings.aws).snapshot()
    except AwsCredentialsError as error:
        raise CommandError(str(error), EXIT_USAGE) from None
    except botocore.exceptions.NoCredentialsError:
        raise NoAwsCredentialsError(
            "no AWS credentials found to read the instance catalog; set aws.profile, "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run where an instance role is available",
            EXIT_FAILURE,
        ) from None
    except botocore.exceptions.EndpointConnectionError as error:
        raise AwsUnreachableError(
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
