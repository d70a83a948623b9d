"""ORCA's activities against the AWS emulator and the Kubernetes API emulator, over real HTTP.

Each activity runs in Temporal's `ActivityEnvironment` (heartbeats and cancellation work as in a
worker) with the same wiring the worker uses (`orca.worker.main.build_activities`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from kubernetes import client
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from orca import instance_tags
from orca.activities.amis import Amis
from orca.activities.batched_poller import BatchedPoller
from orca.activities.cluster_instances import ClusterInstances, listed_missing
from orca.activities.ec2_instances import Ec2Instances
from orca.activities.instance_catalog import InstanceCatalog
from orca.activities.instances import InstanceActivities
from orca.activities.launch_admission import (
    BudgetLedgerClient,
    LaunchAdmission,
    NoAdmission,
    rules_from_settings,
)
from orca.activities.models import (
    DeletePodInput,
    EventType,
    LaunchPlan,
    LaunchRequest,
    PlanLaunchInput,
    PodCondition,
    PodEventReport,
    PodStatusReport,
    TerminateInput,
    WaitForInstanceInput,
)
from orca.activities.planning import PlanningActivities
from orca.activities.pod_status import PodStatusActivities, event_body
from orca.activities.unavailable_offerings import UnavailableOfferings
from orca.aws_clients import AwsClients
from orca.aws_metrics import instrument
from orca.failure_types import FailureType
from orca.instance_state import InstanceState
from orca.launch_spec import PodRef
from orca.pod_api import PodApi
from orca.settings import (
    AwsSettings,
    InstancesSettings,
    LimitsSettings,
    Settings,
    WorkerSettings,
)
from orca.workflow_ids import pod_workflow_id
from orca.workflows.budget_ledger import BudgetLedger
from orca.workflows.ledger_models import LedgerSummary
from orca_devstack.emulators.aws import AwsEmulator
from tests.fixtures.aws import describe_instances_calls

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


def settings_for(
    emulator: AwsEmulator, limits: LimitsSettings | None = None, **instances: Any
) -> Settings:
    defaults = emulator.defaults
    return Settings(
        aws=AwsSettings(
            region=defaults.region,
            endpoint_url=emulator.endpoint_url,
            subnet_ids=tuple(defaults.subnet_ids.values()),
            security_group_ids=(defaults.security_group_id,),
        ),
        instances=InstancesSettings(**instances),
        limits=limits or LimitsSettings(),
        worker=WorkerSettings(instance_poll_interval=0.2),  # type: ignore[arg-type]
    )


class Wiring:
    def __init__(
        self,
        emulator: AwsEmulator,
        limits: LimitsSettings | None = None,
        admission: LaunchAdmission | None = None,
        **instances: Any,
    ) -> None:
        self.settings = settings_for(emulator, limits, **instances)
        self.aws = AwsClients(self.settings.aws)
        self.unavailable = UnavailableOfferings(180)
        self.catalog = InstanceCatalog(self.aws, self.settings.aws)
        instrument(self.aws)
        self.ec2 = Ec2Instances(self.aws, self.settings)
        self.states = BatchedPoller(
            lambda _ids: self.ec2.describe_cluster(),
            listed_missing,
            interval_seconds=0.2,
            name="ec2",
        )
        self.cluster = ClusterInstances(self.states)
        self.planning = PlanningActivities(self.settings, self.catalog, self.unavailable)
        self.amis = Amis(self.aws, self.settings.aws.ami_id)
        self.instances = InstanceActivities(
            self.ec2,
            self.amis,
            self.catalog,
            self.cluster,
            self.unavailable,
            admission or NoAdmission(),
        )

    async def plan(self, pod: dict[str, Any]) -> LaunchPlan:
        plan: LaunchPlan = await ActivityEnvironment().run(
            self.planning.plan_launch, PlanLaunchInput(pod=pod)
        )
        return plan


def pod_manifest(annotations: dict[str, str], name: str | None = None) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name or f"job-{uuid.uuid4().hex[:6]}",
            "namespace": "research",
            "uid": str(uuid.uuid4()),
            "annotations": annotations,
        },
        "spec": {
            "nodeName": "orca-aws-node",
            "containers": [
                {"name": "main", "image": "busybox", "resources": {"requests": {"cpu": "1"}}}
            ],
        },
    }


def tags_of(instance: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in instance.get("Tags", [])}


async def test_plan_orders_offerings_by_zone_price_and_launch_is_idempotent(
    aws: AwsEmulator, aws_client: Any
) -> None:
    wiring = Wiring(aws)
    pod = pod_manifest({"orca.research/instance-type": "m5.large"})
    plan = await wiring.plan(pod)
    assert {c.instance_type for c in plan.candidates} == {"m5.large"}
    assert len(plan.candidates) == 3  # one per configured zone
    assert "m5.large" in plan.candidates[0].reason
    request = LaunchRequest(
        spec=plan.spec,
        candidate=plan.candidates[0],
        client_token="token-1",
        requested_at=NOW,
    )
    env = ActivityEnvironment()
    first = await env.run(wiring.instances.launch_instance, request)
    same_token = await env.run(wiring.instances.launch_instance, request)
    assert first.instance_id is not None
    assert same_token.instance_id == first.instance_id  # EC2's ClientToken idempotency
    retry = ActivityEnvironment()
    retry.info = dataclasses.replace(retry.info, attempt=2)
    lost_answer = request.model_copy(update={"client_token": "token-2"})
    again = await retry.run(wiring.instances.launch_instance, lost_answer)
    assert again.instance_id == first.instance_id  # found by the pod-UID tag
    assert again.reused_existing
    ec2 = aws_client("ec2")
    reservations = ec2.describe_instances(InstanceIds=[first.instance_id])["Reservations"]
    instance = reservations[0]["Instances"][0]
    tags = tags_of(instance)
    assert tags["orca.research/pod-uid"] == pod["metadata"]["uid"]
    assert tags["orca.research/pod-namespace"] == "research"
    assert tags["orca.research/managed-by"] == "orca"
    assert tags["orca.research/budget-namespace"] == "research"
    metadata = instance["MetadataOptions"]
    assert metadata["HttpTokens"] == "required"
    assert metadata["HttpEndpoint"] == "enabled"
    assert metadata["HttpPutResponseHopLimit"] == 1  # containers cannot reach IMDS
    assert instance["Placement"]["AvailabilityZone"] == plan.candidates[0].zone
    volume_ids = [m["Ebs"]["VolumeId"] for m in instance["BlockDeviceMappings"]]
    volumes = ec2.describe_volumes(VolumeIds=volume_ids)["Volumes"]
    assert all(v["Encrypted"] for v in volumes)


async def test_a_pod_that_opts_in_to_instance_metadata_gets_hop_limit_two(
    aws: AwsEmulator, aws_client: Any
) -> None:
    wiring = Wiring(aws)
    pod = pod_manifest(
        {"orca.research/instance-type": "m5.large", "orca.research/instance-metadata": "true"}
    )
    plan = await wiring.plan(pod)
    request = LaunchRequest(
        spec=plan.spec, candidate=plan.candidates[0], client_token="imds-1", requested_at=NOW
    )
    launched = await ActivityEnvironment().run(wiring.instances.launch_instance, request)
    reservations = aws_client("ec2").describe_instances(InstanceIds=[launched.instance_id])
    metadata = reservations["Reservations"][0]["Instances"][0]["MetadataOptions"]
    assert metadata["HttpTokens"] == "required"
    assert metadata["HttpPutResponseHopLimit"] == 2


async def test_targeted_reservation_outside_the_first_zone_is_planned_and_launched(
    aws: AwsEmulator, aws_client: Any
) -> None:
    """ORCA looks the reservation up and offers only its type in its zone (launching it
    elsewhere is InvalidParameterCombination); one that cannot serve the pod says why."""
    zones = sorted(aws.defaults.subnet_ids)
    zone = zones[-1]
    ec2 = aws_client("ec2")
    reservation_id = ec2.create_capacity_reservation(
        InstanceType="m5.large",
        InstancePlatform="Linux/UNIX",
        AvailabilityZone=zone,
        InstanceCount=1,
        InstanceMatchCriteria="targeted",
    )["CapacityReservation"]["CapacityReservationId"]
    wiring = Wiring(aws)
    pod = pod_manifest(
        {
            "orca.research/instance-type": "m5.large",
            "orca.research/capacity-reservation-id": reservation_id,
            "orca.research/capacity-reservation-preference": "targeted",
        }
    )
    plan = await wiring.plan(pod)
    assert [(c.instance_type, c.zone) for c in plan.candidates] == [("m5.large", zone)]
    outcome = await ActivityEnvironment().run(
        wiring.instances.launch_instance,
        LaunchRequest(
            spec=plan.spec,
            candidate=plan.candidates[0],
            client_token=f"token-{uuid.uuid4()}",
            requested_at=NOW,
        ),
    )
    assert outcome.instance_id is not None

    other_type = pod_manifest(
        {
            "orca.research/instance-type": "c5.large",
            "orca.research/capacity-reservation-id": reservation_id,
            "orca.research/capacity-reservation-preference": "targeted",
        }
    )
    with pytest.raises(ApplicationError) as mismatch:
        await wiring.plan(other_type)
    assert mismatch.value.type == FailureType.INVALID_POD_SPEC
    assert f"is for m5.large in {zone}" in str(mismatch.value)
    unknown = pod_manifest(
        {
            "orca.research/instance-type": "m5.large",
            "orca.research/capacity-reservation-id": "cr-0123456789abcdef0",
            "orca.research/capacity-reservation-preference": "targeted",
        }
    )
    with pytest.raises(ApplicationError) as missing:
        await wiring.plan(unknown)
    assert "does not exist" in str(missing.value)


async def test_capacity_error_is_a_result_and_the_offering_is_remembered(
    aws: AwsEmulator,
) -> None:
    wiring = Wiring(aws)
    pod = pod_manifest({"orca.research/instance-type": "c5.xlarge"})
    plan = await wiring.plan(pod)
    first = plan.candidates[0]
    aws.control.set_capacity("c5.xlarge", zone=first.zone, count=0)
    request = LaunchRequest(spec=plan.spec, candidate=first, client_token="t-cap", requested_at=NOW)
    outcome = await ActivityEnvironment().run(wiring.instances.launch_instance, request)
    assert outcome.instance_id is None
    assert outcome.capacity_error == "InsufficientInstanceCapacity"
    assert first.offering in wiring.unavailable.current()
    replanned = await wiring.plan(pod)
    assert replanned.candidates[-1].offering == first.offering  # now tried last
    assert "recently out of capacity" in replanned.candidates[-1].reason


async def test_invalid_pod_fails_planning_without_retry(aws: AwsEmulator) -> None:
    wiring = Wiring(aws)
    with pytest.raises(ApplicationError) as failure:
        await wiring.plan(pod_manifest({"orca.research/instance-type": "p9.huge"}))
    assert failure.value.type == FailureType.INVALID_POD_SPEC
    assert failure.value.non_retryable
    assert "p9.huge" in str(failure.value)


async def test_undersized_explicit_type_warns_or_is_refused(aws: AwsEmulator) -> None:
    manifest = pod_manifest({"orca.research/instance-type": "t3.micro"})
    manifest["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "64"
    plan = await Wiring(aws).plan(manifest)
    assert [c.instance_type for c in plan.candidates][:1] == ["t3.micro"]
    (warning,) = plan.warnings
    assert "64 CPUs requested, it has 2 vCPUs" in warning
    with pytest.raises(ApplicationError) as refused:
        await Wiring(aws, refuse_undersized=True).plan(manifest)
    assert refused.value.type == FailureType.INVALID_POD_SPEC
    assert refused.value.non_retryable
    assert "instances.refuseUndersized" in str(refused.value)


async def test_auto_selection_uses_the_emulated_catalog(aws: AwsEmulator) -> None:
    wiring = Wiring(aws, selection_mode="auto")
    pod = pod_manifest({})
    pod["spec"]["containers"][0]["resources"] = {
        "requests": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"}
    }
    plan = await wiring.plan(pod)
    catalog, _ = await wiring.catalog.snapshot()
    for candidate in plan.candidates:
        info = catalog.instance_types[candidate.instance_type]
        assert info.gpus >= 1
        assert info.vcpus >= 4
    prices = [c.hourly_price for c in plan.candidates if c.hourly_price is not None]
    assert prices == sorted(prices)


async def test_waiting_instances_share_one_describe_call_per_interval(aws: AwsEmulator) -> None:
    wiring = Wiring(aws)
    pods = [pod_manifest({"orca.research/instance-type": "m5.large"}) for _ in range(6)]
    plan = await wiring.plan(pods[0])
    ids = []
    for i, pod in enumerate(pods):
        request = LaunchRequest(
            spec=plan.spec.model_copy(update={"pod": PodRef(**_ref(pod))}),
            candidate=plan.candidates[0],
            client_token=f"t-wait-{i}",
            requested_at=NOW,
        )
        outcome = await ActivityEnvironment().run(wiring.instances.launch_instance, request)
        assert outcome.instance_id is not None
        ids.append(outcome.instance_id)
    waits = [
        ActivityEnvironment().run(
            wiring.instances.wait_until_running,
            WaitForInstanceInput(instance_id=i, timeout=60),  # type: ignore[arg-type]
        )
        for i in ids
    ]
    describes_before, rounds_before = describe_instances_calls(), wiring.states.rounds
    results = await asyncio.gather(*waits)
    assert all(r.status.state is InstanceState.RUNNING for r in results)
    assert all(r.status.private_ip for r in results)
    # Six waiters, each answered every round until running: one call per round, not six.
    rounds = wiring.states.rounds - rounds_before
    assert rounds >= 1
    assert describe_instances_calls() - describes_before == rounds
    await wiring.states.close()


async def test_status_pod_lookup_and_live_count_share_one_round(
    aws: AwsEmulator, aws_client: Any
) -> None:
    """Waiting on an instance, finding a pod's instance by tag and counting live instances
    for limits are all answered by the same DescribeInstances call."""
    wiring = Wiring(aws)
    pod = pod_manifest({"orca.research/instance-type": "m5.large"})
    plan = await wiring.plan(pod)
    request = LaunchRequest(
        spec=plan.spec, candidate=plan.candidates[0], client_token="t-r", requested_at=NOW
    )
    launched = await ActivityEnvironment().run(wiring.instances.launch_instance, request)
    assert launched.instance_id is not None
    await wiring.cluster.status(launched.instance_id)  # EC2 lists it from now on
    rounds_before, calls_before = wiring.states.rounds, describe_instances_calls()
    status, of_pod, live = await asyncio.gather(
        wiring.cluster.status(launched.instance_id),
        wiring.cluster.of_pod(plan.spec.pod.uid),
        wiring.cluster.live(),
    )
    assert wiring.states.rounds - rounds_before == 1
    assert describe_instances_calls() - calls_before == 1
    assert status.instance_id == launched.instance_id
    assert [s.instance_id for s in of_pod] == [launched.instance_id]
    assert launched.instance_id in {i.instance_id for i in live}
    await wiring.cluster.close()


async def test_one_describe_call_covers_hundreds_of_instances(
    aws: AwsEmulator, aws_client: Any
) -> None:
    """250 instances: more than a filter may list (200 values), answered by one call."""
    wiring = Wiring(aws)
    cluster = f"burst-{uuid.uuid4().hex[:6]}"  # only this test's instances carry it
    settings = wiring.settings.model_copy(
        update={
            "kubernetes": wiring.settings.kubernetes.model_copy(update={"cluster_name": cluster})
        }
    )
    tags = [
        {"Key": instance_tags.CLUSTER, "Value": cluster},
        {"Key": instance_tags.MANAGED_BY, "Value": instance_tags.MANAGED_BY_VALUE},
    ]
    ec2 = aws_client("ec2")
    launched = ec2.run_instances(
        ImageId=aws.defaults.ami_ids["al2023-x86_64"],
        InstanceType="t3.micro",
        MinCount=250,
        MaxCount=250,
        TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
    )
    ec2.run_instances(
        ImageId=aws.defaults.ami_ids["al2023-x86_64"],
        InstanceType="t3.micro",
        MinCount=3,
        MaxCount=3,
    )
    before = describe_instances_calls()
    listed = await asyncio.to_thread(Ec2Instances(wiring.aws, settings).describe_cluster)
    assert describe_instances_calls() - before == 1
    assert set(listed) == {i["InstanceId"] for i in launched["Instances"]}
    assert {item.status.instance_type for item in listed.values()} == {"t3.micro"}
    with pytest.raises(ClientError, match="FilterLimitExceeded"):
        ec2.describe_instances(Filters=[{"Name": "instance-id", "Values": list(listed)}])


async def test_terminate_finds_instances_by_pod_tag_and_is_idempotent(
    aws: AwsEmulator, aws_client: Any
) -> None:
    wiring = Wiring(aws)
    pod = pod_manifest({"orca.research/instance-type": "m5.large"})
    plan = await wiring.plan(pod)
    request = LaunchRequest(
        spec=plan.spec, candidate=plan.candidates[0], client_token="x", requested_at=NOW
    )
    launched = await ActivityEnvironment().run(wiring.instances.launch_instance, request)
    # No known instance ID (a launch whose answer was lost): the tag finds it.
    gone = await ActivityEnvironment().run(
        wiring.instances.terminate_instances, TerminateInput(pod=plan.spec.pod)
    )
    assert gone.terminated == (launched.instance_id,)
    again = await ActivityEnvironment().run(
        wiring.instances.terminate_instances,
        TerminateInput(pod=plan.spec.pod, instance_ids=(launched.instance_id or "",)),
    )
    assert again.terminated in ((), (launched.instance_id,))  # terminating twice is fine
    state = aws_client("ec2").describe_instances(InstanceIds=[launched.instance_id])
    assert state["Reservations"][0]["Instances"][0]["State"]["Name"] in (
        "shutting-down",
        "terminated",
    )


async def test_terminate_ends_the_known_instance_and_any_other_the_pod_tag_finds(
    aws: AwsEmulator,
) -> None:
    wiring = Wiring(aws, LimitsSettings(max_concurrent_instances=0, max_instances_per_namespace=0))
    pod = pod_manifest({"orca.research/instance-type": "m5.large"})
    plan = await wiring.plan(pod)
    launched = []
    for token in ("known", "lost-answer"):
        request = LaunchRequest(
            spec=plan.spec,
            candidate=plan.candidates[0],
            client_token=f"t-{token}",
            requested_at=NOW,
        )
        outcome = await ActivityEnvironment().run(wiring.instances.launch_instance, request)
        assert outcome.instance_id is not None
        launched.append(outcome.instance_id)
    gone = await ActivityEnvironment().run(
        wiring.instances.terminate_instances,
        TerminateInput(pod=plan.spec.pod, instance_ids=(launched[0],)),
    )
    assert gone.terminated == tuple(launched)
    await wiring.cluster.close()


async def test_the_budget_ledger_holds_launches_until_a_terminate_releases_room(
    aws: AwsEmulator, temporal_dev_env: WorkflowEnvironment
) -> None:
    limits = LimitsSettings(max_concurrent_instances=0, max_instances_per_namespace=1)
    task_queue = f"ledger-{uuid.uuid4()}"
    rules = rules_from_settings(settings_for(aws, limits)).model_copy(
        update={"task_queue": task_queue}
    )
    ledger = BudgetLedgerClient(temporal_dev_env.client, f"c-{uuid.uuid4().hex[:6]}", rules)
    wiring = Wiring(aws, limits, admission=ledger)
    pods = [pod_manifest({"orca.research/instance-type": "m5.large"}) for _ in range(2)]
    plan = await wiring.plan(pods[0])
    requests = [
        LaunchRequest(
            spec=plan.spec.model_copy(update={"pod": PodRef(**_ref(pod))}),
            candidate=plan.candidates[0],
            client_token=f"t-limit-{i}-{uuid.uuid4().hex[:6]}",
            requested_at=NOW,
        )
        for i, pod in enumerate(pods)
    ]
    async with Worker(temporal_dev_env.client, task_queue=task_queue, workflows=[BudgetLedger]):
        first = await ActivityEnvironment().run(wiring.instances.launch_instance, requests[0])
        held = await ActivityEnvironment().run(wiring.instances.launch_instance, requests[1])
        assert first.instance_id is not None
        assert held.instance_id is None
        assert held.limit_reached is not None
        assert "limits.maxInstancesPerNamespace (1) would be exceeded" in held.limit_reached
        await ActivityEnvironment().run(
            wiring.instances.terminate_instances,
            TerminateInput(pod=requests[0].spec.pod, instance_ids=(first.instance_id,)),
        )
        second = await ActivityEnvironment().run(wiring.instances.launch_instance, requests[1])
        assert second.instance_id is not None
    await wiring.cluster.close()


class LosesLaunchNotes(BudgetLedgerClient):
    """A worker killed before its queued launch record reached the ledger (fault injection)."""

    def note_launch(self, pod: str, instance_id: str) -> None:
        return None


async def test_a_launch_record_lost_with_its_worker_is_made_good_by_wait_until_running(
    aws: AwsEmulator, temporal_dev_env: WorkflowEnvironment
) -> None:
    task_queue = f"ledger-{uuid.uuid4()}"
    rules = rules_from_settings(settings_for(aws, LimitsSettings())).model_copy(
        update={"task_queue": task_queue}
    )
    ledger = LosesLaunchNotes(temporal_dev_env.client, f"c-{uuid.uuid4().hex[:6]}", rules)
    wiring = Wiring(aws, admission=ledger)
    pod = pod_manifest({"orca.research/instance-type": "m5.large"})
    plan = await wiring.plan(pod)
    request = LaunchRequest(
        spec=plan.spec,
        candidate=plan.candidates[0],
        client_token=f"t-note-{uuid.uuid4().hex[:6]}",
        requested_at=NOW,
    )
    # Activities run in the pod's own workflow, whose ID is the ledger's name for the claim.
    in_pod_workflow = ActivityEnvironment()
    in_pod_workflow.info = dataclasses.replace(
        in_pod_workflow.info, workflow_id=pod_workflow_id(plan.spec.pod)
    )
    summary = functools.partial(
        temporal_dev_env.client.get_workflow_handle(ledger.workflow_id).query, BudgetLedger.summary
    )
    async with Worker(temporal_dev_env.client, task_queue=task_queue, workflows=[BudgetLedger]):
        launched = await in_pod_workflow.run(wiring.instances.launch_instance, request)
        assert launched.instance_id is not None
        before: LedgerSummary = await summary()
        assert (before.admitted, before.launched) == (1, 0)
        running = await in_pod_workflow.run(
            wiring.instances.wait_until_running,
            WaitForInstanceInput(instance_id=launched.instance_id, timeout=timedelta(minutes=1)),
        )
        assert running.status.state is InstanceState.RUNNING
        after: LedgerSummary = await summary()
        assert after.launched == 1
        assert [p.pod for p in after.pods if p.running] == [pod_workflow_id(plan.spec.pod)]
    await wiring.cluster.close()


def _ref(pod: dict[str, Any]) -> dict[str, str]:
    meta = pod["metadata"]
    return {"namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"]}


# -- Kubernetes -------------------------------------------------------------------------------
@pytest.fixture
def bound_pod(kube_core: client.CoreV1Api, kube_emulator: Any) -> PodRef:
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "orca-aws-node"},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }
    try:
        kube_core.create_node(node)  # type: ignore[arg-type]
    except client.ApiException as error:
        if error.status != 409:
            raise
    name = f"job-{uuid.uuid4().hex[:6]}"
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": "orca-aws-node", "containers": [{"name": "main", "image": "x"}]},
    }
    created = kube_core.create_namespaced_pod("default", body)  # type: ignore[arg-type]
    return PodRef(namespace="default", name=name, uid=created.metadata.uid)


async def test_status_reports_merge_conditions_and_events_tell_the_story(
    kube_core: client.CoreV1Api, bound_pod: PodRef, tmp_path: Path
) -> None:
    activities = PodStatusActivities(kube_core, "orca-aws-node")
    env = ActivityEnvironment()
    await env.run(
        activities.report_pod_status,
        PodStatusReport(
            pod=bound_pod,
            phase="Pending",
            reason="InsufficientCapacity",
            message="every candidate is out of capacity",
            conditions=(PodCondition(type="orca.research/InstanceLaunched", status="False"),),
        ),
    )
    await env.run(
        activities.report_pod_status,
        PodStatusReport(
            pod=bound_pod,
            host_ip="10.0.0.9",
            pod_ip="10.0.0.9",
            conditions=(PodCondition(type="Initialized", status="True"),),
        ),
    )
    pod = kube_core.read_namespaced_pod(bound_pod.name, "default")
    assert pod.status.phase == "Pending"
    assert pod.status.reason == "InsufficientCapacity"
    assert pod.status.pod_ip == "10.0.0.9"
    types = {c.type: c.status for c in pod.status.conditions}
    assert types["orca.research/InstanceLaunched"] == "False"
    assert types["Initialized"] == "True"  # merged by type, not replaced
    await env.run(
        activities.record_pod_event,
        PodEventReport(pod=bound_pod, type=EventType.WARNING, reason="LaunchFailed", message="m"),
    )
    events = kube_core.list_namespaced_event(
        "default", field_selector=f"involvedObject.name={bound_pod.name}"
    ).items
    assert [
        (e.reason, e.type, e.source.component) for e in events if e.reason == "LaunchFailed"
    ] == [("LaunchFailed", "Warning", "orca")]


async def test_an_event_carried_by_a_status_report_is_posted_even_when_the_write_is_refused(
    kube_core: client.CoreV1Api, bound_pod: PodRef
) -> None:
    """`pod-lifecycle-2`: one activity writes the status and posts its event; a write the API
    server refuses for good (422: no IP address) still posts the event, then fails."""
    activities = PodStatusActivities(kube_core, "orca-aws-node")
    env = ActivityEnvironment()

    def carrying(reason: str, **fields: Any) -> PodStatusReport:
        event = PodEventReport(pod=bound_pod, type=EventType.NORMAL, reason=reason, message="m")
        return PodStatusReport(pod=bound_pod, event=event, **fields)

    await env.run(activities.report_pod_status, carrying("InstanceRunning", pod_ip="10.0.0.9"))
    with pytest.raises(ApplicationError) as refused:
        await env.run(activities.report_pod_status, carrying("Refused", pod_ip="not-an-ip"))
    assert refused.value.non_retryable
    assert "must be a valid IP address" in str(refused.value)
    reasons = [
        e.reason
        for e in kube_core.list_namespaced_event(
            "default", field_selector=f"involvedObject.name={bound_pod.name}"
        ).items
    ]
    assert sorted(reasons) == ["InstanceRunning", "Refused"]
    assert kube_core.read_namespaced_pod(bound_pod.name, "default").status.pod_ip == "10.0.0.9"


async def test_restart_counts_are_read_from_the_pod_status_the_monitor_wrote(
    kube_core: client.CoreV1Api, bound_pod: PodRef
) -> None:
    activities = PodStatusActivities(kube_core, "orca-aws-node")
    env = ActivityEnvironment()
    assert await env.run(activities.read_restart_counts, bound_pod) == {}  # nothing written yet
    statuses = [
        {"name": name, "image": "busybox", "imageID": "", "ready": False, "restartCount": count}
        for name, count in (("trainer", 4), ("logger", 0))
    ]
    activities.patch_status(bound_pod, {"status": {"containerStatuses": statuses}})
    assert await env.run(activities.read_restart_counts, bound_pod) == {"trainer": 4, "logger": 0}
    kube_core.delete_namespaced_pod(bound_pod.name, "default", grace_period_seconds=0)
    assert await env.run(activities.read_restart_counts, bound_pod) == {}  # gone


async def test_a_repeated_series_event_is_one_event_counted(
    kube_core: client.CoreV1Api, bound_pod: PodRef
) -> None:
    """As the kubelet's recorder aggregates `BackOff`: one object, `count` and `lastTimestamp`
    moving, through the API a real server serves (create, get, patch)."""
    pods = PodApi(kube_core)
    report = PodEventReport(
        pod=bound_pod, type=EventType.WARNING, reason="BackOff", message="Back-off restarting"
    )
    first = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)
    for minutes in (0, 1, 5):
        body = event_body(report, "orca-aws-node", first + timedelta(minutes=minutes), series=True)
        assert pods.post_or_count_event("default", body)
    [event] = [
        e
        for e in kube_core.list_namespaced_event(
            "default", field_selector=f"involvedObject.name={bound_pod.name}"
        ).items
        if e.reason == "BackOff"
    ]
    assert event.count == 3
    assert event.first_timestamp == first
    assert event.last_timestamp == first + timedelta(minutes=5)
    assert event.type == "Warning"


async def test_release_deletes_the_bound_pod_and_ignores_a_newer_incarnation(
    kube_core: client.CoreV1Api, bound_pod: PodRef
) -> None:
    activities = PodStatusActivities(kube_core, "orca-aws-node")
    kube_core.delete_namespaced_pod(bound_pod.name, "default")  # graceful: object stays
    assert kube_core.read_namespaced_pod(bound_pod.name, "default").metadata.deletion_timestamp
    await ActivityEnvironment().run(activities.delete_pod_object, DeletePodInput(pod=bound_pod))
    with pytest.raises(client.ApiException) as missing:
        kube_core.read_namespaced_pod(bound_pod.name, "default")
    assert missing.value.status == 404
    # Releasing again, or a status write to a pod that is gone, is not an error.
    await ActivityEnvironment().run(activities.delete_pod_object, DeletePodInput(pod=bound_pod))
    assert not activities.patch_status(bound_pod, {"status": {"phase": "Failed"}})


async def test_events_about_a_pod_with_the_longest_name_are_accepted(
    kube_core: client.CoreV1Api,
) -> None:
    """Kubernetes admits 253-character pod names; the Event name ORCA derives must still be a
    valid object name, or every event about the pod is refused (422)."""
    name = f"{'long-' * 49}{uuid.uuid4().hex[:8]}"  # 253 characters
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "main", "image": "x"}]},
    }
    created = kube_core.create_namespaced_pod("default", body)  # type: ignore[arg-type]
    pod = PodRef(namespace="default", name=name, uid=created.metadata.uid)
    activities = PodStatusActivities(kube_core, "orca-aws-node")
    await ActivityEnvironment().run(
        activities.record_pod_event,
        PodEventReport(pod=pod, type=EventType.NORMAL, reason="Scheduled", message="long"),
    )
    events = kube_core.list_namespaced_event(
        "default", field_selector=f"involvedObject.name={name}"
    ).items
    assert [e.reason for e in events] == ["Scheduled"]
    assert len(events[0].metadata.name) <= 253
