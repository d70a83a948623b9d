"""`plan_launch`: the pod → launch spec → ordered candidate offerings, as one activity.

The pure work is `orca.launch_spec.parse_launch_spec` and `orca.selection.plan_candidates`; this
wrapper feeds them the settings, the cached catalog and the recently-unavailable offerings, fills
in the pod's team from its namespace's label (`orca.activities.namespace_teams`), and maps an
invalid pod to the non-retryable `InvalidPodSpec` failure.

A type the pod names explicitly (annotation, fallbacks, template) is taken at its word, even when
it is smaller than the pod's requests: the user may know the requests are generous. The plan
carries a warning for each such type (posted as a Warning event), and `instances.refuseUndersized`
turns the warning into an `InvalidPodSpec` failure. Auto selection only picks types that fit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from orca.activities import lifecycle_events
from orca.activities.aws_failures import fails_on_aws_errors
from orca.activities.heartbeats import heartbeating
from orca.activities.instance_catalog import InstanceCatalog
from orca.activities.lifecycle_events import LifecycleEvents
from orca.activities.models import LaunchPlan, PlanLaunchInput
from orca.activities.namespace_teams import NamespaceTeams
from orca.activities.pod_claims import PodClaims
from orca.activities.secrets_manager import PodSecretsManager
from orca.activities.unavailable_offerings import UnavailableOfferings
from orca.ebs_volumes import ClaimNotReady, PodVolume, VolumeNotUsable, zone_restriction
from orca.failure_types import FailureType
from orca.launch_spec import (
    InvalidPodSpec,
    LaunchSpec,
    ResourceRequest,
    SelectionMethod,
    claim_volumes,
    parse_launch_spec,
)
from orca.logging import bind_work_context
from orca.pod_security import check_pod_security
from orca.selection import (
    RESOURCES_FIELD,
    CandidateOffering,
    CandidatePlan,
    CatalogSnapshot,
    InstanceTypeInfo,
    NoCandidates,
    plan_candidates,
    restrict_to_zone,
    zone_waiting_reason,
)
from orca.settings import Settings
from orca.units import GIB, MIB, format_number


def _size(size_bytes: Decimal | int) -> str:
    amount = Decimal(size_bytes)
    if amount >= GIB:
        return f"{format_number(round(amount / GIB, 2))} GiB"
    return f"{format_number(round(amount / MIB, 2))} MiB"


def shortfalls(info: InstanceTypeInfo, request: ResourceRequest) -> list[str]:
    """What the instance type lacks for the pod's requests, as readable phrases (pure)."""
    missing: list[str] = []
    if Decimal(info.vcpus) < request.cpu:
        missing.append(f"{format_number(request.cpu)} CPUs requested, it has {info.vcpus} vCPUs")
    if info.memory_mib * MIB < request.memory_bytes:
        missing.append(
            f"{_size(request.memory_bytes)} of memory requested, it has "
            f"{_size(info.memory_mib * MIB)}"
        )
    nvidia = info.gpus if info.has_nvidia_gpus else 0
    for requested, has, what in (
        (request.gpus, nvidia, "nvidia.com/gpu"),
        (request.neuron, info.neuron_devices, "aws.amazon.com/neuron"),
        (request.fpgas, info.fpgas, "aws.amazon.com/fpga"),
    ):
        if has < requested:
            missing.append(f"{requested} {what} requested, it has {has}")
    return missing


_RESERVATION_WAITING_STATES = {"scheduled", "payment-pending", "pending", "assessing"}
_RESERVATION_USABLE_STATES = {"active"}


def reserved_candidates(
    reservation_id: str,
    reservation: Mapping[str, Any] | None,
    candidates: Sequence[CandidateOffering],
    zones: Sequence[str],
    now: datetime,
    annotation: str = "orca.research/capacity-reservation-id",
) -> tuple[list[CandidateOffering], str | None]:
    """The candidates a targeted reservation or capacity block can serve: its instance type in
    its zone (pure). Returns (candidates, waiting reason) — no candidates and a reason while a
    capacity block has not started; raises `InvalidPodSpec` when it never will serve the pod."""
    kind = "capacity reservation"
    if reservation is None:
        raise InvalidPodSpec(
            annotation,
            f"{kind} {reservation_id} does not exist in this account and region",
        )
    if reservation.get("ReservationType") == "capacity-block":
        kind = "capacity block"
    instance_type = reservation.get("InstanceType")
    zone = reservation.get("AvailabilityZone")
    state = reservation.get("State")
    if state in _RESERVATION_WAITING_STATES:
        start = reservation.get("StartDate")
        when = f" (starts {start:%Y-%m-%d %H:%M} UTC)" if isinstance(start, datetime) else ""
        return [], f"{kind} {reservation_id} is {state}{when}"
    end = reservation.get("EndDate")
    if state not in _RESERVATION_USABLE_STATES or (
        isinstance(end, datetime) and end.astimezone(UTC) <= now
    ):
        raise InvalidPodSpec(
            annotation,
            f"{kind} {reservation_id} is {state or 'over'}; it can no longer launch instances",
        )
    if zone not in zones:
        raise InvalidPodSpec(
            annotation,
            f"{kind} {reservation_id} is in {zone}, where ORCA has no subnet "
            f"(zones: {', '.join(zones)}); add a subnet in {zone} to aws.subnetIDs",
        )
    served = [c for c in candidates if c.instance_type == instance_type and c.zone == zone]
    if not served:
        named = ", ".join(dict.fromkeys(c.instance_type for c in candidates))
        raise InvalidPodSpec(
            "orca.research/instance-type",
            f"{kind} {reservation_id} is for {instance_type} in {zone}; the pod asks for "
            f"{named}. Set orca.research/instance-type: {instance_type}",
        )
    return served, None


def undersized_warnings(spec: LaunchSpec, catalog: CatalogSnapshot) -> list[str]:
    """One message per named instance type that is smaller than the pod's requests (pure)."""
    if spec.selection is SelectionMethod.AUTO:
        return []
    warnings = []
    for name in dict.fromkeys(spec.instance_types):
        info = catalog.instance_types.get(name)
        missing = shortfalls(info, spec.resources) if info is not None else []
        if missing:
            warnings.append(
                f"Instance type {name} is smaller than the pod's requests: "
                f"{'; '.join(missing)}. The containers may not fit."
            )
    return warnings


def plan_in_volume_zone(
    plan: LaunchPlan, volumes: Sequence[PodVolume], zone_has_subnet: bool
) -> LaunchPlan:
    """The plan with its volumes, its candidates restricted to their zone (pure). With no
    candidate left there the plan waits, naming the volume, its zone and why; it never
    launches elsewhere."""
    if not volumes:
        return plan
    zone = volumes[0].zone
    why = zone_restriction(volumes)
    kept = restrict_to_zone(CandidatePlan(candidates=plan.candidates), zone, why).candidates
    # What the pod waits for when every launch in the zone fails for capacity: the workflow
    # says it with the retry interval.
    waiting_reason = (
        f"Every candidate offering in {zone} is out of capacity; {why}, and the pod cannot "
        "launch away from it"
    )
    if not kept:
        dropped = [c for c in plan.candidates if c.zone != zone]
        waiting_reason = zone_waiting_reason(zone, why, dropped, zone_has_subnet)
        if plan.waiting_reason:
            waiting_reason += f" ({plan.waiting_reason})"
    return plan.model_copy(
        update={"candidates": kept, "volumes": tuple(volumes), "waiting_reason": waiting_reason}
    )


class PlanningActivities:
    def __init__(
        self,
        settings: Settings,
        catalog: InstanceCatalog,
        unavailable: UnavailableOfferings,
        teams: NamespaceTeams | None = None,
        secrets: PodSecretsManager | None = None,
        claims: PodClaims | None = None,
        events: LifecycleEvents | None = None,
    ) -> None:
        self._settings = settings
        self._catalog = catalog
        self._unavailable = unavailable
        self._teams = teams
        self._secrets = secrets
        self._claims = claims
        self._events = events
        """Where `records_events` plans are told (None: this worker posts no events)."""

    @activity.defn(name="plan_launch")
    @fails_on_aws_errors()
    async def plan_launch(self, input: PlanLaunchInput) -> LaunchPlan:
        """The pod's plan: candidates (`plan_without_claims`), then its claims resolved to EBS
        volumes and the candidates restricted to their zone; with `records_events`, told as
        the pod's `OfferingsSelected` event (and each undersized type as a Warning)."""
        plan = await self.plan_without_claims(input)
        if claim_volumes(input.pod.get("spec") or {}):
            with (
                bind_work_context(pod=plan.spec.pod.key, pod_uid=plan.spec.pod.uid),
                heartbeating(),
            ):
                plan = await self._with_claims(input, plan)
        if input.records_events and self._events is not None:
            pod = plan.spec.pod
            await self._events.post(
                [
                    *lifecycle_events.undersized_instance_types(pod, plan.warnings),
                    lifecycle_events.offerings_selected(pod, plan.candidates),
                ]
            )
        return plan

    async def _with_claims(self, input: PlanLaunchInput, plan: LaunchPlan) -> LaunchPlan:
        if self._claims is None:
            raise ApplicationError(
                "this worker cannot read PersistentVolumeClaims (no Kubernetes client)",
                type=FailureType.CONFIGURATION,
                non_retryable=True,
            )
        try:
            volumes = await self._claims.volumes_of(input.pod)
        except VolumeNotUsable as error:
            raise ApplicationError(
                str(error), type=FailureType.INVALID_POD_SPEC, non_retryable=True
            ) from None
        except ClaimNotReady as waiting:
            activity.logger.info("claims not ready", extra={"waiting": waiting.reason})
            return plan.model_copy(update={"candidates": (), "waiting_reason": waiting.reason})
        _, subnets = await self._catalog.snapshot()
        return plan_in_volume_zone(
            plan, volumes, zone_has_subnet=bool(volumes) and volumes[0].zone in subnets
        )

    async def plan_without_claims(self, input: PlanLaunchInput) -> LaunchPlan:
        """The plan as if the pod had no PersistentVolumeClaims: every zone is open. The
        provisioner uses it to choose the zone of an unbound claim's first consumer."""
        settings = self._settings
        try:
            check_pod_security(input.pod, settings.security.pod_security_level)
            spec = parse_launch_spec(input.pod, settings.instances, settings.limits)
        except InvalidPodSpec as error:
            raise ApplicationError(
                str(error), type=FailureType.INVALID_POD_SPEC, non_retryable=True
            ) from None
        with bind_work_context(pod=spec.pod.key, pod_uid=spec.pod.uid), heartbeating():
            if self._secrets is not None:
                try:  # DescribeSecret (metadata only): a foreign secret launches nothing
                    await asyncio.to_thread(self._secrets.check, spec)
                except InvalidPodSpec as error:
                    raise ApplicationError(
                        str(error), type=FailureType.INVALID_POD_SPEC, non_retryable=True
                    ) from None
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
            warnings = undersized_warnings(spec, catalog)
            if warnings and instances.refuse_undersized:
                raise ApplicationError(
                    f"{RESOURCES_FIELD}: {' '.join(warnings)} This cluster refuses undersized "
                    "instance types (instances.refuseUndersized); name a larger type or lower "
                    "the requests.",
                    type=FailureType.INVALID_POD_SPEC,
                    non_retryable=True,
                )
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
            reserved = spec.capacity_reservation_id or spec.capacity_block_id
            if reserved and candidates:
                reservation = await self._catalog.capacity_reservation(reserved)
                try:
                    candidates, waiting_reason = reserved_candidates(
                        reserved,
                        reservation,
                        candidates,
                        sorted(subnets),
                        datetime.now(UTC),
                        "orca.research/capacity-reservation-id"
                        if spec.capacity_reservation_id
                        else "orca.research/capacity-block-id",
                    )
                except InvalidPodSpec as error:
                    raise ApplicationError(
                        str(error), type=FailureType.INVALID_POD_SPEC, non_retryable=True
                    ) from None
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
                warnings=tuple(warnings),
            )
