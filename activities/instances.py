"""Activities that create, watch and end EC2 instances.

`launch_instance` turns capacity-class errors into a *result* (the workflow moves on to the next
offering) and remembers the offering as unavailable; throttling and transient errors are raised
so Temporal retries the same call; IAM and configuration errors are non-retryable failures with a
message a person can act on (every AWS error is classified by `fails_on_aws_errors`, see
`orca.activities.aws_failures`; `terminate_instances` retries even those, since giving up would
leave the instance running). `wait_until_running` heartbeats while the shared batcher polls.
"""

from __future__ import annotations

import asyncio
import time

from temporalio import activity
from temporalio.exceptions import ApplicationError

from orca.activities import lifecycle_events
from orca.activities.amis import Amis
from orca.activities.aws_failures import fails_on_aws_errors
from orca.activities.cluster_instances import ClusterInstances
from orca.activities.ec2_instances import Ec2Instances
from orca.activities.heartbeats import heartbeating
from orca.activities.instance_catalog import InstanceCatalog
from orca.activities.launch_admission import LaunchAdmission
from orca.activities.lifecycle_events import LifecycleEvents
from orca.activities.models import (
    LaunchOutcome,
    LaunchRequest,
    TerminateInput,
    TerminateOutcome,
    WaitForInstanceInput,
    WaitForInstanceOutcome,
)
from orca.activities.unavailable_offerings import UnavailableOfferings
from orca.aws_errors import AwsErrorKind, classify, error_code, error_message
from orca.budgets import Claim
from orca.failure_types import FailureType
from orca.instance_state import InstanceState
from orca.logging import bind_work_context
from orca.metrics import FALLBACKS, LAUNCH_FAILURES, LAUNCHES
from orca.workflow_ids import pod_workflow_id

EVENTUAL_CONSISTENCY_GRACE_SECONDS = 60.0
"""How long a just-launched instance may be unknown to DescribeInstances before it is lost."""


class InstanceActivities:
    def __init__(
        self,
        ec2: Ec2Instances,
        amis: Amis,
        catalog: InstanceCatalog,
        cluster: ClusterInstances,
        unavailable: UnavailableOfferings,
        admission: LaunchAdmission,
        *,
        events: LifecycleEvents | None = None,
    ) -> None:
        self._ec2 = ec2
        self._amis = amis
        self._catalog = catalog
        self._cluster = cluster
        self._unavailable = unavailable
        self._admission = admission
        self._events = events
        """Where `records_events` launches are told (None: this worker posts no events)."""

    @activity.defn(name="launch_instance")
    @fails_on_aws_errors()
    async def launch_instance(self, request: LaunchRequest) -> LaunchOutcome:
        """Launch the candidate (or find the instance an earlier attempt launched); with
        `records_events`, told as the pod's `Launched` or `LaunchFailed` event."""
        outcome = await self._launch(request)
        if request.records_events and self._events is not None:
            await self._events.post(lifecycle_events.launch_events(request, outcome))
        return outcome

    async def _launch(self, request: LaunchRequest) -> LaunchOutcome:
        candidate = request.candidate
        pod = request.spec.pod
        with (
            bind_work_context(pod=pod.key, workflow_id=activity.info().workflow_id),
            heartbeating(),
        ):
            # A first attempt relies on the ClientToken; a retry may follow a launch whose answer
            # was lost (or a token EC2 no longer remembers), so it looks for the pod's tag first.
            retried = activity.info().attempt > 1
            existing = await self._cluster.of_pod(pod.uid) if retried else []
            if existing:
                instance = existing[0]
                # Its claim was admitted by the attempt that launched it; start its accrual.
                self._admission.note_launch(pod_workflow_id(pod), instance.instance_id)
                activity.logger.info(
                    "instance already launched for this pod; reusing it",
                    extra={"instance_id": instance.instance_id},
                )
                return LaunchOutcome(
                    instance_id=instance.instance_id,
                    message="an instance tagged with this pod already existed",
                    reused_existing=True,
                )
            catalog, _ = await self._catalog.snapshot()
            info = catalog.instance_types.get(candidate.instance_type)
            if info is None:
                raise ApplicationError(
                    f"instance type {candidate.instance_type} left the catalog",
                    type=FailureType.INVALID_POD_SPEC,
                    non_retryable=True,
                )
            workflow_id = pod_workflow_id(pod)
            claim = Claim(
                pod=workflow_id,
                namespace=request.spec.budget_namespace,
                team=request.spec.team,
                instance_type=candidate.instance_type,
                gpus=info.gpus,
                hourly_price=candidate.hourly_price or 0,
                capacity_type=str(candidate.capacity_type),
                zone=candidate.zone,
            )
            admission = await self._admission.admit(claim)
            if not admission.admitted:
                activity.logger.info("launch held by a budget", extra={"hold": admission.message})
                return LaunchOutcome(limit_reached=admission.message, message=admission.message)
            labels = {
                "instance_type": candidate.instance_type,
                "zone": candidate.zone,
                "capacity_type": str(candidate.capacity_type),
            }
            try:
                ami, root = await asyncio.to_thread(self._amis.resolve, info, request.spec.ami_id)
                instance_id = await asyncio.to_thread(self._ec2.run, request, ami, root)
            except Exception as error:
                await self._admission.release(workflow_id)
                kind = classify(error)
                code = error_code(error) or type(error).__name__
                LAUNCH_FAILURES.labels(**labels, reason=code).inc()
                if kind is AwsErrorKind.CAPACITY:
                    self._unavailable.mark(candidate.offering)
                    await self._admission.offering_unavailable(candidate.offering)
                    return LaunchOutcome(capacity_error=code, message=error_message(error))
                raise  # classified at the activity boundary (`fails_on_aws_errors`)
            self._admission.note_launch(workflow_id, instance_id)
            LAUNCHES.labels(**labels).inc()
            if request.fallback:
                FALLBACKS.labels(candidate.instance_type, str(candidate.capacity_type)).inc()
            activity.logger.info("launched instance", extra={"instance_id": instance_id})
            return LaunchOutcome(instance_id=instance_id, message="launched")

    @activity.defn(name="wait_until_running")
    @fails_on_aws_errors()
    async def wait_until_running(self, input: WaitForInstanceInput) -> WaitForInstanceOutcome:
        deadline = time.monotonic() + input.timeout.total_seconds()
        started = time.monotonic()
        workflow_id = activity.info().workflow_id or ""
        with bind_work_context(workflow_id=workflow_id, instance_id=input.instance_id):
            # The durable launch record (`launch_instance` only queued one, without waiting):
            # its round trip to the ledger overlaps the wait for the instance.
            recorded = asyncio.ensure_future(
                self._admission.record_launch(workflow_id, input.instance_id)
            )
            try:
                outcome = await self._wait_for(input, started, deadline)
            except BaseException:
                recorded.cancel()
                raise
            await recorded
            return outcome

    async def _wait_for(
        self, input: WaitForInstanceInput, started: float, deadline: float
    ) -> WaitForInstanceOutcome:
        while True:
            status = await self._cluster.status(input.instance_id)
            activity.heartbeat(status.state)
            if status.state is InstanceState.RUNNING:
                return WaitForInstanceOutcome(status=status)
            unknown_too_long = (
                status.state is InstanceState.MISSING
                and time.monotonic() - started > EVENTUAL_CONSISTENCY_GRACE_SECONDS
            )
            if status.state not in (InstanceState.PENDING, InstanceState.MISSING) or (
                unknown_too_long
            ):
                return WaitForInstanceOutcome(status=status)
            if time.monotonic() > deadline:
                return WaitForInstanceOutcome(status=status, timed_out=True)

    @activity.defn(name="terminate_instances")
    @fails_on_aws_errors(permanent=False)
    async def terminate_instances(self, input: TerminateInput) -> TerminateOutcome:
        with (
            bind_work_context(pod=input.pod.key, workflow_id=activity.info().workflow_id),
            heartbeating(),
        ):
            # The instances the workflow knows go first; then the pod-UID tag finds any other
            # (a launch whose answer was lost), which costs a wait for the next listing round.
            terminated = await asyncio.to_thread(self._ec2.terminate, input.instance_ids)
            tagged = await self._cluster.of_pod(input.pod.uid)
            others = [s.instance_id for s in tagged if s.instance_id not in input.instance_ids]
            if others:
                terminated += await asyncio.to_thread(self._ec2.terminate, others)
            if terminated:
                activity.logger.info("terminated instances", extra={"instance_ids": terminated})
            cost = await self._admission.release(pod_workflow_id(input.pod))
            return TerminateOutcome(terminated=tuple(terminated), cost=cost)
