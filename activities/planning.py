"""`plan_launch`: the pod → launch spec → ordered candidate offerings, as one activity.

The pure work is `orca.launch_spec.parse_launch_spec` and `orca.selection.plan_candidates`; this
wrapper feeds them the settings, the cached catalog and the recently-unavailable offerings, fills
in the pod's team from its namespace's label (`orca.activities.namespace_teams`), and maps an
invalid pod to the non-retryable `InvalidPodSpec` failure.
"""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from orca.activities.aws_failures import fails_on_aws_errors
from orca.activities.heartbeats import heartbeating
from orca.activities.instance_catalog import InstanceCatalog
from orca.activities.models import LaunchPlan, PlanLaunchInput
from orca.activities.names import ActivityName
from orca.activities.namespace_teams import NamespaceTeams
from orca.activities.unavailable_offerings import UnavailableOfferings
from orca.failure_types import FailureType
from orca.launch_spec import InvalidPodSpec, parse_launch_spec
from orca.logging import bind_work_context
from orca.selection import NoCandidates, plan_candidates
from orca.settings import Settings


class PlanningActivities:
    def __init__(
        self,
        settings: Settings,
        catalog: InstanceCatalog,
        unavailable: UnavailableOfferings,
        teams: NamespaceTeams | None = None,
    ) -> None:
        self._settings = settings
        self._catalog = catalog
        self._unavailable = unavailable
        self._teams = teams

    @activity.defn(name=ActivityName.PLAN_LAUNCH)
    @fails_on_aws_errors()
    async def plan_launch(self, input: PlanLaunchInput) -> LaunchPlan:
        settings = self._settings
        try:
            spec = parse_launch_spec(input.pod, settings.instances, settings.limits)
        except InvalidPodSpec as error:
            raise ApplicationError(
                str(error), type=FailureType.INVALID_POD_SPEC, non_retryable=True
            ) from None
        with bind_work_context(pod=spec.pod.key, pod_uid=spec.pod.uid), heartbeating():
            if spec.team is None and self._teams is not None:
                spec = spec.model_copy(
                    update={"team": await self._teams.team_of(spec.pod.namespace)}
                )
            catalog, subnets = await self._catalog.snapshot()
            if not subnets:
                raise ApplicationError(
                    "ORCA has no subnet to launch into: set aws.subnetIDs (or aws.subnetID)",
                    type=FailureType.CONFIGURATION,
                    non_retryable=True,
                )
            instances = settings.instances
            waiting_reason = None
            try:
                candidates = plan_candidates(
                    spec, instances, catalog, subnets, self._unavailable.current()
                )
            except InvalidPodSpec as error:
                raise ApplicationError(
                    str(error), type=FailureType.INVALID_POD_SPEC, non_retryable=True
                ) from None
            except NoCandidates as none:
                candidates, waiting_reason = [], none.reason
            activity.logger.info(
                "planned launch",
                extra={"candidates": [c.reason for c in candidates], "waiting": waiting_reason},
            )
            return LaunchPlan(
                spec=spec,
                candidates=tuple(candidates),
                launch_timeout=instances.launch_timeout,
                capacity_retry_interval=instances.capacity_retry_interval,
                capacity_give_up_after=instances.capacity_give_up_after,
                dry_run=settings.development.launches_nothing,
                waiting_reason=waiting_reason,
            )
