"""SSM Run Command: the agents on the instances, and the start and stop commands sent to them.

A pod's containers are started and stopped by `AWS-RunShellScript` commands whose comment names
the pod (`orca start <namespace>/<name>`, `orca stop ...`, see `orca.activities.bootstrap_script`),
so a retried start finds the command it already sent instead of sending a second one. Whether an
agent is online is asked for many instances at once (DescribeInstanceInformation, 50 per call);
the worker batches those questions through a shared `BatchedPoller`. The start command's output
goes to the pod log group in CloudWatch Logs.
"""

from __future__ import annotations

from collections.abc import Sequence

from orca.activities.bootstrap_script import start_comment, stop_comment
from orca.aws_clients import AwsClients
from orca.aws_errors import is_not_found
from orca.launch_spec import PodRef

AGENT_IDS_PER_CALL = 50
"""DescribeInstanceInformation's `InstanceIds` filter and page size take at most 50."""
START_EXECUTION_TIMEOUT_SECONDS = 172800
"""The start command runs the containers' supervisor: the longest timeout SSM accepts (48 h)."""
RUNNING_STATUSES = frozenset({"Pending", "InProgress", "Delayed"})
"""Command invocation statuses that are not final yet."""


class SsmCommands:
    def __init__(self, aws: AwsClients, log_group: str) -> None:
        self._aws = aws
        self._log_group = log_group

    def agents_online(self, instance_ids: Sequence[str]) -> dict[str, bool]:
        """SSM agent ping status: one DescribeInstanceInformation per 50 instances."""
        online: dict[str, bool] = {}
        for start in range(0, len(instance_ids), AGENT_IDS_PER_CALL):
            chunk = list(instance_ids[start : start + AGENT_IDS_PER_CALL])
            response = self._aws.ssm.describe_instance_information(
                Filters=[{"Key": "InstanceIds", "Values": chunk}], MaxResults=AGENT_IDS_PER_CALL
            )
            for item in response.get("InstanceInformationList", []):
                online[item["InstanceId"]] = item.get("PingStatus") == "Online"
        return online

    def find_start(self, pod: PodRef, instance_id: str) -> str | None:
        """The ID of the start command already sent for this pod to this instance, if any."""
        response = self._aws.ssm.list_commands(InstanceId=instance_id)
        for command in response.get("Commands", []):
            if command.get("Comment") == start_comment(pod):
                return str(command["CommandId"])
        return None

    def send_start(self, pod: PodRef, instance_id: str, script: str) -> str:
        """Send the pod's start script; returns the command ID."""
        response = self._aws.ssm.send_command(
            InstanceIds=[instance_id],
            DocumentName="AWS-RunShellScript",
            Comment=start_comment(pod),
            Parameters={
                "commands": [script],
                "executionTimeout": [str(START_EXECUTION_TIMEOUT_SECONDS)],
            },
            CloudWatchOutputConfig={
                "CloudWatchLogGroupName": self._log_group,
                "CloudWatchOutputEnabled": True,
            },
        )
        return str(response["Command"]["CommandId"])

    def send_stop(self, pod: PodRef, instance_id: str, script: str) -> str | None:
        """Send the pod's stop script; None when the instance is gone (nothing left to stop)."""
        try:
            response = self._aws.ssm.send_command(
                InstanceIds=[instance_id],
                DocumentName="AWS-RunShellScript",
                Comment=stop_comment(pod),
                Parameters={"commands": [script]},
            )
        except Exception as error:
            if is_not_found(error):
                return None
            raise
        return str(response["Command"]["CommandId"])

    def status(self, command_id: str, instance_id: str) -> str:
        """The invocation's status; `Pending` while SSM does not know the invocation yet."""
        try:
            response = self._aws.ssm.get_command_invocation(
                CommandId=command_id, InstanceId=instance_id
            )
        except Exception as error:
            if is_not_found(error):
                return "Pending"
            raise
        return str(response.get("Status", "Pending"))
