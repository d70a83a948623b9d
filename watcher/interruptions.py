"""The interruption queue consumer: EC2's warnings, delivered to the workflow of the instance's pod.

Long-polls the SQS queue EventBridge feeds (`aws.interruptionQueueURL`), parses each message
(`interruption_events`), finds the running workflow for each named instance and signals it. The
workflow is found by the `OrcaInstanceId` search attribute it upserts when its instance launches;
when visibility lags (it is eventually consistent) or the attribute is missing, the instance's own
tags name the pod (`orca.research/pod-*`) and so the workflow ID. Lookups are made per receive
(up to 10 messages): one visibility query and at most one DescribeInstances for all of them.

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
from orca.watcher.interruption_events import parse_interruption_message
from orca.watcher.pod_workflows import PodWorkflows
from orca.workflow_ids import pod_workflow_id
from orca.workflows.models import InterruptionNotice

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
            batch = messages.get("Messages", [])
            if batch:
                await self.handle_batch(batch)

    async def handle(self, message: dict[str, Any]) -> bool:
        """Deliver one message; True when it was deleted from the queue."""
        [deleted] = await self.handle_batch([message])
        return deleted

    async def handle_batch(self, messages: list[dict[str, Any]]) -> list[bool]:
        """Deliver one receive's messages (up to 10); for each, True when it was deleted.

        The notices' workflows are looked up together: one visibility query for all their
        instances, then one DescribeInstances (by tag) for those no running workflow claims, so a
        burst of notices (e.g. 2000 state changes when 1000 pods end) costs two lookups and one
        DeleteMessageBatch per ten messages, not three calls per message."""
        parsed = [parse_interruption_message(m.get("Body", "")) for m in messages]
        notices = [notice for p in parsed for notice in p.notices]
        for notice in notices:
            INTERRUPTIONS.labels(kind=str(notice.kind)).inc()
        try:
            workflow_ids = await self._workflows_for([n.instance_id for n in notices])
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.warning(
                "interruption workflows not found; the messages will be redelivered",
                error=f"{type(error).__name__}: {error}",
                messages=len(messages),
            )
            workflow_ids = None
        done = []
        for one in parsed:
            if not one.notices:
                log.info("interruption message ignored", reason=one.ignored_reason)
                done.append(True)
                continue
            if workflow_ids is None:
                done.append(False)
                continue
            delivered = True
            for notice in one.notices:
                delivered = await self._deliver(notice, workflow_ids) and delivered
            done.append(delivered)
        handled = [m for m, ok in zip(messages, done, strict=True) if ok]
        deleted = await self._delete(handled)
        return [m["ReceiptHandle"] in deleted for m in messages]

    async def _deliver(self, notice: InterruptionNotice, workflow_ids: dict[str, str]) -> bool:
        """Signal the instance's workflow; True when accepted or when none runs."""
        workflow_id = workflow_ids.get(notice.instance_id)
        with bind_work_context(instance_id=notice.instance_id, workflow_id=workflow_id):
            if workflow_id is None:
                log.info("interruption for an instance without a workflow", kind=str(notice.kind))
                return True
            try:
                accepted = await self.workflows.interruption(workflow_id, notice)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning(
                    "interruption not delivered; the message will be redelivered",
                    kind=str(notice.kind),
                    error=f"{type(error).__name__}: {error}",
                )
                return False
            log.info(
                "interruption signalled" if accepted else "interruption for a finished workflow",
                kind=str(notice.kind),
                state=notice.state,
            )
        return True

    async def _workflows_for(self, instance_ids: list[str]) -> dict[str, str]:
        """Instance ID → workflow ID: by the `OrcaInstanceId` search attribute of running
        workflows, else by the instance's pod tags (visibility lags, or the attribute is not set
        yet). Instances of other clusters, or without ORCA's tags, have none."""
        wanted = sorted(set(instance_ids))
        found = await self.workflows.running_workflows_for_instances(wanted)
        unclaimed = [i for i in wanted if i not in found]
        if unclaimed:
            found.update(await self._workflows_from_tags(unclaimed))
        return found

    async def _workflows_from_tags(self, instance_ids: list[str]) -> dict[str, str]:
        # An instance-id *filter*: an ID EC2 no longer (or does not yet) know is simply absent,
        # where `InstanceIds` would fail the whole call. One receive names at most 10.
        response = await self._call(
            self.ec2.describe_instances,
            Filters=[{"Name": "instance-id", "Values": instance_ids}],
        )
        found: dict[str, str] = {}
        for reservation in response.get("Reservations", []):
            for instance in reservation.get("Instances", []):
                tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
                if tags.get(instance_tags.CLUSTER) not in (None, self.cluster):
                    continue  # another cluster's instance sharing the queue
                if all(
                    key in tags
                    for key in (
                        instance_tags.POD_NAMESPACE,
                        instance_tags.POD_NAME,
                        instance_tags.POD_UID,
                    )
                ):
                    found[instance["InstanceId"]] = pod_workflow_id(
                        PodRef(
                            namespace=tags[instance_tags.POD_NAMESPACE],
                            name=tags[instance_tags.POD_NAME],
                            uid=tags[instance_tags.POD_UID],
                        )
                    )
        return found

    async def _delete(self, messages: list[dict[str, Any]]) -> set[str]:
        """Delete handled messages in one DeleteMessageBatch; the receipt handles deleted."""
        if not messages:
            return set()
        handles = [m["ReceiptHandle"] for m in messages]
        entries = [{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(handles)]
        try:
            response = await self._call(
                self.sqs.delete_message_batch, QueueUrl=self.queue_url, Entries=entries
            )
        except Exception as error:
            log.warning("interruption messages not deleted", error=aws_errors.error_message(error))
            return set()
        for failure in response.get("Failed", []):
            log.warning(
                "interruption message not deleted",
                error=f"{failure.get('Code')}: {failure.get('Message')}",
            )
        return {handles[int(ok["Id"])] for ok in response.get("Successful", [])}

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
