"""`PodLifecycle`: one durable workflow per pod incarnation, from plan to final status.

    plan ─► launch with fallback ─► wait until running ─► start containers ─► monitor rounds
     │       capacity error: next offering                                     │
     │       all out: Pending/InsufficientCapacity, backoff, re-plan           ├ containers end
     │       launch timeout: terminate, next offering                          ├ pod deleted
     └ InvalidPodSpec: condition + event, nothing launched                     ├ spot notice
                                                                               ├ max lifetime
    then: stop containers within the grace period, terminate by pod-UID tag,   └ instance lost
    write the final status, and release a deleted pod (delete with grace period 0).

Signals (`pod_deleted`, `pod_gone`, `interruption`) only set state; the run loop reacts at its
next await, cancelling whatever activity is in flight. Every step is an activity with a readable
summary, so the Temporal UI tells the story; every milestone is also a pod event, so `kubectl
describe pod` tells the same story. Pod status writes and events are local activities (one
marker each in the history), everything that touches AWS is a regular activity. Monitoring
runs in rounds (one heartbeating activity each); when Temporal suggests it, the workflow
continues as new carrying `LifecycleState`, so a pod that runs for weeks keeps a bounded
history.

Activities are called by method reference (`PlanningActivities.plan_launch`): type-checked and
one jump from the call to the code. Their classes are imported passed through the sandbox (the
worker holds the same modules; nothing in them runs at import). The names they are registered
under are literal in each `@activity.defn(name=...)` and recorded in every history: renaming
one breaks replay (`tests/replay`), renaming a method does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from orca import search_attributes
    from orca.activities import lifecycle_events
    from orca.activities.containers import ContainerActivities
    from orca.activities.instances import InstanceActivities
    from orca.activities.models import (
        DeletePodInput,
        EventType,
        InstanceStatus,
        LaunchOutcome,
        LaunchPlan,
        LaunchRequest,
        MonitorEnd,
        MonitorInput,
        MonitorOutcome,
        PlanLaunchInput,
        PodCondition,
        PodEventReport,
        PodStatusReport,
        StartContainersInput,
        StartContainersOutcome,
        StopContainersInput,
        TerminateInput,
        TerminateOutcome,
        VolumeAttachmentsInput,
        WaitForInstanceInput,
        WaitForInstanceOutcome,
    )
    from orca.activities.planning import PlanningActivities
    from orca.activities.pod_status import PodStatusActivities
    from orca.activities.status_mapping import rfc3339, status_inputs
    from orca.activities.volume_attachments import VolumeAttachmentActivities
    from orca.failure_types import POD_FAILURES, FailureType
    from orca.instance_state import InstanceState, is_lost
    from orca.launch_spec import pod_ref_from_pod
    from orca.pod_phase import PodPhase
    from orca.selection import CandidateOffering
    from orca.units import format_duration
    from orca.workflow_ids import POD_LIFECYCLE_WORKFLOW
    from orca.workflows.ledger_models import BUDGET_EXHAUSTED_SIGNAL, LAUNCH_ADMITTED_SIGNAL
    from orca.workflows.models import (
        ACCELERATORS_IDLE_SIGNAL,
        InterruptionKind,
        InterruptionNotice,
        LaunchAttempt,
        LifecycleState,
        LifecycleView,
        PodDeleted,
        PodLifecycleInput,
        PodLifecycleResult,
        Stage,
    )

POD_LIFECYCLE_2 = "pod-lifecycle-2"
"""Patch ID, asked once as a run begins: the run takes every patch below without asking each
(`_has`), so a new run records one patch marker (and one `TemporalChangeVersion` upsert) where
it recorded one per patch it reached; a status write with an event is one local activity
(`_report`); and the steps' own activities post their events (`records_events`,
activities/lifecycle_events.py), where each was a local activity of its own. A run recorded
before it has no such marker and asks each patch as before. Patches added after it are asked
with `workflow.patched` directly, never through `_has`."""
LAUNCHED_CONDITION = "orca.research/InstanceLaunched"
"""Pod condition that says why ORCA did not (or did) launch an instance for the pod."""
POD_REPORTS_AS_LOCAL_ACTIVITIES = "pod-reports-as-local-activities"
"""Patch ID: pod status writes and pod events run as local activities (see `_pod_api`).
Histories recorded before it replay with regular activities."""
CLIENT_TOKEN_PER_RUN = "client-token-per-run"
"""Patch ID: launch ClientTokens include the chain's first run ID (unique per `orca retry`).
Histories recorded before it derive them from the workflow ID and attempt only."""
PLAN_WARNINGS_AS_EVENTS = "plan-warnings-as-events"
"""Patch ID: a plan's warnings (an undersized named type) are posted as Warning events."""
POD_REPORT_GIVE_UP_AFTER = timedelta(minutes=5)
"""A pod status write or event that still fails after this long (all retries) is dropped, so a
report the API server refuses can never keep the workflow, and the instance, from ending."""
IDLE_STOP = "idle-stop"
"""Patch ID: the `accelerators_idle` signal stops a running pod with reason Idle."""
COST_IN_MEMO = "cost-in-memo"
"""Patch ID: the pod's instance cost goes into the memo (`costUSD`) once it is terminated."""
POD_VOLUMES = "pod-volumes"
"""Patch ID: a plan with EBS volumes attaches them (`attach_volumes`) after the instance runs
and before the containers start, and detaches them (`detach_volumes`) after the containers
stopped and before the instance is terminated. Only asked when the plan has volumes, which no
history recorded before it has."""
VOLUME_ATTACH_TIMEOUT = timedelta(minutes=30)
"""How long `attach_volumes` may wait, mostly for a volume a previous pod's instance still holds."""
VOLUME_DETACH_TIMEOUT = timedelta(minutes=5)
"""After this the instance is terminated anyway: EC2 detaches the volumes when it terminates."""
SPOT_RECOVERY = "spot-recovery"
"""Patch ID: a pod whose restart policy is `OnFailure` or `Always` survives the interruption or
loss of its instance: the containers are stopped (if the instance still runs), the volumes
detached, the instance terminated, the containers reported terminated and waiting with
`restartCount` + 1, and the pod relaunched on another offering in the same run (`_relaunch`).
Asked only when such a pod is interrupted, which no history recorded before it reached with
this code."""
RECOVERY_WHILE_STARTING = "recovery-while-starting"
"""Patch ID: an interruption (or loss) of a recoverable pod's instance while its containers are
being started relaunches the pod as one that ran (`spot-recovery`), instead of ending the run.
Asked only in that case, which ended every run recorded before it."""
RELAUNCH_CONTINUES_POD = "relaunch-continues-pod"
"""Patch ID: a relaunch (`spot-recovery`) continues the pod rather than starting it over: the
restart counts go on from those the pod's status showed on the interrupted instance (the
runner's own container restarts there included, read with `read_restart_counts`), and
`orca.research/max-lifetime` counts from the pod's first start, not each incarnation's (a pod
past it is not relaunched). Asked only when a pod is relaunched, at the first relaunch."""
MAX_INCARNATIONS = 10
"""A pod relaunched this many times fails on its next interruption (`RelaunchLimitReached`)."""
MONITOR_ROUND = timedelta(hours=1)
MAX_MONITOR_ROUNDS_PER_RUN = 48
"""Continue as new at least every two days of monitoring, even if Temporal does not suggest it."""
MAX_CAPACITY_BACKOFF = timedelta(minutes=30)
SPOT_NOTICE_MARGIN = timedelta(seconds=15)
"""Leave this much of the two-minute spot notice for terminating the instance."""

SHORT_WORK_HEARTBEAT_TIMEOUT = timedelta(seconds=10)
"""`plan_launch`, `launch_instance` and `terminate_instances` (which also releases the pod's
budget claim) heartbeat while they work (`orca.activities.heartbeats`): a worker or Temporal
server killed in the middle of one is noticed after this long, not after the two-minute
start-to-close timeout, so pods in flight stall seconds instead of minutes. Only an activity
option, not a command: histories from before it replay unchanged (no `workflow.patched`)."""

_QUICK = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
_AWS = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    non_retryable_error_types=[
        FailureType.INVALID_POD_SPEC,
        FailureType.CONFIGURATION,
        FailureType.AWS_ACCESS_DENIED,
        FailureType.BUDGET_EXCEEDED,
    ],
)


class _StopRequestedError(Exception):
    """Raised inside the run loop when a signal asks the pod to stop before it is running."""


@workflow.defn(name=POD_LIFECYCLE_WORKFLOW)
class PodLifecycle:
    @workflow.init
    def __init__(self, input: PodLifecycleInput) -> None:
        self.state = input.carried or LifecycleState(
            pod=pod_ref_from_pod(input.pod), manifest=input.pod
        )
        self._admitted = False
        self._current = False
        """Set as the run begins: this run is under `pod-lifecycle-2`."""

    # -- messages ---------------------------------------------------------------------------
    @workflow.signal
    def pod_deleted(self, notice: PodDeleted) -> None:
        if self.state.deletion is None:
            self.state.deletion = notice

    @workflow.signal(name=LAUNCH_ADMITTED_SIGNAL)
    def launch_admitted(self) -> None:
        """The budget ledger admitted this pod's held launch: ask again now."""
        self._admitted = True

    @workflow.signal(name=BUDGET_EXHAUSTED_SIGNAL)
    def budget_exhausted(self, message: str) -> None:
        """The pod's dollar budget is spent and `limits.enforcement` is stop."""
        if self.state.budget_stop is None:
            self.state.budget_stop = message

    @workflow.signal(name=ACCELERATORS_IDLE_SIGNAL)
    def accelerators_idle(self, message: str) -> None:
        """The pod's GPUs or Neuron cores stayed below `limits.idleUtilizationPercent` for its
        `orca.research/idle-timeout`: stop it with reason Idle."""
        if self.state.idle_stop is None and workflow.patched(IDLE_STOP):
            self.state.idle_stop = message

    @workflow.signal
    def pod_gone(self) -> None:
        self.state.gone = True

    @workflow.signal
    def interruption(self, notice: InterruptionNotice) -> None:
        instance = self.state.instance
        if instance is None or notice.instance_id != instance.instance_id:
            workflow.logger.info(
                "Ignoring an interruption notice for another instance",
                extra={"notice_instance": notice.instance_id},
            )
            return
        if notice.kind is InterruptionKind.STATE_CHANGE and not is_lost(notice.state):
            return
        if self.state.interruption is None:
            self.state.interruption = notice

    @workflow.query
    def describe(self) -> LifecycleView:
        plan = self.state.plan
        return LifecycleView(
            pod=self.state.pod,
            stage=self.state.stage,
            instance=self.state.instance,
            attempts=self.state.attempts,
            candidates=[c.reason for c in plan.candidates] if plan else [],
            reason=self.state.final_reason,
            message=self.state.final_message,
        )

    # -- the run ----------------------------------------------------------------------------
    @workflow.run
    async def run(self, input: PodLifecycleInput) -> PodLifecycleResult:
        self._current = workflow.patched(POD_LIFECYCLE_2)
        state = self.state
        pod = state.pod
        started_with = workflow.info().typed_search_attributes
        if input.carried is not None or started_with.get(search_attributes.POD_NAME) is None:
            # The watcher starts workflows with the pod's namespace, name and first phase
            # (`start_search_attributes`), one upsert fewer per pod. Deterministic without a
            # patch: first runs started without them, and every continued run, upsert as before.
            workflow.upsert_search_attributes(
                [
                    search_attributes.POD_NAMESPACE.value_set(pod.namespace),
                    search_attributes.POD_NAME.value_set(pod.name),
                ]
            )
        try:
            while True:
                if state.stage in (Stage.PLANNING, Stage.LAUNCHING, Stage.WAITING_FOR_CAPACITY):
                    await self._plan_and_launch()
                if state.stage is Stage.STARTING:
                    await self._start_containers()
                if state.stage is Stage.RUNNING:
                    await self._monitor()
                if not await self._relaunch_if_recoverable():
                    break
        except _StopRequestedError:
            pass
        except ActivityError as error:
            failure = _application_failure(error)
            if failure is None:
                raise
            self._fail(_failure_type(failure), failure.message)
            await self._report(phase=PodPhase.FAILED, event_type=EventType.WARNING)
        return await self._finish()

    # -- planning and launching -------------------------------------------------------------
    async def _plan_and_launch(self) -> None:
        state = self.state
        waited = timedelta()
        backoff: timedelta | None = None
        while True:
            self._check_stop()
            self._set_stage(Stage.PLANNING if state.plan is None else Stage.LAUNCHING)
            plan = await self._plan()
            if plan is None:
                return
            if plan.dry_run:
                await self._event(
                    EventType.NORMAL, FailureType.DRY_RUN, "Dry run: nothing launched."
                )
                self._fail(FailureType.DRY_RUN, "ORCA runs in dry-run mode; nothing was launched.")
                return
            state.limit_reason = None
            if await self._launch_first_available(plan):
                return
            # Every candidate was out of capacity (or timed out), or a limit holds the launch:
            # wait and re-plan.
            waiting_for = (
                FailureType.BUDGET_EXCEEDED
                if state.limit_reason
                else FailureType.INSUFFICIENT_CAPACITY
            )
            if state.limit_reason:
                # Held by a budget: the pod waits its turn for as long as it takes (the ledger
                # signals when it is admitted; the retry interval is only a fallback).
                self._set_stage(Stage.WAITING_FOR_BUDGET)
                retry = plan.capacity_retry_interval
                await self._report_pending(
                    waiting_for,
                    f"{state.limit_reason}; waiting for room (asking again within "
                    f"{format_duration(retry)}).",
                )
                self._admitted = False
                if await self._sleep_unless_stopped(retry, wake=lambda: self._admitted):
                    raise _StopRequestedError
                continue
            backoff = plan.capacity_retry_interval if backoff is None else backoff * 2
            backoff = min(backoff, MAX_CAPACITY_BACKOFF)
            if waited >= plan.capacity_give_up_after:
                self._fail(
                    waiting_for,
                    f"No capacity for any candidate after waiting "
                    f"{format_duration(waited)}; tried {len(state.attempts)} launches.",
                )
                await self._report(phase=PodPhase.FAILED, event_type=EventType.WARNING)
                return
            self._set_stage(Stage.WAITING_FOR_CAPACITY)
            why = plan.waiting_reason or "Every candidate offering is out of capacity"
            message = f"{why}; retrying in {format_duration(backoff)}."
            await self._report_pending(waiting_for, message)
            if await self._sleep_unless_stopped(backoff):
                raise _StopRequestedError
            waited += backoff

    async def _plan(self) -> LaunchPlan | None:
        state = self.state
        try:
            plan: LaunchPlan = await workflow.execute_activity_method(
                PlanningActivities.plan_launch,
                # Under `pod-lifecycle-2` plan_launch tells the first plan's events itself.
                PlanLaunchInput(
                    pod=state.manifest, records_events=self._current and state.plan is None
                ),
                start_to_close_timeout=timedelta(minutes=2),
                heartbeat_timeout=SHORT_WORK_HEARTBEAT_TIMEOUT,
                retry_policy=_AWS,
                summary=f"Choose instance offerings for {state.pod.key}" + self._incarnation(),
            )
        except ActivityError as error:
            failure = _application_failure(error)
            if failure is None:
                raise
            self._fail(_failure_type(failure), failure.message)
            condition = PodCondition(
                type=LAUNCHED_CONDITION,
                status="False",
                reason=failure.type,
                message=failure.message,
            )
            await self._report(
                phase=PodPhase.FAILED, conditions=(condition,), event_type=EventType.WARNING
            )
            return None
        first_plan = state.plan is None
        state.plan = plan
        workflow.upsert_search_attributes(
            [search_attributes.BUDGET_NAMESPACE.value_set(plan.spec.budget_namespace)]
        )
        if first_plan and not self._current:
            if plan.warnings and self._has(PLAN_WARNINGS_AS_EVENTS):
                for warning in lifecycle_events.undersized_instance_types(state.pod, plan.warnings):
                    await self._tell(warning)
            await self._tell(lifecycle_events.offerings_selected(state.pod, plan.candidates))
        return plan

    async def _launch_first_available(self, plan: LaunchPlan) -> bool:
        """Walk the candidates; True once an instance runs (or the pod must stop)."""
        state = self.state
        for candidate in plan.candidates:
            if (
                _offering_key(candidate.instance_type, candidate.zone, str(candidate.capacity_type))
                in state.interrupted_offerings[-1:]
            ):
                # The last incarnation's offering was just interrupted or lost (spot recovery);
                # older ones may be tried again, or a pod with few candidates would run out.
                continue
            self._check_stop()
            self._set_stage(Stage.LAUNCHING)
            outcome = await self._launch(plan, candidate)
            if outcome.limit_reached is not None:
                self._attempt(candidate, f"held: {outcome.limit_reached}")
                state.limit_reason = outcome.limit_reached
                return False
            if outcome.instance_id is None:
                self._attempt(candidate, f"{outcome.capacity_error}: {outcome.message}")
                if not self._current:  # launch_instance told it (`pod-lifecycle-2`)
                    await self._tell(
                        lifecycle_events.launch_failed(
                            state.pod, candidate, outcome.capacity_error, outcome.message
                        )
                    )
                continue
            self._attempt(candidate, f"launched {outcome.instance_id}")
            state.instance = InstanceStatus(
                instance_id=outcome.instance_id,
                state=InstanceState.PENDING,
                instance_type=candidate.instance_type,
                zone=candidate.zone,
                spot=candidate.capacity_type == "spot",
            )
            workflow.upsert_search_attributes(
                [
                    search_attributes.INSTANCE_ID.value_set(outcome.instance_id),
                    search_attributes.INSTANCE_TYPE.value_set(candidate.instance_type),
                    search_attributes.LAUNCH_TYPE.value_set(str(candidate.capacity_type)),
                    search_attributes.ZONE.value_set(candidate.zone),
                ]
            )
            if not self._current:
                await self._tell(
                    lifecycle_events.launched(state.pod, outcome.instance_id, candidate)
                )
            running = await self._wait_until_running(plan, outcome.instance_id)
            if running is not None:
                state.instance = running
                self._set_stage(Stage.STARTING)
                await self._report(
                    host_ip=running.private_ip,
                    pod_ip=running.private_ip,
                    event=(
                        "InstanceRunning",
                        f"{running.instance_id} is running in {running.zone} "
                        f"({running.private_ip}).",
                    ),
                )
                return True
            # Timed out or interrupted before the containers started: give the capacity back
            # and try the next offering.
            await self._terminate((outcome.instance_id,))
            state.instance = None
            state.interruption = None
        return False

    async def _launch(self, plan: LaunchPlan, candidate: CandidateOffering) -> LaunchOutcome:
        state = self.state
        attempt = len(state.attempts)
        info = workflow.info()
        token_source = f"{info.workflow_id}#{attempt}"
        if self._has(CLIENT_TOKEN_PER_RUN):
            # `orca retry` starts a new run under the same workflow ID, whose launches send other
            # tags: a token EC2 already saw with other parameters is refused
            # (IdempotentParameterMismatch). The first run of the chain stays the same across
            # continue-as-new, so a launch retried after one still reuses its token.
            token_source = f"{info.workflow_id}#{info.first_execution_run_id}#{attempt}"
        client_token = hashlib.sha256(token_source.encode()).hexdigest()[:64]
        outcome: LaunchOutcome = await workflow.execute_activity_method(
            InstanceActivities.launch_instance,
            LaunchRequest(
                spec=plan.spec,
                candidate=candidate,
                client_token=client_token,
                requested_at=workflow.now(),
                fallback=candidate != plan.candidates[0],
                records_events=self._current,
            ),
            start_to_close_timeout=timedelta(minutes=2),
            heartbeat_timeout=SHORT_WORK_HEARTBEAT_TIMEOUT,
            retry_policy=_AWS,
            summary=(
                f"Launch {candidate.instance_type} {candidate.capacity_type} in {candidate.zone} "
                f"(attempt {attempt + 1})" + self._incarnation()
            ),
        )
        return outcome

    async def _wait_until_running(
        self, plan: LaunchPlan, instance_id: str
    ) -> InstanceStatus | None:
        state = self.state
        handle = workflow.start_activity_method(
            InstanceActivities.wait_until_running,
            WaitForInstanceInput(instance_id=instance_id, timeout=plan.launch_timeout),
            start_to_close_timeout=plan.launch_timeout + timedelta(minutes=2),
            heartbeat_timeout=timedelta(seconds=60),
            retry_policy=_AWS,
            summary=f"Wait until {instance_id} is running "
            f"(timeout {format_duration(plan.launch_timeout)})" + self._incarnation(),
        )
        if not await self._race(handle, lambda: self._stop_requested() or self._interrupted()):
            if state.interruption is not None:
                self._retag_last_attempt("interrupted before start")
                await self._event(
                    EventType.WARNING,
                    "InterruptedBeforeStart",
                    f"{instance_id} got an EC2 {state.interruption.kind} notice before the "
                    "containers started; trying the next offering.",
                )
                return None
            raise _StopRequestedError
        outcome: WaitForInstanceOutcome = handle.result()
        if outcome.timed_out or outcome.status.state is not InstanceState.RUNNING:
            why = (
                f"not running after {format_duration(plan.launch_timeout)}"
                if outcome.timed_out
                else f"went {outcome.status.state} ({outcome.status.state_reason})"
            )
            self._retag_last_attempt(why)
            await self._event(
                EventType.WARNING,
                "LaunchTimeout" if outcome.timed_out else "InstanceLost",
                f"{instance_id} {why}; terminating it and trying the next offering.",
            )
            return None
        return outcome.status

    # -- containers -------------------------------------------------------------------------
    async def _start_containers(self) -> None:
        state = self.state
        assert state.plan is not None
        assert state.instance is not None
        self._check_stop()
        if state.plan.volumes and self._has(POD_VOLUMES):
            await self._attach_volumes()
        handle = workflow.start_activity_method(
            ContainerActivities.start_containers,
            # `volumes` is an input field, not a command: no patch (replay ignores inputs).
            StartContainersInput(
                pod=state.manifest,
                spec=state.plan.spec,
                instance=state.instance,
                volumes=state.plan.volumes,
                records_events=self._current,
            ),
            start_to_close_timeout=timedelta(minutes=15),
            heartbeat_timeout=timedelta(seconds=60),
            retry_policy=_AWS,
            summary=f"Start the containers on {state.instance.instance_id}" + self._incarnation(),
        )
        if not await self._race(handle, lambda: self._stop_requested() or self._interrupted()):
            if (
                not self._stop_requested()
                and self._recoverable()
                and self._has(RECOVERY_WHILE_STARTING)
            ):
                # as if it ran: the relaunch path stops, detaches and terminates
                self._set_stage(Stage.RUNNING)
                return
            raise _StopRequestedError
        started: StartContainersOutcome = handle.result()
        state.command_id = started.command_id
        state.started_running_at = workflow.now()
        if state.lifetime_started_at is None:
            state.lifetime_started_at = state.started_running_at
        self._set_stage(Stage.RUNNING)
        if not self._current:
            await self._tell(
                lifecycle_events.containers_started(
                    state.pod, state.instance.instance_id, started.command_id
                )
            )

    async def _attach_volumes(self) -> None:
        """Attach the plan's EBS volumes to the instance (the runner mounts them)."""
        state = self.state
        assert state.plan is not None
        assert state.instance is not None
        instance_id = state.instance.instance_id
        volumes = state.plan.volumes
        # Set before the call: a cancelled or failed attach may still have attached some.
        state.volumes_attached_to = instance_id
        names = ", ".join(f"{v.volume_id} ({v.claim_name})" for v in volumes)
        handle = workflow.start_activity_method(
            VolumeAttachmentActivities.attach_volumes,
            VolumeAttachmentsInput(pod=state.pod, instance_id=instance_id, volumes=volumes),
            start_to_close_timeout=VOLUME_ATTACH_TIMEOUT,
            heartbeat_timeout=timedelta(seconds=60),
            retry_policy=_AWS,
            summary=(f"Attach {names} to {instance_id}"[:180] + self._incarnation()),
        )
        try:
            attached = await self._race(
                handle, lambda: self._stop_requested() or self._interrupted()
            )
        except ActivityError as error:
            failure = _application_failure(error)
            message = failure.message if failure else str(error.cause or error)
            await self._event(EventType.WARNING, "FailedAttachVolume", message)
            raise
        if not attached:
            raise _StopRequestedError
        await self._event(
            EventType.NORMAL,
            "VolumesAttached",
            "Attached "
            + ", ".join(f"{v.volume_id} ({v.claim_name}) at {v.device_name}" for v in volumes)
            + f" to {instance_id}.",
        )

    async def _detach_volumes(self) -> None:
        """Detach what `_attach_volumes` attached, unless the instance is gone (EC2 detached
        them). A detach that does not finish in time is left to the termination."""
        state = self.state
        instance_id = state.volumes_attached_to
        if state.plan is None or instance_id is None:
            return
        state.volumes_attached_to = None
        if state.final_reason == FailureType.INSTANCE_LOST:
            return
        try:
            await workflow.execute_activity_method(
                VolumeAttachmentActivities.detach_volumes,
                VolumeAttachmentsInput(
                    pod=state.pod, instance_id=instance_id, volumes=state.plan.volumes
                ),
                start_to_close_timeout=VOLUME_DETACH_TIMEOUT,
                heartbeat_timeout=timedelta(seconds=60),
                retry_policy=RetryPolicy(initial_interval=timedelta(seconds=2), maximum_attempts=3),
                summary=f"Detach the volumes of {state.pod.key} from {instance_id}"
                + self._incarnation(),
            )
        except ActivityError as error:
            workflow.logger.warning(
                "Volumes could not be detached; terminating the instance detaches them",
                extra={"error": str(error.cause or error), "instance_id": instance_id},
            )
            return
        await self._event(
            EventType.NORMAL,
            "VolumesDetached",
            f"Detached {', '.join(v.volume_id for v in state.plan.volumes)} from {instance_id}.",
        )

    async def _monitor(self) -> None:
        state = self.state
        assert state.instance is not None
        while True:
            if self._stop_requested() or self._interrupted() or self._limit_reached():
                return
            if state.monitor_rounds >= MAX_MONITOR_ROUNDS_PER_RUN or (
                workflow.info().is_continue_as_new_suggested()
            ):
                await workflow.wait_condition(workflow.all_handlers_finished)
                state.monitor_rounds = 0
                workflow.continue_as_new(PodLifecycleInput(pod=state.manifest, carried=state))
            state.monitor_rounds += 1
            round_duration = MONITOR_ROUND
            remaining = self._lifetime_remaining()
            if remaining is not None:
                round_duration = min(round_duration, max(remaining, timedelta(seconds=1)))
            # `monitor_pod` gets only what it reads (`status_inputs`), not the manifest. No
            # patch: replay compares an activity's type and ID, never its input, and the
            # activity reads both forms alike (histories before this carry the whole manifest).
            handle = workflow.start_activity_method(
                ContainerActivities.monitor_pod,
                MonitorInput(
                    pod=status_inputs(state.manifest),
                    instance_id=state.instance.instance_id,
                    round_duration=round_duration,
                    containers_started_at=state.started_running_at,
                    restart_base=state.restart_base,
                    last_terminated=state.last_terminated,
                    events_after=state.incarnation_started_at,
                ),
                start_to_close_timeout=round_duration + timedelta(minutes=5),
                heartbeat_timeout=timedelta(seconds=60),
                retry_policy=_QUICK,
                summary=f"Monitor containers and {state.instance.instance_id}"
                + self._incarnation(),
            )
            if not await self._race(
                handle,
                lambda: self._stop_requested() or self._interrupted() or self._limit_reached(),
            ):
                return
            outcome: MonitorOutcome = handle.result()
            if outcome.end is MonitorEnd.ROUND_OVER:
                continue
            if outcome.end is MonitorEnd.INSTANCE_LOST:
                if self._recoverable() and self._has(SPOT_RECOVERY):
                    state.interruption = InterruptionNotice(
                        kind=InterruptionKind.STATE_CHANGE,
                        instance_id=state.instance.instance_id,
                        detail=outcome.message or f"{state.instance.instance_id} is gone",
                    )
                    return
                self._fail(
                    FailureType.INSTANCE_LOST,
                    outcome.message or f"{state.instance.instance_id} is gone.",
                )
                await self._report(phase=PodPhase.FAILED, event_type=EventType.WARNING)
                return
            succeeded = outcome.phase is PodPhase.SUCCEEDED
            self._set_stage(Stage.SUCCEEDED if succeeded else Stage.FAILED)
            state.final_reason = outcome.reason or outcome.phase
            exits = ", ".join(f"{name} exited {code}" for name, code in outcome.exit_codes.items())
            state.final_message = outcome.message or exits or None
            await self._event(
                EventType.NORMAL if succeeded else EventType.WARNING,
                "ContainersFinished",
                f"Pod {outcome.phase.lower()}: {exits or 'containers ended'}.",
            )
            return

    # -- the end ----------------------------------------------------------------------------
    async def _finish(self) -> PodLifecycleResult:
        """Stop what runs, terminate what was launched, write the last status, release the pod."""
        state = self.state
        instance_id = state.instance.instance_id if state.instance else None
        if state.stage is Stage.RUNNING and not state.gone:
            await self._stop_running_pod()
        if state.deletion is not None or state.gone:
            self._set_stage(Stage.STOPPING)
        # Set only under the `pod-volumes` patch, when the plan had volumes.
        await self._detach_volumes()
        # Always terminate by the pod's tag, even with no known instance: a launch that was
        # cancelled mid-call may have created one.
        if state.plan is not None or instance_id is not None:
            await self._terminate((instance_id,) if instance_id else ())
        if state.gone:
            self._set_stage(Stage.DELETED)
        elif state.deletion is not None:
            await workflow.execute_activity_method(
                PodStatusActivities.delete_pod_object,
                DeletePodInput(pod=state.pod),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=_QUICK,
                summary=f"Release {state.pod.key} (delete with grace period 0)",
            )
            self._set_stage(Stage.DELETED)
        if state.stage is Stage.FAILED and state.final_reason in POD_FAILURES:
            raise ApplicationError(
                state.final_message or state.final_reason or "failed",
                type=state.final_reason,
                non_retryable=True,
            )
        return PodLifecycleResult(
            stage=state.stage,
            instance_id=instance_id,
            reason=state.final_reason,
            message=state.final_message,
        )

    async def _stop_running_pod(self) -> None:
        """Deletion, interruption or max lifetime while running: stop containers in time."""
        state = self.state
        assert state.instance is not None
        grace = self._grace_seconds()
        notice = state.interruption
        if notice is not None and notice.kind is InterruptionKind.STATE_CHANGE:
            self._fail(
                FailureType.INSTANCE_LOST,
                f"{notice.instance_id} went {notice.state} underneath the pod.",
            )
            await self._report(phase=PodPhase.FAILED, event_type=EventType.WARNING)
            return
        if notice is not None:
            grace = self._notice_grace(notice, grace)
            what = _notice_what(notice)
            message = (
                f"Instance {notice.instance_id} received {what}; the pod is evicted "
                f"(containers get {format_duration(timedelta(seconds=grace))} to stop)."
            )
            self._fail(
                FailureType.SPOT_INTERRUPTED
                if notice.kind.startswith("spot")
                else FailureType.EVICTED,
                message,
            )
            await self._report(
                conditions=(
                    PodCondition(
                        type="DisruptionTarget",
                        status="True",
                        reason="TerminationByKubelet",
                        message=message,
                    ),
                ),
                event=("Evicting", message),
                event_type=EventType.WARNING,
            )
        elif state.deletion is None and state.budget_stop is not None:
            self._fail(FailureType.BUDGET_EXCEEDED, state.budget_stop)
        elif state.deletion is None and state.idle_stop is not None:
            self._fail(FailureType.IDLE, state.idle_stop)
        elif state.deletion is None and self._lifetime_over():
            self._fail(
                FailureType.DEADLINE_EXCEEDED,
                f"The pod reached its max lifetime "
                f"({format_duration(self._max_lifetime() or timedelta())}) and was stopped.",
            )
        else:
            await self._event(
                EventType.NORMAL,
                "Killing",
                f"Stopping containers with a {format_duration(timedelta(seconds=grace))} grace "
                "period.",
            )
        self._set_stage(Stage.STOPPING)
        await self._stop_containers(state.instance.instance_id, grace)
        if state.final_reason is not None:
            self._set_stage(Stage.FAILED)
            await self._report(phase=PodPhase.FAILED)

    async def _stop_containers(self, instance_id: str, grace: int) -> None:
        try:
            await workflow.execute_activity_method(
                ContainerActivities.stop_containers,
                StopContainersInput(
                    pod=self.state.pod, instance_id=instance_id, grace_seconds=grace
                ),
                start_to_close_timeout=timedelta(seconds=grace + 60),
                retry_policy=RetryPolicy(maximum_attempts=3),
                summary=f"Stop containers on {instance_id} "
                f"({format_duration(timedelta(seconds=grace))} grace)" + self._incarnation(),
            )
        except ActivityError as error:
            # Terminating the instance stops the containers too, only less gently.
            workflow.logger.warning(
                "Containers could not be stopped gracefully; terminating the instance",
                extra={"error": str(error.cause or error)},
            )

    def _notice_grace(self, notice: InterruptionNotice, grace: int) -> int:
        """The grace period, shortened to what the notice leaves before the instance goes."""
        if notice.time is None:
            return grace
        left = notice.time - workflow.now() - SPOT_NOTICE_MARGIN
        return max(0, min(grace, int(left.total_seconds())))

    # -- spot recovery ----------------------------------------------------------------------
    def _recoverable(self) -> bool:
        """The restart policy lets the pod outlive its instance (`spot-recovery`)."""
        plan = self.state.plan
        return plan is not None and plan.spec.restart_policy in ("Always", "OnFailure")

    def _incarnation(self) -> str:
        n = self.state.incarnation
        return f" (incarnation {n})" if n > 1 else ""

    async def _relaunch_if_recoverable(self) -> bool:
        """After the monitor returned: if the running pod's instance was interrupted or lost and
        its restart policy restarts containers, take the instance down and go back to planning
        for a new incarnation. True when the run loop goes round again."""
        state = self.state
        notice = state.interruption
        if (
            state.stage is not Stage.RUNNING
            or notice is None
            or self._stop_requested()
            or not self._recoverable()
            or not self._has(SPOT_RECOVERY)
        ):
            return False
        continues = self._has(RELAUNCH_CONTINUES_POD)
        if continues and self._lifetime_over():
            # Past its max lifetime: no new instance; `_finish` stops it (DeadlineExceeded).
            state.interruption = None
            return False
        if state.incarnation >= MAX_INCARNATIONS:
            await self._event(
                EventType.WARNING,
                "RelaunchLimitReached",
                f"The pod ran on {state.incarnation} instances, each one interrupted or lost; "
                f"ORCA relaunches a pod at most {MAX_INCARNATIONS - 1} times, so it fails now.",
            )
            return False
        await self._relaunch(notice, continues=continues)
        return True

    async def _relaunch(self, notice: InterruptionNotice, *, continues: bool) -> None:
        state = self.state
        assert state.instance is not None
        instance = state.instance
        instance_id = instance.instance_id
        lost = notice.kind is InterruptionKind.STATE_CHANGE
        self._set_stage(Stage.STOPPING)
        if lost:
            what = f"was lost ({notice.detail or notice.state or 'gone'})"
            reason, exit_code = FailureType.INSTANCE_LOST.value, 137
            state.volumes_attached_to = None  # EC2 detached them
        else:
            grace = self._notice_grace(notice, self._grace_seconds())
            what = f"received {_notice_what(notice)}"
            reason = (
                "SpotInterruption"
                if notice.kind is InterruptionKind.SPOT_INTERRUPTION
                else "InstanceInterrupted"
            )
            exit_code = 143
            await self._stop_containers(instance_id, grace)
            await self._detach_volumes()
        await self._terminate((instance_id,))
        # Never again on this offering.
        attempt = next(
            (
                a
                for a in reversed(state.attempts)
                if a.outcome.startswith(f"launched {instance_id}")
            ),
            None,
        )
        if attempt is not None:
            state.interrupted_offerings.append(
                _offering_key(attempt.instance_type, attempt.zone, attempt.capacity_type)
            )
        if continues:
            shown = await self._restart_counts_shown()
            for name, count in shown.items():
                state.restart_base[name] = max(state.restart_base.get(name, 0), count)
        else:
            state.lifetime_started_at = None  # each incarnation had its own max lifetime
        finished = workflow.now()
        started = state.started_running_at or finished
        statuses = []
        for container in (state.manifest.get("spec") or {}).get("containers") or ():
            name = str(container.get("name", ""))
            terminated = {
                "exitCode": exit_code,
                "reason": reason,
                "message": f"{instance_id} {what}",
                "startedAt": rfc3339(started),
                "finishedAt": rfc3339(finished),
            }
            state.restart_base[name] = state.restart_base.get(name, 0) + 1
            state.last_terminated[name] = terminated
            statuses.append(
                {
                    "name": name,
                    "image": str(container.get("image", "")),
                    "imageID": "",
                    "ready": False,
                    "started": False,
                    "restartCount": state.restart_base[name],
                    "state": {"waiting": {"reason": "ContainerCreating"}},
                    "lastState": {"terminated": terminated},
                }
            )
        state.incarnation += 1
        message = (
            f"Instance {instance_id} {what}; its containers ended and the pod is being relaunched "
            f"on another offering (incarnation {state.incarnation})."
        )
        not_ready = tuple(
            PodCondition(type=kind, status="False", reason="InstanceInterrupted", message=message)
            for kind in ("ContainersReady", "Ready")
        )
        await self._pod_api(
            PodStatusActivities.report_pod_status,
            PodStatusReport(
                pod=state.pod,
                phase=PodPhase.RUNNING,
                conditions=not_ready,
                container_statuses=tuple(statuses),
            ),
            summary=f"Write {state.pod.key} status: Running, relaunching" + self._incarnation(),
        )
        await self._event(EventType.WARNING, "InstanceInterrupted", message)
        state.instance = None
        state.interruption = None
        state.command_id = None
        state.started_running_at = None
        state.incarnation_started_at = workflow.now()
        state.monitor_rounds = 0
        self._set_stage(Stage.LAUNCHING)

    async def _terminate(self, instance_ids: tuple[str, ...]) -> None:
        result: TerminateOutcome = await workflow.execute_activity_method(
            InstanceActivities.terminate_instances,
            TerminateInput(pod=self.state.pod, instance_ids=instance_ids),
            start_to_close_timeout=timedelta(minutes=2),
            heartbeat_timeout=SHORT_WORK_HEARTBEAT_TIMEOUT,
            retry_policy=_AWS,
            summary=f"Terminate the instances of {self.state.pod.key}" + self._incarnation(),
        )
        if result.terminated:
            await self._event(
                EventType.NORMAL, "Terminated", f"Terminated {', '.join(result.terminated)}."
            )
        if result.cost and self._has(COST_IN_MEMO):
            # What the budget ledger accrued for the pod's instance, in the Temporal UI's memo.
            workflow.upsert_memo({"costUSD": str(result.cost.quantize(Decimal("0.0001")))})

    # -- helpers ----------------------------------------------------------------------------
    def _stop_requested(self) -> bool:
        return self.state.deletion is not None or self.state.gone

    def _interrupted(self) -> bool:
        return self.state.interruption is not None

    def _check_stop(self) -> None:
        if self._stop_requested():
            raise _StopRequestedError

    def _max_lifetime(self) -> timedelta | None:
        plan = self.state.plan
        return plan.spec.max_lifetime if plan else None

    def _lifetime_remaining(self) -> timedelta | None:
        lifetime = self._max_lifetime()
        started = self.state.lifetime_started_at or self.state.started_running_at
        if lifetime is None or started is None:
            return None
        return started + lifetime - workflow.now()

    def _limit_reached(self) -> bool:
        """The pod must stop although nobody asked: max lifetime, or a spent budget."""
        return (
            self.state.budget_stop is not None
            or self.state.idle_stop is not None
            or self._lifetime_over()
        )

    def _lifetime_over(self) -> bool:
        remaining = self._lifetime_remaining()
        return remaining is not None and remaining <= timedelta()

    def _grace_seconds(self) -> int:
        if self.state.deletion is not None:
            return max(0, self.state.deletion.grace_period_seconds)
        plan = self.state.plan
        return plan.spec.termination_grace_period_seconds if plan else 30

    async def _race(self, handle: workflow.ActivityHandle[Any], stop: Any) -> bool:
        """Await the activity unless `stop()` becomes true first; then cancel it.

        Returns True when the activity completed (its result or error is in `handle`)."""
        timeout = self._lifetime_remaining()
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(lambda: handle.done() or stop(), timeout=timeout)
        if handle.done():
            handle.result()  # re-raise the activity's error, if any
            return True
        handle.cancel()
        with contextlib.suppress(ActivityError, asyncio.CancelledError):
            await handle
        return False

    async def _sleep_unless_stopped(
        self, duration: timedelta, wake: Callable[[], bool] | None = None
    ) -> bool:
        """Sleep (or until `wake()` holds); True if a stop was requested meanwhile."""
        try:
            await workflow.wait_condition(
                lambda: self._stop_requested() or (wake is not None and wake()), timeout=duration
            )
        except TimeoutError:
            return False
        return self._stop_requested()

    def _set_stage(self, stage: Stage) -> None:
        if self.state.stage is not stage:
            self.state.stage = stage
            workflow.upsert_search_attributes([search_attributes.PHASE.value_set(str(stage))])

    def _fail(self, reason: FailureType, message: str) -> None:
        self.state.final_reason = reason
        self.state.final_message = message
        self._set_stage(Stage.FAILED)

    def _attempt(self, candidate: CandidateOffering, outcome: str) -> None:
        self.state.attempts.append(
            LaunchAttempt(
                instance_type=candidate.instance_type,
                zone=candidate.zone,
                capacity_type=str(candidate.capacity_type),
                outcome=outcome,
                at=workflow.now(),
            )
        )

    def _retag_last_attempt(self, outcome: str) -> None:
        if self.state.attempts:
            last = self.state.attempts[-1]
            last.outcome = f"{last.outcome}; {outcome}"

    async def _report_pending(self, reason: str, message: str) -> None:
        await self._report(
            phase=PodPhase.PENDING,
            reason=reason,
            message=message,
            event=(reason, message),
            event_type=EventType.WARNING,
        )

    async def _report(
        self,
        *,
        phase: str | None = None,
        reason: str | None = None,
        message: str | None = None,
        conditions: tuple[PodCondition, ...] = (),
        host_ip: str | None = None,
        pod_ip: str | None = None,
        event: tuple[str, str] | None = None,
        event_type: EventType = EventType.NORMAL,
    ) -> None:
        state = self.state
        if phase is PodPhase.FAILED and reason is None:
            reason, message = state.final_reason, state.final_message
            if event is None and reason and message:
                event = (reason, message)
        # Under `pod-lifecycle-2` the event rides with the status write: one local activity.
        along = event is not None and self._current
        await self._pod_api(
            PodStatusActivities.report_pod_status,
            PodStatusReport(
                pod=state.pod,
                phase=phase,
                reason=reason,
                message=message,
                conditions=conditions,
                host_ip=host_ip,
                pod_ip=pod_ip,
                event=PodEventReport(
                    pod=state.pod, type=event_type, reason=event[0], message=event[1]
                )
                if along and event is not None
                else None,
            ),
            summary=(
                f"Write {state.pod.key} status"
                + (f": {phase}" if phase else "")
                + (f"; {event[0]}: {event[1]}" if along and event is not None else "")
            )[:200],
        )
        if event is not None and not along:
            await self._event(event_type, event[0], event[1])

    def _has(self, patch: str) -> bool:
        """A patch from before `pod-lifecycle-2` applies: always in a run under it, otherwise
        as the run's history says."""
        return self._current or workflow.patched(patch)

    async def _tell(self, report: PodEventReport) -> None:
        await self._event(report.type, report.reason, report.message)

    async def _event(self, event_type: EventType, reason: str, message: str) -> None:
        await self._pod_api(
            PodStatusActivities.record_pod_event,
            PodEventReport(pod=self.state.pod, type=event_type, reason=reason, message=message),
            summary=f"{reason}: {message}"[:200],
        )

    async def _restart_counts_shown(self) -> dict[str, int]:
        """Container name → the `restartCount` the pod's status shows now: what the monitor
        last wrote, the runner's restarts on this instance included ({} if it cannot be read)."""
        try:
            return await workflow.execute_local_activity_method(
                PodStatusActivities.read_restart_counts,
                self.state.pod,
                start_to_close_timeout=timedelta(seconds=30),
                schedule_to_close_timeout=POD_REPORT_GIVE_UP_AFTER,
                retry_policy=_QUICK,
                summary=f"Read {self.state.pod.key} restart counts",
            )
        except (ActivityError, ApplicationError) as error:
            workflow.logger.warning(
                "Could not read the pod's restart counts; counting from the workflow's own",
                extra={"error": str(error.cause or error)},
            )
            return {}

    async def _pod_api(
        self,
        activity: Callable[..., Awaitable[None]],
        report: PodStatusReport | PodEventReport,
        summary: str,
    ) -> None:
        """One Kubernetes API write about the pod (its status, or an event).

        These are single quick calls to the cluster, half of the activities before a pod runs;
        as local activities they run in the workflow's own task and are recorded as one marker
        each, without a task-queue round trip or their own workflow task, which more than
        halves what the Temporal server does per pod. They still retry (`_QUICK`, with timers
        beyond a minute) and show in the UI with their summaries."""
        execute = (
            workflow.execute_local_activity_method
            if self._has(POD_REPORTS_AS_LOCAL_ACTIVITIES)
            else workflow.execute_activity_method
        )
        try:
            await execute(
                activity,
                report,
                start_to_close_timeout=timedelta(seconds=30),
                schedule_to_close_timeout=POD_REPORT_GIVE_UP_AFTER,
                retry_policy=_QUICK,
                summary=summary,
            )
        except (ActivityError, ApplicationError) as error:
            # (A failed local activity can surface as its ApplicationError, unwrapped.)
            # A report the API server keeps refusing must never hold the pod's instance: the
            # status is the kubelet's courtesy, termination is the money. Carry on without it.
            workflow.logger.warning(
                "Kubernetes refused a pod report; continuing without it",
                extra={"activity": activity.__name__, "error": str(error.cause or error)},
            )


def _offering_key(instance_type: str, zone: str, capacity_type: str) -> str:
    return f"{instance_type}/{zone}/{capacity_type}"


def _notice_what(notice: InterruptionNotice) -> str:
    return {
        InterruptionKind.SPOT_INTERRUPTION: "an EC2 spot interruption notice",
        InterruptionKind.REBALANCE_RECOMMENDATION: "an EC2 rebalance recommendation",
        InterruptionKind.SCHEDULED_CHANGE: "an EC2 scheduled maintenance event",
    }.get(notice.kind, str(notice.kind))


def _application_failure(error: ActivityError) -> ApplicationError | None:
    """The ORCA failure that ends the pod behind an activity error, if that is what it is.

    A permanent AWS error (`AwsAccessDenied`, `ConfigurationError`, `AwsCallFailed`, classified
    in `orca.activities.aws_failures`) arrives here from any step; the caller marks the pod
    Failed and `_finish` then terminates its instance by the pod's tag."""
    cause = error.cause
    if isinstance(cause, ApplicationError) and cause.type in POD_FAILURES:
        return cause
    return None


def _failure_type(failure: ApplicationError) -> FailureType:
    """The failure type of an error `_application_failure` returned (one of `POD_FAILURES`)."""
    return FailureType(failure.type or "")
