"""SSM Parameter Store: a pod's secret values, as SecureString parameters under `/orca/pods/<uid>/`.

Secret values never appear in the start script (SSM commands are visible to anyone who may list
them): the script reads them from these parameters on the instance. They are written right before
the start command is sent and deleted when the pod's containers end; the orphan sweep lists what
is left under the prefix and deletes parameters no running workflow owns.

Each parameter is tagged `INSTANCE_ARN_TAG` = the ARN of the pod's instance; the instance policy
(deploy/iam/orca-instance-policy.json) lets a role session read a parameter only when that tag
equals the session's `ec2:SourceInstanceARN`, so an instance reads its own pod's secrets and no
other's (docs/security.md). PutParameter cannot tag and overwrite in one call (a retry
overwrites), so the tag is added right after; until then the parameter is unreadable, which fails
closed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from orca.aws_clients import AwsClients
from orca.instance_contract import POD_PARAMETER_PREFIX

if TYPE_CHECKING:
    from mypy_boto3_ssm.type_defs import TagTypeDef

SECRET_PREFIX = POD_PARAMETER_PREFIX
INSTANCE_ARN_TAG = "orca.research/instance-arn"
DELETE_PER_CALL = 10
"""DeleteParameters takes at most 10 names."""


def secret_parameter_prefix(pod_uid: str) -> str:
    return f"{SECRET_PREFIX}/{pod_uid}/"


def pod_uid_of(name: str) -> str:
    """The pod UID a parameter under the prefix belongs to ("" for one outside any pod's)."""
    return name.removeprefix(f"{SECRET_PREFIX}/").split("/", 1)[0]


class PodParameters:
    def __init__(self, aws: AwsClients) -> None:
        self._aws = aws

    def put(self, parameters: Mapping[str, str], instance_id: str) -> None:
        """Write (or overwrite) each parameter as a SecureString readable by that instance only."""
        tags: list[TagTypeDef] = [
            {"Key": INSTANCE_ARN_TAG, "Value": self._aws.instance_arn(instance_id)}
        ]
        for name, value in parameters.items():
            self._aws.ssm.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)
            self._aws.ssm.add_tags_to_resource(ResourceType="Parameter", ResourceId=name, Tags=tags)

    def list(self, path: str = f"{SECRET_PREFIX}/") -> list[tuple[str, datetime | None]]:
        """(name, last modified) of every parameter under `path`."""
        paginator = self._aws.ssm.get_paginator("get_parameters_by_path")
        return [
            (str(parameter["Name"]), parameter.get("LastModifiedDate"))
            for page in paginator.paginate(Path=path, Recursive=True)
            for parameter in page["Parameters"]
        ]

    def delete(self, names: Sequence[str]) -> None:
        for start in range(0, len(names), DELETE_PER_CALL):
            self._aws.ssm.delete_parameters(Names=list(names[start : start + DELETE_PER_CALL]))

    def delete_pod(self, pod_uid: str) -> None:
        """Delete every parameter of this pod (none left is fine)."""
        self.delete([name for name, _ in self.list(secret_parameter_prefix(pod_uid))])
