"""What each CLI call needs from the cluster, and a refusal (401/403) as one line naming it.

Every Kubernetes call a command makes goes through `kube_call` with the `Permission` it needs
(verb, resource, namespace), so a 403 says exactly what to ask the cluster's administrator for,
and the list in docs/cli.md (the `orca-user` ClusterRole) is the union of these. A 401 says the
credentials were not accepted. Neither prints a traceback, and both exit 1. Calls that reach
`orca.cli.main` without one (a 403 no command expected) are described from the API server's own
Status message (`forbidden_from_status`). Temporal's PERMISSION_DENIED / UNAUTHENTICATED get the
same treatment in `temporal_refusal`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import urllib3.exceptions
from kubernetes import client as k8s
from temporalio.service import RPCError, RPCStatusCode

from orca.cli.errors import EXIT_FAILURE, CommandError

T = TypeVar("T")
ROLE_HINT = "the orca-user ClusterRole grants what the CLI needs (docs/cli.md)"

_RBAC_MESSAGE = re.compile(
    r'cannot (?P<verb>[\w-]+) resource "(?P<resource>[^"]+)"'
    r'(?: in API group "(?P<group>[^"]*)")?'
    r'(?: in the namespace "(?P<namespace>[^"]+)")?'
)


@dataclass(frozen=True)
class Permission:
    """One RBAC permission: `verb` on `resource` (with its subresource, `pods/log`) in
    `namespace` (None: cluster-scoped, or all namespaces)."""

    verb: str
    resource: str
    namespace: str | None = None
    group: str = ""

    def __str__(self) -> str:
        group = f" (API group {self.group})" if self.group else ""
        where = f" in namespace {self.namespace}" if self.namespace else " cluster-wide"
        return f"{self.verb} {self.resource}{group}{where}"


def kube_call(core: k8s.CoreV1Api, what: str, call: Callable[[], T], needs: Permission) -> T:
    """Run one Kubernetes API call. An unreachable API server, a 401 and a 403 become a
    `CommandError`; other `ApiException`s are left to the caller (only it knows what a 404 or
    409 means there)."""
    host = core.api_client.configuration.host
    try:
        return call()
    except k8s.ApiException as error:
        if error.status == 401:
            raise CommandError(unauthorized(host, what), EXIT_FAILURE) from None
        if error.status == 403:
            raise CommandError(forbidden(what, needs), EXIT_FAILURE) from None
        raise
    except (urllib3.exceptions.HTTPError, OSError) as error:
        reason = getattr(error, "reason", None) or error
        raise CommandError(
            f"cannot reach the Kubernetes API server at {host} to {what} ({reason}). "
            "Check --kubeconfig / --context (or KUBECONFIG, kubernetes.kubeconfig) and that the "
            "cluster is up.",
            EXIT_FAILURE,
        ) from None


def forbidden(what: str, needs: Permission) -> str:
    return f"forbidden: cannot {what}: you need permission to {needs}; {ROLE_HINT}"


def unauthorized(host: str, what: str) -> str:
    return (
        f"unauthorized: the Kubernetes API server at {host} did not accept your credentials "
        f"(401) to {what}; log in again or check the kubeconfig's user"
    )


def permission_from_status(error: k8s.ApiException) -> Permission | None:
    """The permission a real API server's 403 Status message names, if it names one."""
    try:
        body = json.loads(error.body or "{}")
    except (TypeError, ValueError):
        return None
    message = body.get("message", "") if isinstance(body, dict) else ""
    found = _RBAC_MESSAGE.search(str(message))
    if found is None:
        return None
    return Permission(
        found["verb"], found["resource"], found["namespace"], group=found["group"] or ""
    )


def refusal_from_status(error: k8s.ApiException) -> str | None:
    """A one-line message for a 401/403 no command handled, else None."""
    if error.status == 401:
        return "unauthorized: the Kubernetes API server did not accept your credentials (401)"
    if error.status != 403:
        return None
    permission = permission_from_status(error)
    if permission is None:
        return f"forbidden (403): {_status_message(error)}; {ROLE_HINT}"
    return f"forbidden: you need permission to {permission}; {ROLE_HINT}"


def temporal_refusal(error: RPCError, address: str, namespace: str) -> str | None:
    """A one-line message for Temporal refusing the caller, else None."""
    if error.status is RPCStatusCode.PERMISSION_DENIED:
        return (
            f"forbidden: Temporal at {address} refused access to namespace {namespace} "
            f"({error.message}); ask for read access to it (and, for `orca retry`, permission "
            "to start workflows)"
        )
    if error.status is RPCStatusCode.UNAUTHENTICATED:
        return (
            f"unauthorized: Temporal at {address} did not accept the credentials for namespace "
            f"{namespace} ({error.message}); set temporal.apiKey (ORCA_TEMPORAL__API_KEY) or "
            "the client certificate (temporal.tls.*)"
        )
    return None


def _status_message(error: Any) -> str:
    try:
        body = json.loads(error.body or "{}")
    except (TypeError, ValueError):
        body = {}
    message = body.get("message") if isinstance(body, dict) else None
    return str(message or error.reason or error.status)
