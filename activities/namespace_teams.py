"""A pod's team for cost attribution, when the pod does not name one: its namespace's label.

Research clusters usually give each group a namespace; labelling it `orca.research/team=<team>`
attributes every pod in it (instance tag `orca.research/team`, the ledger's team dimension)
without touching each pod. An `orca.research/team` annotation on the pod wins. Namespaces are
read at most once per `ttl_seconds` each; a namespace ORCA may not read (no RBAC grant) or that is
gone gives no team, never a failed plan.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog
from kubernetes.client import CoreV1Api
from kubernetes.client.exceptions import ApiException

TEAM_LABEL = "orca.research/team"

log = structlog.get_logger(__name__)


class NamespaceTeams:
    def __init__(
        self,
        core: CoreV1Api,
        ttl_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._core = core
        self._ttl = ttl_seconds
        self._clock = clock
        self._known: dict[str, tuple[float, str | None]] = {}
        self._warned = False

    async def team_of(self, namespace: str) -> str | None:
        cached = self._known.get(namespace)
        if cached is not None and self._clock() - cached[0] < self._ttl:
            return cached[1]
        team = await asyncio.to_thread(self._read, namespace)
        self._known[namespace] = (self._clock(), team)
        return team

    def _read(self, namespace: str) -> str | None:
        try:
            found = self._core.read_namespace(namespace)
        except ApiException as error:
            if not self._warned:
                log.warning(
                    "cannot read namespace labels; pods get no team from their namespace",
                    namespace=namespace,
                    status=error.status,
                )
                self._warned = True
            return None
        labels = (found.metadata.labels if found.metadata else None) or {}
        team = labels.get(TEAM_LABEL)
        return team or None
