"""ClaimProvisioning and VolumeReclaim on the time-skipping test server, their activities
replaced by name with scripted fakes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from orca.activities.volume_models import (
    PROVISIONING_FAILED_REASON,
    PROVISIONING_REFUSED,
    ClaimEvent,
    ClaimPreparation,
    ClaimRef,
    CreatedVolume,
    CreatePersistentVolumeInput,
    CreateVolumeInput,
    ProvisioningOutcome,
    ReclaimInput,
    ReclaimOutcome,
    ZoneChoice,
)
from orca.volume_requests import VolumeRequest
from orca.workflows.claim_provisioning import ClaimProvisioning, VolumeReclaim

CLAIM = ClaimRef(namespace="ml", name="data", uid="u-1")
REQUEST = VolumeRequest(size_gib=10, volume_type="gp3")


@dataclass
class FakeVolumes:
    preparation: ClaimPreparation = field(
        default_factory=lambda: ClaimPreparation(
            request=REQUEST, access_modes=("ReadWriteOnce",), storage_class="orca-ebs"
        )
    )
    zone: ZoneChoice = field(default_factory=lambda: ZoneChoice(zone="us-west-2b"))
    created: CreatedVolume = field(default_factory=lambda: CreatedVolume(volume_id="vol-0abc1234"))
    in_use_attempts: int = 0
    volume_exists: bool = True
    calls: list[str] = field(default_factory=list)
    events: list[ClaimEvent] = field(default_factory=list)
    volume_inputs: list[CreateVolumeInput] = field(default_factory=list)
    pv_inputs: list[CreatePersistentVolumeInput] = field(default_factory=list)

    @activity.defn(name="prepare_claim")
    async def prepare_claim(self, ref: ClaimRef) -> ClaimPreparation:
        self.calls.append("prepare_claim")
        return self.preparation

    @activity.defn(name="choose_volume_zone")
    async def choose_volume_zone(self, ref: ClaimRef) -> ZoneChoice:
        self.calls.append("choose_volume_zone")
        return self.zone

    @activity.defn(name="record_claim_event")
    async def record_claim_event(self, event: ClaimEvent) -> None:
        self.events.append(event)

    @activity.defn(name="create_volume")
    async def create_volume(self, input: CreateVolumeInput) -> CreatedVolume:
        self.calls.append("create_volume")
        self.volume_inputs.append(input)
        return self.created

    @activity.defn(name="wait_volume_available")
    async def wait_volume_available(self, volume_id: str) -> None:
        self.calls.append("wait_volume_available")

    @activity.defn(name="create_persistent_volume")
    async def create_persistent_volume(self, input: CreatePersistentVolumeInput) -> str:
        self.calls.append("create_persistent_volume")
        self.pv_inputs.append(input)
        return f"pvc-{input.claim.uid}"

    @activity.defn(name="wait_volume_detached")
    async def wait_volume_detached(self, volume_id: str) -> None:
        self.calls.append("wait_volume_detached")

    @activity.defn(name="delete_volume")
    async def delete_volume(self, volume_id: str) -> bool:
        self.calls.append("delete_volume")
        if self.in_use_attempts > 0:
            self.in_use_attempts -= 1
            raise ApplicationError(f"volume {volume_id} is still in use")
        return self.volume_exists

    @activity.defn(name="delete_persistent_volume")
    async def delete_persistent_volume(self, input: ReclaimInput) -> ReclaimOutcome:
        self.calls.append("delete_persistent_volume")
        return ReclaimOutcome(volume_deleted=True, persistent_volume_deleted=True)

    def activities(self) -> list[object]:
        return [
            self.prepare_claim,
            self.choose_volume_zone,
            self.record_claim_event,
            self.create_volume,
            self.wait_volume_available,
            self.create_persistent_volume,
            self.wait_volume_detached,
            self.delete_volume,
            self.delete_persistent_volume,
        ]


async def provision(env: WorkflowEnvironment, fake: FakeVolumes) -> ProvisioningOutcome:
    queue = f"claims-{uuid.uuid4()}"
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[ClaimProvisioning, VolumeReclaim],
        activities=fake.activities(),
    ):
        return await env.client.execute_workflow(
            ClaimProvisioning.run, CLAIM, id=f"claim-{uuid.uuid4()}", task_queue=queue
        )


async def test_a_claim_gets_a_volume_in_the_consumers_zone_and_its_persistent_volume(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake = FakeVolumes()
    outcome = await provision(time_skipping_env, fake)
    assert fake.calls == [
        "prepare_claim",
        "choose_volume_zone",
        "create_volume",
        "wait_volume_available",
        "create_persistent_volume",
    ]
    assert fake.volume_inputs[0].zone == "us-west-2b"
    assert fake.pv_inputs[0].volume_id == "vol-0abc1234"
    assert outcome.persistent_volume == "pvc-u-1"
    assert [e.reason for e in fake.events] == ["ProvisioningSucceeded"]


async def test_a_bound_claim_is_left_alone(time_skipping_env: WorkflowEnvironment) -> None:
    fake = FakeVolumes(preparation=ClaimPreparation(done="the claim is bound to pvc-u-1"))
    outcome = await provision(time_skipping_env, fake)
    assert fake.calls == ["prepare_claim"]
    assert outcome.skipped == "the claim is bound to pvc-u-1"


@pytest.mark.parametrize(
    "fake",
    [
        FakeVolumes(preparation=ClaimPreparation(refusal="parameters.type: 'standard' is not")),
        FakeVolumes(zone=ZoneChoice(refusal="no pod in namespace ml mounts claim data")),
        FakeVolumes(created=CreatedVolume(refusal="EBS refused the volume: InvalidKMSKey.Id")),
    ],
    ids=["class parameter", "no consumer", "EBS refusal"],
)
async def test_a_refusal_is_a_warning_event_and_a_failed_workflow(
    time_skipping_env: WorkflowEnvironment, fake: FakeVolumes
) -> None:
    with pytest.raises(WorkflowFailureError) as failed:
        await provision(time_skipping_env, fake)
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == PROVISIONING_REFUSED
    assert [e.reason for e in fake.events] == [PROVISIONING_FAILED_REASON]
    assert fake.events[0].type == "Warning"
    assert fake.events[0].message == cause.message
    assert "create_persistent_volume" not in fake.calls


async def test_reclaim_waits_for_detach_retries_in_use_then_deletes_both(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake = FakeVolumes(in_use_attempts=2)
    queue = f"reclaim-{uuid.uuid4()}"
    async with Worker(
        time_skipping_env.client,
        task_queue=queue,
        workflows=[VolumeReclaim],
        activities=fake.activities(),
    ):
        outcome = await time_skipping_env.client.execute_workflow(
            VolumeReclaim.run,
            ReclaimInput(persistent_volume="pvc-u-1", volume_id="vol-0abc1234"),
            id=f"reclaim-{uuid.uuid4()}",
            task_queue=queue,
        )
    assert fake.calls == [
        "wait_volume_detached",
        "delete_volume",
        "delete_volume",
        "delete_volume",
        "delete_persistent_volume",
    ]
    assert outcome.volume_deleted
    assert outcome.persistent_volume_deleted
