"""The interruption queue: EC2 events from the AWS emulator to the right workflow."""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3
from temporalio.client import Client

from orca import instance_tags
from orca.aws_clients import AwsClients
from orca.aws_metrics import instrument
from orca.launch_spec import PodRef
from orca.watcher.interruptions import InterruptionConsumer
from orca.watcher.pod_workflows import PodWorkflows
from orca.workflows.models import InterruptionNotice
from orca_devstack.emulators.aws import AwsEmulator
from tests.fixtures.aws import describe_instances_calls
from tests.watcher.conftest import (
    WatcherParts,
    create_pod,
    eventually,
    received,
    running,
    running_watcher,
)
from tests.watcher.recording_workflow import INSTANCE_ANNOTATION


def launch(aws: AwsEmulator, tags: dict[str, str]) -> str:
    ec2 = boto3.client(
        "ec2",
        endpoint_url=aws.endpoint_url,
        region_name=aws.region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    zone, subnet = next(iter(aws.defaults.subnet_ids.items()))
    del zone
    response = ec2.run_instances(
        ImageId=aws.defaults.ami_ids["al2023-x86_64"],
        InstanceType="m5.large",
        MinCount=1,
        MaxCount=1,
        SubnetId=subnet,
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
        ],
    )
    return str(response["Instances"][0]["InstanceId"])


def pod_tags(ref: PodRef, cluster: str) -> dict[str, str]:
    return {
        instance_tags.POD_NAMESPACE: ref.namespace,
        instance_tags.POD_NAME: ref.name,
        instance_tags.POD_UID: ref.uid,
        instance_tags.CLUSTER: cluster,
    }


def own_queue(clients: AwsClients) -> str:
    """A queue of the test's own: the shared interruption queue also gets the emulator's
    state-change notices, and a stopped watcher's last long poll may still take a message."""
    name = f"interruptions-{uuid.uuid4().hex[:8]}"
    return str(clients.sqs.create_queue(QueueName=name)["QueueUrl"])


def queue_depth(aws: AwsEmulator, queue_url: str | None = None) -> int:
    sqs = AwsClients(_aws_settings(aws)).sqs
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url or aws.defaults.interruption_queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def _aws_settings(aws: AwsEmulator) -> Any:
    from orca.settings import AwsCredentials, AwsSettings

    return AwsSettings(
        region=aws.region,
        endpoint_url=aws.endpoint_url,
        credentials=AwsCredentials(access_key_id="testing", secret_access_key="testing"),
    )


async def test_interruptions_reach_the_workflow_by_search_attribute_or_by_instance_tags(
    parts: WatcherParts,
) -> None:
    settings = parts.settings(interruption_queue_url=parts.aws.defaults.interruption_queue_url)
    node = settings.node.name
    cluster = settings.kubernetes.cluster_name
    # Pod A's workflow records its instance as a search attribute; pod B's only has tags.
    tagged_only = create_pod(parts.core, "by-tags", node)
    instance_b = launch(parts.aws, pod_tags(tagged_only, cluster))
    instance_a = launch(parts.aws, {"Name": "by-attribute"})
    by_attribute = create_pod(parts.core, "by-attribute", node, {INSTANCE_ANNOTATION: instance_a})
    async with running_watcher(settings, parts.temporal):
        await eventually(lambda: running(parts.temporal, by_attribute))
        await eventually(lambda: running(parts.temporal, tagged_only))
        parts.aws.control.interrupt(instance_a, kind="rebalance")
        parts.aws.control.interrupt(instance_b, kind="rebalance")
        await eventually(
            lambda: received(
                parts.temporal, by_attribute, f"interruption:rebalance-recommendation:{instance_a}"
            )
        )
        await eventually(
            lambda: received(
                parts.temporal, tagged_only, f"interruption:rebalance-recommendation:{instance_b}"
            )
        )
        await eventually(lambda: queue_depth(parts.aws) == 0)  # delivered messages are deleted


class _FailingWorkflows(PodWorkflows):
    async def running_workflows_for_instances(self, instance_ids: list[str]) -> dict[str, str]:
        return dict.fromkeys(instance_ids, "pod/default/x/uid-1")

    async def interruption(self, workflow_id: str, notice: InterruptionNotice) -> bool:
        raise RuntimeError("Temporal is unreachable")


async def test_a_message_stays_in_the_queue_until_its_signal_is_accepted(
    recorder: Client, aws: AwsEmulator
) -> None:
    clients = AwsClients(_aws_settings(aws))
    queue_url = own_queue(clients)
    event = {
        "version": "0",
        "id": "1",
        "detail-type": "EC2 Instance Rebalance Recommendation",
        "source": "aws.ec2",
        "account": aws.defaults.account_id,
        "time": "2024-05-01T12:00:00Z",
        "region": aws.region,
        "resources": [],
        "detail": {"instance-id": "i-0123456789abcdef0"},
    }
    clients.sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(event))
    failing = InterruptionConsumer(
        clients.sqs, clients.ec2, _FailingWorkflows(recorder, "q"), queue_url, cluster="orca"
    )
    message = clients.sqs.receive_message(QueueUrl=queue_url, VisibilityTimeout=0)["Messages"][0]
    assert await failing.handle(dict(message)) is False
    assert queue_depth(aws, queue_url) == 1
    delivering = InterruptionConsumer(
        clients.sqs, clients.ec2, PodWorkflows(recorder, "q"), queue_url, cluster="orca"
    )
    message = clients.sqs.receive_message(QueueUrl=queue_url)["Messages"][0]
    assert await delivering.handle(dict(message)) is True  # no workflow runs for it: delete
    assert queue_depth(aws, queue_url) == 0


def state_change(aws: AwsEmulator, instance_id: str, state: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": f"{instance_id}-{state}",
        "detail-type": "EC2 Instance State-change Notification",
        "source": "aws.ec2",
        "account": aws.defaults.account_id,
        "time": "2024-05-01T12:00:00Z",
        "region": aws.region,
        "resources": [],
        "detail": {"instance-id": instance_id, "state": state},
    }


async def test_a_receive_of_notices_is_looked_up_together(
    recorder: Client, aws: AwsEmulator
) -> None:
    """Ten notices for instances whose workflows have ended (a teardown): one DescribeInstances
    finds their pods by tag, every signal reports a finished workflow, every message is deleted;
    the one notice whose signal fails stays for redelivery."""
    clients = AwsClients(_aws_settings(aws))
    instrument(clients)
    queue_url = own_queue(clients)
    pods = [PodRef(namespace="ml", name=f"done-{n}", uid=f"uid-done-{n}") for n in range(10)]
    instances = [launch(aws, pod_tags(pod, "orca")) for pod in pods]
    for instance_id in instances:
        body = json.dumps(state_change(aws, instance_id, "terminated"))
        clients.sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    messages: list[dict[str, Any]] = []
    while len(messages) < len(instances):
        received_now = clients.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
        messages += received_now.get("Messages", [])
    unlucky = instances[3]

    class OneSignalFails(PodWorkflows):
        async def interruption(self, workflow_id: str, notice: InterruptionNotice) -> bool:
            if notice.instance_id == unlucky:
                raise RuntimeError("Temporal is unreachable")
            return await super().interruption(workflow_id, notice)

    consumer = InterruptionConsumer(
        clients.sqs, clients.ec2, OneSignalFails(recorder, "q"), queue_url, cluster="orca"
    )
    before = describe_instances_calls()
    deleted = await consumer.handle_batch(messages)
    assert describe_instances_calls() - before == 1
    by_instance = {
        json.loads(m["Body"])["detail"]["instance-id"]: ok
        for m, ok in zip(messages, deleted, strict=True)
    }
    assert by_instance == {i: i != unlucky for i in instances}
    # Only the unlucky message is still in the queue: make it visible again and look.
    [kept] = [m for m, ok in zip(messages, deleted, strict=True) if not ok]
    clients.sqs.change_message_visibility(
        QueueUrl=queue_url, ReceiptHandle=kept["ReceiptHandle"], VisibilityTimeout=0
    )
    left = clients.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
    assert [json.loads(m["Body"])["detail"]["instance-id"] for m in left["Messages"]] == [unlucky]
