"""The provisioner's activities and the watcher's reconcile against the AWS emulator (moto's EBS)
and the Kubernetes API emulator, over real HTTP."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from kubernetes import client
from temporalio.testing import ActivityEnvironment

from orca.activities.volume_models import (
    ClaimEvent,
    ClaimRef,
    CreatePersistentVolumeInput,
    CreateVolumeInput,
    ReclaimInput,
)
from orca.activities.volume_provisioning import VolumeProvisioning
from orca.ebs_volumes import CLAIM_UID_TAG
from orca.watcher.claim_provisioner import StartClaim, provisioning_decisions
from orca.watcher.kube_json import read_json, read_json_or_none
from orca_devstack.emulators.aws import AwsEmulator
from tests.activities.test_activities import Wiring
from tests.fixtures.kube import eventually

NODE = "orca-aws-node"


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


def create_class(api: client.ApiClient, name: str, **parameters: str) -> None:
    body = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": name},
        "provisioner": "orca.research/ebs",
        "volumeBindingMode": "WaitForFirstConsumer",
        "reclaimPolicy": "Delete",
        "parameters": parameters,
    }
    client.StorageV1Api(api).create_storage_class(body)  # type: ignore[arg-type]


def create_claim_and_pod(core: client.CoreV1Api, storage_class: str) -> ClaimRef:
    name = f"data-{uuid.uuid4().hex[:6]}"
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": name,
            "namespace": "default",
            "annotations": {"volume.kubernetes.io/selected-node": NODE},
        },
        "spec": {
            "storageClassName": storage_class,
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1500Mi"}},
        },
    }
    created = core.create_namespaced_persistent_volume_claim("default", claim)  # type: ignore[arg-type]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"user-{name}",
            "namespace": "default",
            "annotations": {"orca.research/instance-type": "m5.large"},
        },
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "busybox",
                    "resources": {"requests": {"cpu": "1", "memory": "1Gi"}},
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }
            ],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": name}}],
        },
    }
    core.create_namespaced_pod("default", pod)  # type: ignore[arg-type]
    return ClaimRef(namespace="default", name=name, uid=created.metadata.uid)


async def test_a_claim_becomes_a_volume_and_a_persistent_volume_then_is_reclaimed(
    aws: AwsEmulator, kube_api_client: client.ApiClient, kube_core: client.CoreV1Api
) -> None:
    wiring = Wiring(aws)
    volumes = VolumeProvisioning(
        wiring.aws, kube_api_client, wiring.planning, cluster_name="test", node_name=NODE
    )
    env = ActivityEnvironment()
    class_name = f"orca-ebs-{uuid.uuid4().hex[:6]}"
    create_class(kube_api_client, class_name, type="gp3", iops="3000")
    ref = create_claim_and_pod(kube_core, class_name)

    claims = read_json(kube_core.list_persistent_volume_claim_for_all_namespaces)["items"]
    assert StartClaim(ref) in provisioning_decisions(
        claims, [], {class_name: "orca.research/ebs"}, NODE
    )

    prep = await env.run(volumes.prepare_claim, ref)
    assert prep.refusal is None
    assert prep.request is not None
    assert prep.request.size_gib == 2
    zone = await env.run(volumes.choose_volume_zone, ref)
    assert zone.zone in aws.defaults.subnet_ids
    create = CreateVolumeInput(claim=ref, zone=zone.zone, request=prep.request)
    first = await env.run(volumes.create_volume, create)
    again = await env.run(volumes.create_volume, create)
    assert first.volume_id is not None
    await env.run(volumes.wait_volume_available, first.volume_id)
    described = wiring.aws.ec2.describe_volumes(VolumeIds=[first.volume_id])["Volumes"][0]
    assert described["AvailabilityZone"] == zone.zone
    assert described["Size"] == 2
    tags = {t["Key"]: t["Value"] for t in described.get("Tags", [])}
    assert tags[CLAIM_UID_TAG] == ref.uid
    assert tags["orca.research/cluster"] == "test"
    assert again.volume_id == first.volume_id

    pv_input = CreatePersistentVolumeInput(
        claim=ref,
        volume_id=first.volume_id,
        zone=zone.zone,
        request=prep.request,
        access_modes=prep.access_modes,
        storage_class=prep.storage_class,
        reclaim_policy=prep.reclaim_policy,
    )
    name = await env.run(volumes.create_persistent_volume, pv_input)
    assert await env.run(volumes.create_persistent_volume, pv_input) == name  # 409 is success
    pv: dict[str, Any] = read_json(kube_core.read_persistent_volume, name)
    assert pv["spec"]["csi"]["volumeHandle"] == first.volume_id
    assert pv["spec"]["claimRef"]["uid"] == ref.uid
    assert pv["metadata"]["labels"]["topology.kubernetes.io/zone"] == zone.zone
    await env.run(
        volumes.record_claim_event,
        ClaimEvent(claim=ref, type="Normal", reason="ProvisioningSucceeded", message="ok"),
    )

    # The claim and its consumer go: the binder releases the PersistentVolume.
    kube_core.delete_namespaced_pod(f"user-{ref.name}", "default", grace_period_seconds=0)
    kube_core.delete_namespaced_persistent_volume_claim(ref.name, "default")
    await env.run(volumes.wait_volume_detached, first.volume_id)
    assert await env.run(volumes.delete_volume, first.volume_id) is True
    assert await env.run(volumes.delete_volume, first.volume_id) is False
    outcome = await env.run(
        volumes.delete_persistent_volume, ReclaimInput(persistent_volume=name, volume_id=None)
    )
    assert outcome.persistent_volume_deleted
    eventually(lambda: read_json_or_none(kube_core.read_persistent_volume, name) is None)
    again_outcome = await env.run(
        volumes.delete_persistent_volume, ReclaimInput(persistent_volume=name, volume_id=None)
    )
    assert not again_outcome.persistent_volume_deleted


async def test_a_class_parameter_orca_cannot_honour_is_a_refusal_naming_it(
    aws: AwsEmulator, kube_api_client: client.ApiClient, kube_core: client.CoreV1Api
) -> None:
    wiring = Wiring(aws)
    volumes = VolumeProvisioning(
        wiring.aws, kube_api_client, wiring.planning, cluster_name="test", node_name=NODE
    )
    class_name = f"orca-ebs-{uuid.uuid4().hex[:6]}"
    create_class(kube_api_client, class_name, type="gp2", throughput="500")
    ref = create_claim_and_pod(kube_core, class_name)
    prep = await ActivityEnvironment().run(volumes.prepare_claim, ref)
    assert prep.refusal is not None
    assert "parameters.throughput" in prep.refusal
    assert "only gp3" in prep.refusal


async def test_the_watchers_reconcile_starts_claim_provisioning_which_writes_the_volume(
    aws: AwsEmulator,
    kube_api_client: client.ApiClient,
    kube_core: client.CoreV1Api,
    time_skipping_env: Any,
) -> None:
    from temporalio.worker import Worker

    from orca.activities.volume_models import claim_workflow_id
    from orca.watcher.claim_provisioner import ClaimProvisioner
    from orca.workflows.claim_provisioning import ClaimProvisioning, VolumeReclaim

    wiring = Wiring(aws)
    volumes = VolumeProvisioning(
        wiring.aws, kube_api_client, wiring.planning, cluster_name="test", node_name=NODE
    )
    class_name = f"orca-ebs-{uuid.uuid4().hex[:6]}"
    create_class(kube_api_client, class_name)
    ref = create_claim_and_pod(kube_core, class_name)
    queue = f"claims-{uuid.uuid4()}"
    provisioner = ClaimProvisioner(kube_api_client, time_skipping_env.client, queue, NODE)
    async with Worker(
        time_skipping_env.client,
        task_queue=queue,
        workflows=[ClaimProvisioning, VolumeReclaim],
        activities=[
            volumes.prepare_claim,
            volumes.choose_volume_zone,
            volumes.record_claim_event,
            volumes.create_volume,
            volumes.wait_volume_available,
            volumes.create_persistent_volume,
        ],
    ):
        assert await provisioner.reconcile() >= 1
        await provisioner.reconcile()  # a second listing reuses the same workflow
        handle = time_skipping_env.client.get_workflow_handle_for(
            ClaimProvisioning.run, claim_workflow_id(ref.uid)
        )
        outcome = await handle.result()
    assert outcome.persistent_volume == f"pvc-{ref.uid}"
    pv = read_json(kube_core.read_persistent_volume, outcome.persistent_volume)
    assert pv["spec"]["csi"]["volumeHandle"] == outcome.volume_id
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    bound = eventually(
        lambda: (
            read_json(kube_core.read_namespaced_persistent_volume_claim, ref.name, "default")
            .get("spec", {})
            .get("volumeName")
        )
    )
    assert bound == outcome.persistent_volume  # the controller-manager's binder completed it
    listed = wiring.aws.ec2.describe_volumes(
        Filters=[{"Name": f"tag:{CLAIM_UID_TAG}", "Values": [ref.uid]}]
    )["Volumes"]
    assert [v["VolumeId"] for v in listed] == [outcome.volume_id]
    wiring.aws.ec2.delete_volume(VolumeId=outcome.volume_id)


async def test_the_provisioner_watch_reacts_to_a_claim_created_after_it_started(
    kube_api_client: client.ApiClient, kube_core: client.CoreV1Api, time_skipping_env: Any
) -> None:
    import asyncio
    from datetime import timedelta

    from temporalio.service import RPCError

    from orca.activities.volume_models import claim_workflow_id
    from orca.watcher.claim_provisioner import ClaimProvisioner

    class_name = f"orca-ebs-{uuid.uuid4().hex[:6]}"
    create_class(kube_api_client, class_name)
    provisioner = ClaimProvisioner(
        kube_api_client, time_skipping_env.client, f"q-{uuid.uuid4()}", NODE
    )
    # A resync far away: only the watch can make it react in time.
    task = asyncio.create_task(provisioner.run(timedelta(hours=1)))
    try:
        await asyncio.sleep(0.5)
        ref = create_claim_and_pod(kube_core, class_name)
        handle = time_skipping_env.client.get_workflow_handle(claim_workflow_id(ref.uid))
        for _ in range(200):
            try:
                description = await handle.describe()
                break
            except RPCError:
                await asyncio.sleep(0.05)
        else:
            raise AssertionError("no ClaimProvisioning workflow was started")
        assert description.workflow_type == "ClaimProvisioning"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_the_sweep_lists_the_clusters_volumes_and_deletes_an_orphan(
    aws: AwsEmulator, kube_core: client.CoreV1Api
) -> None:
    from datetime import UTC, datetime, timedelta

    from orca.activities.orphan_decisions import orphan_volumes
    from orca.activities.orphan_models import ClusterListing
    from orca.activities.orphans import OrphanActivities
    from orca.activities.pod_parameters import PodParameters
    from orca.activities.pod_status import PodStatusActivities
    from orca.volume_requests import VolumeRequest, volume_tags

    wiring = Wiring(aws)
    orphans = OrphanActivities(
        wiring.aws,
        wiring.ec2,
        PodParameters(wiring.aws),
        wiring.cluster,
        kube_core,
        PodStatusActivities(kube_core, NODE),
        cluster_name="sweep-test",
        node_name=NODE,
    )
    uid = str(uuid.uuid4())
    claim = {"metadata": {"namespace": "default", "name": "gone", "uid": uid}}
    kwargs = VolumeRequest(size_gib=1, volume_type="gp3").create_volume_kwargs(
        "us-west-2a", uid, volume_tags(claim, cluster="sweep-test")
    )
    volume_id = wiring.aws.ec2.create_volume(**kwargs)["VolumeId"]
    wiring.aws.ec2.create_volume(  # another cluster's: never listed
        **VolumeRequest(size_gib=1, volume_type="gp3").create_volume_kwargs(
            "us-west-2a", str(uuid.uuid4()), volume_tags(claim, cluster="other")
        )
    )

    def created() -> bool:  # creating → available
        found = wiring.aws.ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"]
        return bool(found[0]["State"] == "available")

    eventually(created)
    listing = ClusterListing(
        volumes=orphans._volumes(), persistent_volumes=orphans._persistent_volumes()
    )
    assert [v.volume_id for v in listing.volumes] == [volume_id]
    assert listing.volumes[0].persistent_volume == f"pvc-{uid}"
    later = datetime.now(UTC) + timedelta(hours=1)
    (orphan,) = orphan_volumes(listing, later, timedelta(minutes=10))
    orphans._end(orphan)
    orphans._end(orphan)  # already gone: done
    assert orphans._volumes() == ()
