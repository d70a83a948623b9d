"""Activities that run, watch and stop a pod's containers on its instance (through SSM).

`start_containers` waits for the SSM agent (batched DescribeInstanceInformation), reads the
ConfigMaps and Secrets the pod references, renders the bootstrap script
(`orca.activities.bootstrap_script`), stores secret values as SecureString parameters under
`/orca/pods/<uid>/` (never in the script), and sends one `AWS-RunShellScript` command. A retried
start finds the command it already sent (by its comment) instead of starting the containers twice.

`monitor_pod` keeps the pod's status true for one round: container states from the shared
`ContainerStatusFeed`, the instance's state from the shared poller, a `pods/status` write only
when something changed. `stop_containers` sends the stop command and waits for it within the
grace period.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes import client
from temporalio import activity
from temporalio.exceptions import ApplicationError

from orca.activities.aws_failures import fails_on_aws_errors
from orca.activities.batched_poller import BatchedPoller
from orca.activities.bootstrap_script import (
    render_bootstrap,
    render_stop_command,
    start_comment,
    stop_comment,
)
from orca.activities.cluster_instances import ClusterInstances
from orca.activities.container_status_feed import ContainerStatusFeed
from orca.activities.models import (
    MonitorEnd,
    MonitorInput,
    MonitorOutcome,
    StartContainersInput,
    StartContainersOutcome,
    StopContainersInput,
)
from orca.activities.pod_status import PodStatusActivities
from orca.activities.status_mapping import pod_is_finished, pod_status_from_events, to_status_patch
from orca.aws_clients import AwsClients
from orca.aws_errors import is_not_found
from orca.failure_types import FailureType
from orca.instance_state import is_lost
from orca.launch_spec import InvalidPodSpec, PodRef, pod_ref_from_pod
from orca.logging import bind_work_context, redacting
from orca.metrics import POD_STARTUP_SECONDS
from orca.pod_phase import PodPhase
from orca.settings import Settings
from orca.units import format_duration

SECRET_PREFIX = "/orca/pods"


def secret_parameter_prefix(pod_uid: str) -> str:
    return f"{SECRET_PREFIX}/{pod_uid}/"


AGENT_IDS_PER_CALL = 50
"""DescribeInstanceInformation's `InstanceIds` filter and page size take at most 50."""


def agents_online(aws: AwsClients, instance_ids: Sequence[str]) -> dict[str, bool]:
    """SSM agent ping status: one DescribeInstanceInformation per 50 instances."""
    online: dict[str, bool] = {}
    for start in range(0, len(instance_ids), AGENT_IDS_PER_CALL):
        chunk = list(instance_ids[start : start + AGENT_IDS_PER_CALL])
        response = aws.ssm.describe_instance_information(
            Filters=[{"Key": "InstanceIds", "Values": chunk}], MaxResults=AGENT_IDS_PER_CALL
        )
        for item in response.get("InstanceInformationList", []):
            online[item["InstanceId"]] = item.get("PingStatus") == "Online"
    return online


class ContainerActivities:
    def __init__(
        self,
        settings: Settings,
        aws: AwsClients,
        core: client.CoreV1Api,
        cluster: ClusterInstances,
        agents: BatchedPoller[bool],
        feed: ContainerStatusFeed,
        pod_status: PodStatusActivities,
    ) -> None:
        self._settings = settings
        self._aws = aws
        self._core = core
        self._cluster = cluster
        self._agents = agents
        self._feed = feed
        self._pod_status = pod_status
        self._seen_running: set[str] = set()
        """Pods whose time to Running this worker has observed (once per pod)."""

    # -- start ------------------------------------------------------------------------------
    @activity.defn(name="start_containers")
    @fails_on_aws_errors()
    async def start_containers(self, input: StartContainersInput) -> StartContainersOutcome:
        pod = input.spec.pod
        instance_id = input.instance.instance_id
        with bind_work_context(
            pod=pod.key, workflow_id=activity.info().workflow_id, instance_id=instance_id
        ):
            if activity.info().attempt > 1:  # the first try may have sent it and lost the answer
                existing = await asyncio.to_thread(self._find_start_command, pod, instance_id)
                if existing is not None:
                    return StartContainersOutcome(command_id=existing)
            self._feed.expect(pod.uid)
            await self._wait_for_agent(instance_id, input.agent_timeout.total_seconds())
            config_maps, secrets = await asyncio.to_thread(self._referenced_data, input.pod)
            aws = self._settings.aws
            try:
                plan = render_bootstrap(
                    input.pod,
                    input.spec,
                    log_group=aws.log_group,
                    status_log_group=aws.status_log_group,
                    region=aws.region,
                    config_maps=config_maps,
                    secrets=secrets,
                    secret_parameter_prefix=secret_parameter_prefix(pod.uid),
                )
            except InvalidPodSpec as error:
                raise ApplicationError(
                    str(error), type=FailureType.INVALID_POD_SPEC, non_retryable=True
                ) from None
            with redacting(plan.secret_parameters.values()):  # no log line shows them
                command_id = await asyncio.to_thread(
                    self._send, pod, instance_id, plan.script, plan.secret_parameters
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

    def _find_start_command(self, pod: PodRef, instance_id: str) -> str | None:
        response = self._aws.ssm.list_commands(InstanceId=instance_id)
        for command in response.get("Commands", []):
            if command.get("Comment") == start_comment(pod):
                return str(command["CommandId"])
        return None

    def _referenced_data(
        self, pod: Mapping[str, Any]
    ) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]:
        """The ConfigMaps and Secrets the pod's env and volumes name (absent ones are left out;
        rendering reports a missing non-optional reference as an invalid pod)."""
        namespace = pod["metadata"].get("namespace", "default")
        config_map_names, secret_names = referenced_names(pod.get("spec", {}))
        config_maps: dict[str, dict[str, str]] = {}
        secrets: dict[str, dict[str, str]] = {}
        for name in sorted(config_map_names):
            try:
                item = self._core.read_namespaced_config_map(name, namespace)
                config_maps[name] = dict(item.data or {})
            except client.ApiException as error:
                if error.status != 404:
                    raise
        for name in sorted(secret_names):
            try:
                secret = self._core.read_namespaced_secret(name, namespace)
                decoded = {
                    key: base64.b64decode(value).decode("utf-8", errors="replace")
                    for key, value in (secret.data or {}).items()
                }
                secrets[name] = decoded
            except client.ApiException as error:
                if error.status != 404:
                    raise
        return config_maps, secrets

    def _send(
        self, pod: PodRef, instance_id: str, script: str, secret_parameters: Mapping[str, str]
    ) -> str:
        for name, value in secret_parameters.items():
            self._aws.ssm.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)
        response = self._aws.ssm.send_command(
            InstanceIds=[instance_id],
            DocumentName="AWS-RunShellScript",
            Comment=start_comment(pod),
            Parameters={"commands": [script], "executionTimeout": ["172800"]},
            CloudWatchOutputConfig={
                "CloudWatchLogGroupName": self._settings.aws.log_group,
                "CloudWatchOutputEnabled": True,
            },
        )
        return str(response["Command"]["CommandId"])

    # -- monitor ----------------------------------------------------------------------------
    @activity.defn(name="monitor_pod")
    @fails_on_aws_errors()
    async def monitor_pod(self, input: MonitorInput) -> MonitorOutcome:
        pod = pod_ref_from_pod(input.pod)
        restart_policy = input.pod.get("spec", {}).get("restartPolicy", "Always")
        round_ends = time.monotonic() + input.round_duration.total_seconds()
        last_patch: dict[str, Any] | None = None
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
                        self._feed.events(pod.uid),
                        host_ip=instance.private_ip,
                        pod_ip=instance.private_ip,
                        started_at=instance.launch_time,
                    )
                    patch = to_status_patch(view)
                    if view.phase is PodPhase.RUNNING and pod.uid not in self._seen_running:
                        self._seen_running.add(pod.uid)
                        observe_startup(input.pod)
                    if patch != last_patch:
                        await asyncio.to_thread(self._pod_status.patch_status, pod, patch)
                        last_patch = patch
                    if pod_is_finished(view, restart_policy):
                        self._seen_running.discard(pod.uid)
                        await asyncio.to_thread(self._delete_secrets, pod.uid)
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
            command_id = await asyncio.to_thread(self._send_stop, input, script)
            if command_id is None:
                return  # the instance is gone: nothing left to stop
            deadline = time.monotonic() + input.grace_seconds + 30
            while time.monotonic() < deadline:
                status = await asyncio.to_thread(self._command_status, command_id, input)
                if status not in ("Pending", "InProgress", "Delayed"):
                    break
                activity.heartbeat(status)
                await asyncio.sleep(2)
            await asyncio.to_thread(self._delete_secrets, input.pod.uid)

    def _send_stop(self, input: StopContainersInput, script: str) -> str | None:
        try:
            response = self._aws.ssm.send_command(
                InstanceIds=[input.instance_id],
                DocumentName="AWS-RunShellScript",
                Comment=stop_comment(input.pod),
                Parameters={"commands": [script]},
            )
        except Exception as error:
            if is_not_found(error):
                return None
            raise
        return str(response["Command"]["CommandId"])

    def _command_status(self, command_id: str, input: StopContainersInput) -> str:
        try:
            response = self._aws.ssm.get_command_invocation(
                CommandId=command_id, InstanceId=input.instance_id
            )
        except Exception as error:
            if is_not_found(error):
                return "Pending"
            raise
        return str(response.get("Status", "Pending"))

    def _delete_secrets(self, pod_uid: str) -> None:
        prefix = secret_parameter_prefix(pod_uid)
        names = [
            p["Name"]
            for page in self._aws.ssm.get_paginator("get_parameters_by_path").paginate(
                Path=prefix, Recursive=True
            )
            for p in page["Parameters"]
        ]
        for start in range(0, len(names), 10):
            self._aws.ssm.delete_parameters(Names=names[start : start + 10])


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


def referenced_names(spec: Mapping[str, Any]) -> tuple[set[str], set[str]]:
    """(ConfigMap names, Secret names) referenced by env, envFrom and volumes (pure)."""
    config_maps: set[str] = set()
    secrets: set[str] = set()
    containers = [*spec.get("initContainers", []), *spec.get("containers", [])]
    for container in containers:
        for env in container.get("env", []) or []:
            source = env.get("valueFrom") or {}
            if "configMapKeyRef" in source:
                config_maps.add(source["configMapKeyRef"]["name"])
            if "secretKeyRef" in source:
                secrets.add(source["secretKeyRef"]["name"])
        for env_from in container.get("envFrom", []) or []:
            if "configMapRef" in env_from:
                config_maps.add(env_from["configMapRef"]["name"])
            if "secretRef" in env_from:
                secrets.add(env_from["secretRef"]["name"])
    for volume in spec.get("volumes", []) or []:
        if "configMap" in volume:
            config_maps.add(volume["configMap"]["name"])
        if "secret" in volume:
            secrets.add(volume["secret"]["secretName"])
        for source in (volume.get("projected") or {}).get("sources", []) or []:
            if "configMap" in source:
                config_maps.add(source["configMap"]["name"])
            if "secret" in source:
                secrets.add(source["secret"]["name"])
    return config_maps, secrets
