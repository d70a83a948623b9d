"""Persistent volumes on `orca dev`, driven as a user drives them (docs/volumes.md).

The whole chain runs as real processes: the Kubernetes emulator's scheduler (VolumeBinding),
binder and StatefulSet controller; ORCA's watcher as the external provisioner of the
`orca-ebs` StorageClass; the pod workflow attaching, mounting (the emulated runner links each
mount path of a container's sandbox to its volume's host directory) and detaching; the AWS
emulator's EBS volumes with zones and attachment states. Content is written and read with the
real kubectl's exec, so what survives is what a container would see.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from orca.ebs_volumes import CLAIM_UID_TAG
from orca_devstack.examples import burst_pod
from tests.cli.test_commands import control_aws
from tests.fixtures.dev_stack import DevStack, eventually

pytestmark = [pytest.mark.slow, pytest.mark.kubectl]

KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"
if not Path(KUBECTL).is_file():
    pytest.skip("kubectl is not installed", allow_module_level=True)

STORAGE_CLASS = "orca-ebs"
NAMESPACE = "default"
RUNS = {"emulator.orca.research/run-seconds": "inf", "orca.research/instance-type": "m5.large"}


@pytest.fixture(scope="module")
def core(dev_stack: DevStack) -> client.CoreV1Api:
    return dev_stack.core()


@pytest.fixture(scope="module")
def ec2(dev_stack: DevStack) -> Any:
    return dev_stack.aws("ec2")


@pytest.fixture(scope="module", autouse=True)
def nothing_left(dev_stack: DevStack, core: client.CoreV1Api, ec2: Any) -> Any:
    """After the module: no claim, no PersistentVolume and no EBS volume ORCA made is left."""
    yield
    for pod in core.list_namespaced_pod(NAMESPACE).items:  # a failed test's
        core.delete_namespaced_pod(pod.metadata.name, NAMESPACE)
    for claim in core.list_namespaced_persistent_volume_claim(NAMESPACE).items:
        core.delete_namespaced_persistent_volume_claim(claim.metadata.name, NAMESPACE)
    eventually(
        lambda: not core.list_persistent_volume().items, "every PersistentVolume to be reclaimed"
    )
    eventually(lambda: not orca_volumes(ec2), "every EBS volume ORCA made to be deleted")


def orca_volumes(ec2: Any) -> list[dict[str, Any]]:
    response = ec2.describe_volumes(Filters=[{"Name": "tag-key", "Values": [CLAIM_UID_TAG]}])
    return [v for v in response["Volumes"] if v["State"] != "deleted"]


def kubectl(dev_stack: DevStack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KUBECTL, "--kubeconfig", dev_stack.endpoints["kubeconfig"], *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def exec_in(dev_stack: DevStack, pod: str, script: str) -> str:
    result = kubectl(dev_stack, "exec", pod, "--", "sh", "-c", script)
    assert result.returncode == 0, f"exec in {pod}: {result.stderr}"
    return result.stdout


def claim(name: str, size: str = "4Gi") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": STORAGE_CLASS,
            "resources": {"requests": {"storage": size}},
        },
    }


def pod_with_claim(
    name: str, claim_name: str, *, restart_policy: str = "Never", **annotations: str
) -> dict[str, Any]:
    manifest = burst_pod(name, {**RUNS, **annotations}, restart_policy=restart_policy)
    manifest["spec"]["volumes"] = [
        {"name": "data", "persistentVolumeClaim": {"claimName": claim_name}}
    ]
    manifest["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    return manifest


def phase(core: client.CoreV1Api, name: str) -> str | None:
    try:
        return str(core.read_namespaced_pod(name, NAMESPACE).status.phase)
    except client.ApiException as error:
        if error.status == 404:
            return None
        raise


def bound_volume(core: client.CoreV1Api, claim_name: str) -> tuple[str, str]:
    """The claim's PersistentVolume and the EBS volume it names, once Bound."""

    def bound() -> tuple[str, str] | None:
        found = core.read_namespaced_persistent_volume_claim(claim_name, NAMESPACE)
        if found.status.phase != "Bound":
            return None
        pv = core.read_persistent_volume(found.spec.volume_name)
        return found.spec.volume_name, pv.spec.csi.volume_handle

    return eventually(bound, f"claim {claim_name} to be Bound", within=120)


def instance_of(ec2: Any, pod_uid: str, *, state: str = "running") -> dict[str, Any]:
    response = ec2.describe_instances(
        Filters=[
            {"Name": "tag:orca.research/pod-uid", "Values": [pod_uid]},
            {"Name": "instance-state-name", "Values": [state]},
        ]
    )
    instances = [i for r in response["Reservations"] for i in r["Instances"]]
    assert len(instances) == 1, instances
    return instances[0]


def delete_and_wait(core: client.CoreV1Api, name: str) -> None:
    core.delete_namespaced_pod(name, NAMESPACE)
    eventually(lambda: phase(core, name) is None, f"{name} to be released", within=120)


def test_a_new_pod_with_the_same_claim_reads_what_the_last_one_wrote(
    dev_stack: DevStack, core: client.CoreV1Api, ec2: Any
) -> None:
    suffix = uuid.uuid4().hex[:6]
    claim_name, first, second = f"ckpt-{suffix}", f"writer-{suffix}", f"reader-{suffix}"
    core.create_namespaced_persistent_volume_claim(NAMESPACE, claim(claim_name))
    first_uid = core.create_namespaced_pod(
        NAMESPACE, pod_with_claim(first, claim_name)
    ).metadata.uid
    eventually(lambda: phase(core, first) == "Running", f"{first} to run", within=120)
    pv_name, volume_id = bound_volume(core, claim_name)
    instance = instance_of(ec2, first_uid)
    volume = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]
    assert volume["AvailabilityZone"] == instance["Placement"]["AvailabilityZone"]
    assert volume["Size"] == 4
    assert volume["Attachments"][0]["InstanceId"] == instance["InstanceId"]
    exec_in(dev_stack, first, "echo step-1200 > data/checkpoint")
    delete_and_wait(core, first)
    # Detached before the instance went: available again, content kept.
    eventually(
        lambda: ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["State"] == "available",
        f"{volume_id} to be detached",
    )

    second_uid = core.create_namespaced_pod(
        NAMESPACE, pod_with_claim(second, claim_name)
    ).metadata.uid
    eventually(lambda: phase(core, second) == "Running", f"{second} to run", within=120)
    assert bound_volume(core, claim_name) == (pv_name, volume_id)
    instance_2 = instance_of(ec2, second_uid)
    assert instance_2["InstanceId"] != instance["InstanceId"]
    assert instance_2["Placement"]["AvailabilityZone"] == volume["AvailabilityZone"]
    assert exec_in(dev_stack, second, "cat data/checkpoint").strip() == "step-1200"
    delete_and_wait(core, second)

    # Delete reclaim policy: the claim's deletion removes the PersistentVolume and the volume.
    core.delete_namespaced_persistent_volume_claim(claim_name, NAMESPACE)
    eventually(
        lambda: pv_name not in {p.metadata.name for p in core.list_persistent_volume().items},
        f"{pv_name} to be reclaimed",
    )
    eventually(
        lambda: volume_id not in {v["VolumeId"] for v in orca_volumes(ec2)},
        f"{volume_id} to be deleted",
    )


def test_a_statefulset_pod_gets_its_own_volume_back(
    dev_stack: DevStack, core: client.CoreV1Api
) -> None:
    name = f"trainer-{uuid.uuid4().hex[:5]}"
    template = burst_pod(name, RUNS, restart_policy="Always")
    del template["apiVersion"], template["kind"]
    template["metadata"] = {
        "labels": {"app": name},
        "annotations": template["metadata"]["annotations"],
    }
    template["spec"]["containers"][0]["volumeMounts"] = [{"name": "ckpt", "mountPath": "/ckpt"}]
    apps = client.AppsV1Api(core.api_client)
    apps.create_namespaced_stateful_set(
        NAMESPACE,
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": name},
            "spec": {
                "replicas": 2,
                "serviceName": name,
                "podManagementPolicy": "Parallel",
                "selector": {"matchLabels": {"app": name}},
                "template": template,
                "volumeClaimTemplates": [
                    {
                        "metadata": {"name": "ckpt"},
                        "spec": claim("unused")["spec"]
                        | {"resources": {"requests": {"storage": "2Gi"}}},
                    }
                ],
            },
        },
    )
    pods = [f"{name}-0", f"{name}-1"]
    for pod in pods:
        eventually(lambda pod=pod: phase(core, pod) == "Running", f"{pod} to run", within=150)
    _, volume_0 = bound_volume(core, f"ckpt-{name}-0")
    _, volume_1 = bound_volume(core, f"ckpt-{name}-1")
    assert volume_0 != volume_1
    exec_in(dev_stack, pods[0], "echo ordinal-0 > ckpt/who")
    old_uid = core.read_namespaced_pod(pods[0], NAMESPACE).metadata.uid
    core.delete_namespaced_pod(pods[0], NAMESPACE)

    def recreated() -> bool:
        try:
            pod = core.read_namespaced_pod(pods[0], NAMESPACE)
        except client.ApiException:
            return False
        return pod.metadata.uid != old_uid and pod.status.phase == "Running"

    eventually(recreated, f"{pods[0]} to be re-created and run", within=150)
    assert bound_volume(core, f"ckpt-{name}-0")[1] == volume_0
    assert exec_in(dev_stack, pods[0], "cat ckpt/who").strip() == "ordinal-0"
    apps.delete_namespaced_stateful_set(name, NAMESPACE)
    for pod in pods:
        eventually(lambda pod=pod: phase(core, pod) is None, f"{pod} to go", within=120)


def test_a_spot_interruption_brings_the_same_pod_back_with_its_volume(
    dev_stack: DevStack, core: client.CoreV1Api, ec2: Any
) -> None:
    suffix = uuid.uuid4().hex[:6]
    claim_name, name = f"spot-ckpt-{suffix}", f"spot-{suffix}"
    core.create_namespaced_persistent_volume_claim(NAMESPACE, claim(claim_name))
    uid = core.create_namespaced_pod(
        NAMESPACE,
        pod_with_claim(
            name, claim_name, restart_policy="OnFailure", **{"orca.research/launch-type": "spot"}
        ),
    ).metadata.uid
    eventually(lambda: phase(core, name) == "Running", f"{name} to run", within=120)
    _, volume_id = bound_volume(core, claim_name)
    exec_in(dev_stack, name, "echo before-the-notice > data/state")
    first = instance_of(ec2, uid)
    control_aws(dev_stack, "interrupt", {"instance_id": first["InstanceId"], "notice_seconds": 5})

    def back_running() -> client.V1Pod | None:
        pod = core.read_namespaced_pod(name, NAMESPACE)
        statuses = pod.status.container_statuses or []
        if pod.status.phase == "Running" and statuses and statuses[0].restart_count >= 1:
            return pod if statuses[0].state.running is not None else None
        return None

    pod = eventually(back_running, f"{name} to run again on a new instance", within=180)
    assert pod.metadata.uid == uid, "the same pod object"
    status = pod.status.container_statuses[0]
    assert status.restart_count == 1
    assert status.last_state.terminated.reason == "SpotInterruption"
    second = instance_of(ec2, uid)
    assert second["InstanceId"] != first["InstanceId"]
    assert second["Placement"]["AvailabilityZone"] == first["Placement"]["AvailabilityZone"]
    attachments = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["Attachments"]
    assert [a["InstanceId"] for a in attachments] == [second["InstanceId"]]
    assert exec_in(dev_stack, name, "cat data/state").strip() == "before-the-notice"
    delete_and_wait(core, name)
    core.delete_namespaced_persistent_volume_claim(claim_name, NAMESPACE)


def test_a_volume_in_a_zone_without_capacity_waits_with_a_clear_reason(
    dev_stack: DevStack, core: client.CoreV1Api, ec2: Any
) -> None:
    suffix = uuid.uuid4().hex[:6]
    claim_name, first, second = f"zone-{suffix}", f"zone-a-{suffix}", f"zone-b-{suffix}"
    core.create_namespaced_persistent_volume_claim(NAMESPACE, claim(claim_name))
    core.create_namespaced_pod(NAMESPACE, pod_with_claim(first, claim_name))
    eventually(lambda: phase(core, first) == "Running", f"{first} to run", within=120)
    _, volume_id = bound_volume(core, claim_name)
    zone = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["AvailabilityZone"]
    delete_and_wait(core, first)
    control_aws(dev_stack, "capacity", {"instance_type": "m5.large", "zone": zone, "count": 0})
    try:
        core.create_namespaced_pod(NAMESPACE, pod_with_claim(second, claim_name))

        def waiting_message() -> str | None:
            status = core.read_namespaced_pod(second, NAMESPACE).status
            return str(status.message) if status.reason == "InsufficientCapacity" else None

        try:
            message = eventually(waiting_message, f"{second} to wait for capacity", within=120)
        except AssertionError as error:
            status = core.read_namespaced_pod(second, NAMESPACE).status
            raise AssertionError(f"{error}; the pod's status: {status}") from None
        assert volume_id in message, message
        assert zone in message, message
        assert phase(core, second) == "Pending"
    finally:
        control_aws(
            dev_stack, "capacity", {"instance_type": "m5.large", "zone": zone, "count": 100}
        )
    # Nothing was launched for it; deleting the waiting pod releases it.
    assert not [
        r
        for r in ec2.describe_instances(
            Filters=[{"Name": "tag:orca.research/pod-name", "Values": [second]}]
        )["Reservations"]
    ]
    delete_and_wait(core, second)
