"""Activities that run, watch and stop a pod's containers on its instance.

`start_containers` waits for the SSM agent (batched DescribeInstanceInformation), reads the
ConfigMaps and Secrets the pod references (`orca.activities.pod_references`), renders the
bootstrap script (`orca.activities.bootstrap_script`), obtains the credentials that read the
pod's Secrets Manager secrets (`orca.activities.secrets_manager`; never their values), stores
secret values and those credentials as SecureString parameters under `/orca/pods/<uid>/`
(`orca.activities.pod_parameters`; never in the script), and
sends one `AWS-RunShellScript` command (`orca.activities.ssm_commands`). A retried start finds the
command it already sent (by its comment) instead of starting the containers twice.

`monitor_pod` keeps the pod's status true for one round: container states from the shared
`ContainerStatusFeed`, the instance's state from the shared poller, a `pods/status` write (through
`orca.pod_api.PodApi`) only when something changed. `stop_containers` sends the stop command and
waits for it within the grace period. Each AWS noun is its own module; this one only sequences
them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from orca.activities import lifecycle_events
from orca.activities.aws_failures import fails_on_aws_errors
from orca.activities.batched_poller import BatchedPoller
from orca.activities.bootstrap_script import render_bootstrap, render_stop_command
from orca.activities.cluster_instances import ClusterInstances
from orca.activities.container_status_feed import ContainerStatusFeed
from orca.activities.lifecycle_events import LifecycleEvents
from orca.activities.models import (
    EventType,
    MonitorEnd,
    MonitorInput,
    MonitorOutcome,
    PodEventReport,
    StartContainersInput,
    StartContainersOutcome,
    StopContainersInput,
)
from orca.activities.pod_parameters import PodParameters, secret_parameter_prefix
from orca.activities.pod_references import PodReferences
from orca.activities.pod_status import event_body
from orca.activities.secrets_manager import PodSecretsManager
from orca.activities.ssm_commands import RUNNING_STATUSES, SsmCommands
from orca.activities.status_mapping import (
    BACK_OFF_EVENT,
    back_off_event_message,
    containers_backing_off,
    incarnation_events,
    pod_is_finished,
    pod_status_from_events,
    to_status_patch,
)
from orca.failure_types import FailureType
from orca.instance_contract import new_status_key
from orca.instance_state import is_lost
from orca.launch_spec import InvalidPodSpec, pod_ref_from_pod
from orca.logging import bind_work_context, redacting
from orca.metrics import POD_STARTUP_SECONDS
from orca.pod_api import PodApi
from orca.pod_phase import PodPhase
from orca.settings import AwsSettings
from orca.units import format_duration


class ContainerActivities:
    def __init__(
        self,
        settings: AwsSettings,
        commands: SsmCommands,
        agents: BatchedPoller[bool],
        parameters: PodParameters,
        references: PodReferences,
        cluster: ClusterInstances,
        feed: ContainerStatusFeed,
        pods: PodApi,
        node_name: str,
        secrets: PodSecretsManager | None = None,
    ) -> None:
        self._settings = settings
        self._secrets = secrets
        self._commands = commands
        self._agents = agents
        """`SsmCommands.agents_online`, batched across the worker's activities."""
        self._parameters = parameters
        self._references = references
        self._cluster = cluster
        self._feed = feed
        self._pods = pods
        self._node_name = node_name
        self._events = LifecycleEvents(pods, node_name)
        self._seen_running: set[str] = set()
        """Pods whose time to Running this worker has observed (once per pod)."""

    # -- start ------------------------------------------------------------------------------
    @activity.defn(name="start_containers")
    @fails_on_aws_errors()
    async def start_containers(self, input: StartContainersInput) -> StartContainersOutcome:
        """Send the pod's runner to its instance (or find the one an earlier attempt sent);
        with `records_events`, told as the pod's `Started` event."""
        started = await self._start(input)
        if input.records_events:
            report = lifecycle_events.containers_started(
                input.spec.pod, input.instance.instance_id, started.command_id
            )
            await self._events.post([report])
        return started

    async def _start(self, input: StartContainersInput) -> StartContainersOutcome:
        pod = input.spec.pod
        instance_id = input.instance.instance_id
        with bind_work_context(
            pod=pod.key, workflow_id=activity.info().workflow_id, instance_id=instance_id
        ):
            if activity.info().attempt > 1:  # the first try may have sent it and lost the answer
                existing = await asyncio.to_thread(self._commands.find_start, pod, instance_id)
                if existing is not None:
                    return StartContainersOutcome(command_id=existing)
            status_key = new_status_key()  # a secret: never logged, never in the history
            self._feed.expect(pod.uid, status_key)
            await self._wait_for_agent(instance_id, input.agent_timeout.total_seconds())
            config_maps, secrets = await asyncio.to_thread(self._references.read, input.pod)
            try:
                plan = render_bootstrap(
                    input.pod,
                    input.spec,
                    log_group=self._settings.log_group,
                    status_log_group=self._settings.status_log_group,
                    region=self._settings.region,
                    config_maps=config_maps,
                    secrets=secrets,
                    secret_parameter_prefix=secret_parameter_prefix(pod.uid),
                    status_key=status_key,
                    block_volumes=input.volumes,
                )
                grant = None  # credentials that read exactly the pod's Secrets Manager secrets
                if self._secrets is not None:
                    grant = await asyncio.to_thread(self._secrets.grant, input.spec)
            except InvalidPodSpec as error:
                raise ApplicationError(
                    str(error), type=FailureType.INVALID_POD_SPEC, non_retryable=True
                ) from None
            parameters = {
                **plan.secret_parameters,
                **PodSecretsManager.parameters(input.spec, grant),
            }
            held = [*plan.secret_parameters.values(), *(grant.secret_values() if grant else ())]
            with redacting(held):  # no log line shows them
                await asyncio.to_thread(self._parameters.put, parameters, instance_id)
                command_id = await asyncio.to_thread(
                    self._commands.send_start, pod, instance_id, plan.script
                )
            activity.logger.info("containers started", extra={"command_id": command_id})
            return StartContainersOutcome(command_id=command_id)

    async def _wait_for_agent(self, instance_id: str, timeout_seconds: float) -> None:
        deadline = time.monotonic() + timeout_seconds
        while not await self._agents.next(instance_id):
            activity.heartbeat("waiting for the SSM agent")
            if time.monotonic() > deadline:
                raise ApplicationError(
                    f"the SSM agent on {instance_id} did not come online within "
                    f"{format_duration(timedelta(seconds=timeout_seconds))}; the AMI must run the "
                    "SSM agent and the instance profile (aws.instanceProfile) must allow "
                    "ssm:UpdateInstanceInformation",
                    type=FailureType.CONFIGURATION,
                    non_retryable=True,
                )

    # -- monitor ----------------------------------------------------------------------------
    @activity.defn(name="monitor_pod")
    @fails_on_aws_errors()
    async def monitor_pod(self, input: MonitorInput) -> MonitorOutcome:
        pod = pod_ref_from_pod(input.pod)
        restart_policy = input.pod.get("spec", {}).get("restartPolicy", "Always")
        round_ends = time.monotonic() + input.round_duration.total_seconds()
        last_patch: dict[str, Any] | None = None
        backed_off: set[tuple[str, int]] = set()
        with bind_work_context(
            pod=pod.key, workflow_id=activity.info().workflow_id, instance_id=input.instance_id
        ):
            await self._feed.subscribe(pod.uid, input.containers_started_at)
            try:
                while True:
                    instance = await self._cluster.status(input.instance_id)
                    activity.heartbeat(instance.state)
                    self._feed.raise_if_failing()
                    if is_lost(instance.state):
                        return MonitorOutcome(
                            end=MonitorEnd.INSTANCE_LOST,
                            phase=PodPhase.FAILED,
                            reason=FailureType.INSTANCE_LOST,
                            message=f"{input.instance_id} is {instance.state}"
                            + (f" ({instance.state_reason})" if instance.state_reason else ""),
                        )
                    view = pod_status_from_events(
                        input.pod,
                        incarnation_events(self._feed.events(pod.uid), input.events_after),
                        host_ip=instance.private_ip,
                        pod_ip=instance.private_ip,
                        started_at=instance.launch_time,
                        restart_base=input.restart_base,
                        last_terminated=input.last_terminated,
                    )
                    patch = to_status_patch(view)
                    if view.phase is PodPhase.RUNNING and pod.uid not in self._seen_running:
                        self._seen_running.add(pod.uid)
                        observe_startup(input.pod)
                    if patch != last_patch:
                        await asyncio.to_thread(self._pods.patch_status, pod, patch)
                        last_patch = patch
                    for back_off in set(containers_backing_off(view)) - backed_off:
                        backed_off.add(back_off)
                        await asyncio.to_thread(self._record_back_off, input.pod, back_off[0])
                    if pod_is_finished(view, restart_policy):
                        self._seen_running.discard(pod.uid)
                        await asyncio.to_thread(self._parameters.delete_pod, pod.uid)
                        return MonitorOutcome(
                            end=MonitorEnd.FINISHED,
                            phase=view.phase,
                            reason=view.reason,
                            message=view.message,
                            exit_codes=view.exit_codes,
                        )
                    if time.monotonic() > round_ends:
                        return MonitorOutcome(end=MonitorEnd.ROUND_OVER, phase=str(view.phase))
            finally:
                self._feed.unsubscribe(pod.uid)

    def _record_back_off(self, pod: Mapping[str, Any], container: str) -> None:
        """The kubelet's `BackOff` Warning event, one object per pod and container whose
        `count` grows with each back-off."""
        report = PodEventReport(
            pod=pod_ref_from_pod(pod),
            type=EventType.WARNING,
            reason=BACK_OFF_EVENT,
            message=back_off_event_message(container, pod),
        )
        body = event_body(report, self._node_name, datetime.now(UTC), series=True)
        self._pods.post_or_count_event(report.pod.namespace, body)

    # -- stop -------------------------------------------------------------------------------
    @activity.defn(name="stop_containers")
    @fails_on_aws_errors()
    async def stop_containers(self, input: StopContainersInput) -> None:
        with bind_work_context(
            pod=input.pod.key,
            workflow_id=activity.info().workflow_id,
            instance_id=input.instance_id,
        ):
            script = render_stop_command(input.pod, input.grace_seconds)
            command_id = await asyncio.to_thread(
                self._commands.send_stop, input.pod, input.instance_id, script
            )
            if command_id is None:
                return  # the instance is gone: nothing left to stop
            deadline = time.monotonic() + input.grace_seconds + 30
            while time.monotonic() < deadline:
                status = await asyncio.to_thread(
                    self._commands.status, command_id, input.instance_id
                )
                if status not in RUNNING_STATUSES:
                    break
                activity.heartbeat(status)
                await asyncio.sleep(2)
            await asyncio.to_thread(self._parameters.delete_pod, input.pod.uid)


def observe_startup(pod: Mapping[str, Any]) -> None:
    """Record the time from the pod's creation to Running in `orca_pod_startup_seconds`."""
    created = pod.get("metadata", {}).get("creationTimestamp")
    if not created:
        return
    try:
        started = datetime.fromisoformat(str(created).replace("Z", "+00:00"))
    except ValueError:
        return
    POD_STARTUP_SECONDS.observe(max(0.0, (datetime.now(UTC) - started).total_seconds()))
