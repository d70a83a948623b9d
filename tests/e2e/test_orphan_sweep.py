"""The orphan sweep on the embedded stack, as real processes: `orca dev` (Temporal dev server, AWS
and Kubernetes emulators, worker, watcher) with the sweep's settings given as `ORCA_*`
environment variables, which also shows that `orca dev` applies them.

- a pod whose workflow is terminated (as from the Temporal UI, here with the `temporal` CLI) loses
  its instance at the next sweep and is failed with reason `WorkflowEnded`;
- an instance whose workflow runs is untouched even though no worker polls that workflow's task
  queue (ownership comes from Temporal, not from workers), while an instance of a workflow that
  never existed is terminated by the same sweeps;
- a report-only sweep finds an orphan and ends nothing.
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import boto3
import pytest
from kubernetes import client
from temporalio.client import Client, WorkflowExecutionStatus

from orca import instance_tags
from orca.activities.orphan_models import OrphanKind, SweepInput, SweepReport
from orca.payload_codec import DATA_CONVERTER
from orca.workflows.orphan_sweep import OrphanSweep
from orca_devstack.examples import burst_pod
from tests.fixtures.dev_stack import DevStack, eventually, running_dev_stack
from tests.fixtures.temporal import venv_binary

pytestmark = pytest.mark.slow
T = TypeVar("T")

CLUSTER = "orca-dev"
TASK_QUEUE = "orca-pods"
SCHEDULE_ID = f"orca-orphan-sweep/{CLUSTER}"
SETTINGS = {
    "ORCA_ORPHANS__SWEEP_INTERVAL": "2s",
    "ORCA_ORPHANS__MIN_AGE": "1s",
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    with running_dev_stack(tmp_path_factory.mktemp("orca-dev-orphans"), settings=SETTINGS) as s:
        yield s


@pytest.fixture(scope="module")
def core(stack: DevStack) -> client.CoreV1Api:
    return stack.core()


@pytest.fixture(scope="module")
def ec2(stack: DevStack) -> Any:
    return boto3.client(
        "ec2",
        endpoint_url=stack.endpoints["aws_endpoint_url"],
        region_name="us-west-2",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def with_temporal(stack: DevStack, use: Callable[[Client], Awaitable[T]]) -> T:
    """Connect, run `use(client)`, all in one event loop."""

    async def run() -> T:
        connected = await Client.connect(
            stack.endpoints["temporal_address"], data_converter=DATA_CONVERTER
        )
        return await use(connected)

    return asyncio.run(run())


def state_of(ec2: Any, instance_id: str) -> str:
    reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    return str(reservations[0]["Instances"][0]["State"]["Name"])


def instances_of(ec2: Any, pod_uid: str) -> list[dict[str, Any]]:
    response = ec2.describe_instances(
        Filters=[{"Name": f"tag:{instance_tags.POD_UID}", "Values": [pod_uid]}]
    )
    return [i for r in response["Reservations"] for i in r["Instances"]]


def ended(state: str) -> bool:
    return state in ("shutting-down", "terminated")


def tagged_instance(ec2: Any, namespace: str, name: str, uid: str) -> str:
    """An instance tagged as ORCA tags a pod's, launched behind ORCA's back."""
    image = ec2.describe_images()["Images"][0]["ImageId"]
    tags = {
        instance_tags.CLUSTER: CLUSTER,
        instance_tags.MANAGED_BY: instance_tags.MANAGED_BY_VALUE,
        instance_tags.POD_NAMESPACE: namespace,
        instance_tags.POD_NAME: name,
        instance_tags.POD_UID: uid,
    }
    response = ec2.run_instances(
        ImageId=image,
        InstanceType="m5.large",
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
        ],
    )
    return str(response["Instances"][0]["InstanceId"])


def worker_log(stack: DevStack) -> str:
    return (Path(stack.state_dir) / "logs/worker.log").read_text()


def phase_and_reason(core: client.CoreV1Api, name: str) -> tuple[str | None, str | None]:
    status = core.read_namespaced_pod(name, "default").status
    return status.phase, status.reason


def event_reasons(core: client.CoreV1Api, name: str) -> list[str]:
    events = core.list_namespaced_event(
        "default", field_selector=f"involvedObject.name={name}"
    ).items
    return [e.reason for e in events]


def test_the_sweep_is_a_temporal_schedule_with_the_users_settings(stack: DevStack) -> None:
    description = with_temporal(stack, lambda t: t.get_schedule_handle(SCHEDULE_ID).describe())
    assert description.schedule.spec.intervals[0].every.total_seconds() == 2
    assert "every 2s" in (description.schedule.state.note or "")
    assert not description.schedule.state.paused
    assert "orphans.sweepInterval (ORCA_ORPHANS__SWEEP_INTERVAL)" in stack.output()


def test_a_pod_whose_workflow_is_terminated_loses_its_instance_and_fails(
    stack: DevStack, core: client.CoreV1Api, ec2: Any
) -> None:
    name = f"orphan-{uuid.uuid4().hex[:6]}"
    annotations = {
        "orca.research/instance-type": "c5.xlarge",
        "emulator.orca.research/run-seconds": "inf",
    }
    uid = core.create_namespaced_pod("default", burst_pod(name, annotations)).metadata.uid
    eventually(lambda: phase_and_reason(core, name)[0] == "Running", f"{name} to run")
    (launched,) = instances_of(ec2, uid)
    assert launched["State"]["Name"] == "running"
    workflow_id = f"pod/default/{name}/{uid}"
    subprocess.run(
        [
            venv_binary("temporal"),
            *("workflow", "terminate", "--address", stack.endpoints["temporal_address"]),
            *("--workflow-id", workflow_id, "--reason", "terminated from the UI"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    eventually(
        lambda: ended(state_of(ec2, launched["InstanceId"])),
        "the sweep to terminate the instance of the terminated workflow",
    )
    eventually(
        lambda: phase_and_reason(core, name) == ("Failed", "WorkflowEnded"),
        f"{name} to be Failed with reason WorkflowEnded",
    )
    pod = core.read_namespaced_pod(name, "default")
    assert workflow_id in pod.status.message
    reasons = event_reasons(core, name)
    assert "WorkflowEnded" in reasons
    assert "OrphanInstanceTerminated" in reasons
    ended_lines = [
        line
        for line in worker_log(stack).splitlines()
        if "orphan ended" in line and launched["InstanceId"] in line
    ]
    assert ended_lines, "a structured log line for the terminated instance"
    assert workflow_id in ended_lines[0]
    assert f"default/{name}" in ended_lines[0]


def test_an_instance_of_a_running_workflow_is_untouched_with_no_worker_polling(
    stack: DevStack, ec2: Any
) -> None:
    owned_uid, ghost_uid = str(uuid.uuid4()), str(uuid.uuid4())
    owned_id = f"pod/default/unpolled/{owned_uid}"

    async def start_unpolled(t: Client) -> None:
        # A PodLifecycle run on a task queue no worker polls: it stays Running, never executes.
        await t.start_workflow(
            "PodLifecycle", {"pod": {}}, id=owned_id, task_queue=f"nobody-{owned_uid}"
        )

    with_temporal(stack, start_unpolled)
    owned = tagged_instance(ec2, "default", "unpolled", owned_uid)
    ghost = tagged_instance(ec2, "default", "ghost", ghost_uid)  # its workflow never existed
    eventually(lambda: ended(state_of(ec2, ghost)), "the sweep to terminate the ghost's instance")
    # The sweep that ended the ghost's instance listed the older one too, and left it.
    assert not ended(state_of(ec2, owned))

    async def is_running_then_end(t: Client) -> bool:
        handle = t.get_workflow_handle(owned_id)
        running = (await handle.describe()).status is WorkflowExecutionStatus.RUNNING
        await handle.terminate("test over")
        return running

    assert with_temporal(stack, is_running_then_end)


def test_report_only_sweep_ends_nothing(stack: DevStack, ec2: Any) -> None:
    async def pause_and_drain(t: Client) -> None:
        schedule = t.get_schedule_handle(SCHEDULE_ID)
        await schedule.pause(note="report-only test")
        for _ in range(200):
            if not (await schedule.describe()).info.running_actions:
                return
            await asyncio.sleep(0.1)
        raise AssertionError("a scheduled sweep kept running")

    with_temporal(stack, pause_and_drain)
    try:
        uid = str(uuid.uuid4())
        orphan = tagged_instance(ec2, "default", "report-only", uid)

        def sweep(report_only: bool) -> SweepReport:
            async def run(t: Client) -> SweepReport:
                return await t.execute_workflow(
                    OrphanSweep.run,
                    SweepInput(min_age=timedelta(0), report_only=report_only),
                    id=f"test-sweep-{uuid.uuid4()}",
                    task_queue=TASK_QUEUE,
                )

            return with_temporal(stack, run)

        report = sweep(True)
        assert report.report_only
        assert orphan in [o.id for o in report.found if o.kind is OrphanKind.INSTANCE]
        assert report.ended == ()
        assert not ended(state_of(ec2, orphan))
        report = sweep(False)
        assert orphan in [o.id for o in report.ended]
        assert ended(state_of(ec2, orphan))
    finally:
        with_temporal(stack, lambda t: t.get_schedule_handle(SCHEDULE_ID).unpause(note="test over"))


def test_spot_requests_and_secret_parameters_of_ended_pods_are_removed(
    stack: DevStack, ec2: Any
) -> None:
    ssm = boto3.client(
        "ssm",
        endpoint_url=stack.endpoints["aws_endpoint_url"],
        region_name="us-west-2",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    uid = str(uuid.uuid4())
    tags = {
        instance_tags.CLUSTER: CLUSTER,
        instance_tags.MANAGED_BY: instance_tags.MANAGED_BY_VALUE,
        instance_tags.POD_NAMESPACE: "default",
        instance_tags.POD_NAME: "leaky",
        instance_tags.POD_UID: uid,
    }
    image = ec2.describe_images()["Images"][0]["ImageId"]
    request = ec2.request_spot_instances(
        LaunchSpecification={"ImageId": image, "InstanceType": "m5.large"},
        TagSpecifications=[
            {
                "ResourceType": "spot-instances-request",
                "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
            }
        ],
    )["SpotInstanceRequests"][0]["SpotInstanceRequestId"]
    secret = f"/orca/pods/{uid}/env-TOKEN"
    ssm.put_parameter(Name=secret, Value="s3cret", Type="SecureString")
    # The parameters of another cluster's pod (a UID this cluster never launched for) stay.
    foreign = f"/orca/pods/{uuid.uuid4()}/env-TOKEN"
    ssm.put_parameter(Name=foreign, Value="theirs", Type="SecureString")
    instance = tagged_instance(ec2, "default", "leaky", uid)  # ties the UID to this cluster

    def request_cancelled() -> bool:
        # AWS lists a cancelled request as `cancelled` for a while; the emulator forgets it.
        items = ec2.describe_spot_instance_requests(
            Filters=[{"Name": "spot-instance-request-id", "Values": [request]}]
        )["SpotInstanceRequests"]
        return all(item["State"] == "cancelled" for item in items)

    def parameter_exists(name: str) -> bool:
        return bool(ssm.get_parameters(Names=[name])["Parameters"])

    eventually(request_cancelled, "the sweep to cancel the spot request")
    eventually(
        lambda: any(
            "orphan ended" in line and request in line for line in worker_log(stack).splitlines()
        ),
        "the cancellation in the worker's log",
    )
    eventually(lambda: not parameter_exists(secret), "the sweep to delete the pod's secrets")
    eventually(lambda: ended(state_of(ec2, instance)), "the sweep to terminate the instance")
    assert parameter_exists(foreign)
    ssm.delete_parameter(Name=foreign)
