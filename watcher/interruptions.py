"""The interruption queue consumer: EC2's warnings, delivered to the workflow of the instance's pod.

Long-polls the SQS queue EventBridge feeds (`aws.interruptionQueueURL`), parses each message
(`interruption_events`), finds the running workflow for each named instance and signals it. The
workflow is found by the `OrcaInstanceId` search attribute it upserts when its instance launches;
when visibility lags (it is eventually consistent) or the attribute is missing, the instance's own
tags name the pod (`orca.research/pod-*`) and so the workflow ID.

A message is deleted only once every notice in it was accepted by its workflow, or when no workflow
runs for the instance (not ORCA's, or already finished). If signalling fails, the message stays and
SQS redelivers it after its visibility timeout: at-least-once, and the workflow ignores repeats.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any

from orca import aws_errors, instance_tags
from orca.launch_spec import PodRef
from orca.logging import bind_work_context, get_logger
from orca.metrics import INTERRUPTIONS
from orca.workflow_ids import pod_workflow_id
from watcher.interruption_events import parse_interruption_message
from watcher.pod_workflows import PodWorkflows
from workflows.models import InterruptionNotice

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_sqs import SQSClient

log = get_logger(__name__)


class InterruptionConsumer:
    def __init__(
        self,
        sqs: SQSClient,
        ec2: EC2Client,
        workflows: PodWorkflows,
        queue_url: str,
        *,
        cluster: str,
        wait_seconds: int = 20,
        error_backoff: float = 5.0,
    ) -> None:
        self.sqs = sqs
        self.ec2 = ec2
        self.workflows = workflows
        self.queue_url = queue_url
        self.cluster = cluster
        self.wait_seconds = wait_seconds
        self.error_backoff = error_backoff

    async def run(self) -> None:
        """Consume until cancelled."""
        while True:
            try:
                messages = await self._call(
                    self.sqs.receive_message,
                    QueueUrl=self.queue_url,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=self.wait_seconds,
                )
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning(
                    "interruption queue receive failed",
                    error=aws_errors.error_message(error),
                    kind=str(aws_errors.classify(error)),
                )
                await asyncio.sleep(self.error_backoff)
                continue
            for message in messages.get("Messages", []):
                await self.handle(message)

    async def handle(self, message: dict[str, Any]) -> bool:
        """Deliver one message; True when it was deleted from the queue."""
        parsed = parse_interruption_message(message.get("Body", ""))
        if not parsed.notices:
            log.info("interruption message ignored", reason=parsed.ignored_reason)
            await self._delete(message)
            return True
        delivered = True
        for notice in parsed.notices:
            INTERRUPTIONS.labels(kind=str(notice.kind)).inc()
            try:
                delivered = await self._deliver(notice) and delivered
            except asyncio.CancelledError:
                raise
            except Exception as error:
                delivered = False
                with bind_work_context(instance_id=notice.instance_id):
                    log.warning(
                        "interruption not delivered; the message will be redelivered",
                        kind=str(notice.kind),
                        error=f"{type(error).__name__}: {error}",
                    )
        if delivered:
            await self._delete(message)
        return delivered

    async def _deliver(self, notice: InterruptionNotice) -> bool:
        """Signal the instance's workflow; True when accepted or when none runs."""
        workflow_id = await self.workflows.running_workflow_for_instance(notice.instance_id)
        if workflow_id is None:
            workflow_id = await self._workflow_from_tags(notice.instance_id)
        with bind_work_context(instance_id=notice.instance_id, workflow_id=workflow_id):
            if workflow_id is None:
                log.info("interruption for an instance without a workflow", kind=str(notice.kind))
                return True
            accepted = await self.workflows.interruption(workflow_id, notice)
            log.info(
                "interruption signalled" if accepted else "interruption for a finished workflow",
                kind=str(notice.kind),
                state=notice.state,
            )
        return True

    async def _workflow_from_tags(self, instance_id: str) -> str | None:
        try:
            response = await self._call(self.ec2.describe_instances, InstanceIds=[instance_id])
        except Exception as error:
            if aws_errors.is_not_found(error):
                return None
            raise
        for reservation in response.get("Reservations", []):
            for instance in reservation.get("Instances", []):
                tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
                if tags.get(instance_tags.CLUSTER) not in (None, self.cluster):
                    return None  # another cluster's instance sharing the queue
                if all(
                    key in tags
                    for key in (
                        instance_tags.POD_NAMESPACE,
                        instance_tags.POD_NAME,
                        instance_tags.POD_UID,
                    )
                ):
                    return pod_workflow_id(
                        PodRef(
                            namespace=tags[instance_tags.POD_NAMESPACE],
                            name=tags[instance_tags.POD_NAME],
                            uid=tags[instance_tags.POD_UID],
                        )
                    )
        return None

    async def _delete(self, message: dict[str, Any]) -> None:
        try:
            await self._call(
                self.sqs.delete_message,
                QueueUrl=self.queue_url,
                ReceiptHandle=message["ReceiptHandle"],
            )
        except Exception as error:
            log.warning("interruption message not deleted", error=aws_errors.error_message(error))

    async def _call(self, function: Any, **kwargs: Any) -> Any:
        """Run a blocking SQS/EC2 call in a daemon thread of its own: a 20 s long poll must not
        hold a slot of the default executor, and process exit must not wait for it (executor
        threads are joined at exit, which kept a stopping watcher alive for up to 20 s)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()

        def settle(result: Any, error: BaseException | None) -> None:
            if future.done():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

        def target() -> None:
            try:
                result = function(**kwargs)
            except BaseException as error:
                loop.call_soon_threadsafe(settle, None, error)
            else:
                loop.call_soon_threadsafe(settle, result, None)

        threading.Thread(target=target, name="interruptions", daemon=True).start()
        return await future
