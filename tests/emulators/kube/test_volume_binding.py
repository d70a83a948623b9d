"""The control plane's volume flow over real HTTP: admission (protection finalizers, default
class), the PersistentVolume binder, the protection controllers, kube-scheduler's VolumeBinding.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client

from orca_devstack.emulators.kube.volume_binder import (
    best_volume,
    claim_releasable,
    volume_phase,
)
from tests.emulators.kube.test_storage_kinds import claim, storage_class, volume
from tests.fixtures.kube import eventually

PROVISIONER = "orca.research/ebs"
SELECTED_NODE = "volume.kubernetes.io/selected-node"


def pod_with_claim(name: str, claim_name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "busybox:1.36",
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }
            ],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim_name}}],
        },
    }


def scheduled_condition(core: client.CoreV1Api, name: str) -> client.V1PodCondition | None:
    pod = core.read_namespaced_pod(name, "default")
    return next((c for c in pod.status.conditions or [] if c.type == "PodScheduled"), None)


def unschedulable_message(core: client.CoreV1Api, name: str) -> str:
    def check() -> str | None:
        condition = scheduled_condition(core, name)
        if condition is not None and condition.status == "False":
            return str(condition.message)
        return None

    return eventually(check)


def claim_phase(core: client.CoreV1Api, name: str) -> str:
    return str(core.read_namespaced_persistent_volume_claim(name, "default").status.phase)


def gone(read: Any, *args: str) -> bool:
    try:
        read(*args)
    except client.ApiException as error:
        return error.status == 404
    return False


# -- pure decisions ----------------------------------------------------------------------------


def _obj(name: str, **rest: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"}, **rest}


def test_best_volume_is_the_smallest_that_fits() -> None:
    wanted = _obj("data", spec=claim(storageClassName="")["spec"])
    small = _obj("small", spec={**volume()["spec"], "capacity": {"storage": "512Mi"}})
    medium = _obj("medium", spec={**volume()["spec"], "capacity": {"storage": "2Gi"}})
    large = _obj("large", spec={**volume()["spec"], "capacity": {"storage": "20Gi"}})
    other_class = _obj("fast", spec={**volume()["spec"], "storageClassName": "fast"})
    rwx = _obj("rwx", spec={**volume()["spec"], "capacity": {"storage": "1Gi"}})
    rwx["spec"]["accessModes"] = ["ReadOnlyMany"]
    available = {"status": {"phase": "Available"}}
    volumes = [{**v, **available} for v in (small, medium, large, other_class, rwx)]
    assert best_volume(wanted, volumes) == "medium"


def test_volume_phase_follows_its_claim() -> None:
    bound_claim = _obj("data", spec={"volumeName": "pv1"})
    ref = {"namespace": "default", "name": "data", "uid": "uid-data"}
    pv = _obj("pv1", spec={"claimRef": ref}, status={"phase": "Bound"})
    assert volume_phase(pv, {("default", "data"): bound_claim}) == "Bound"
    assert volume_phase(pv, {}) == "Released"
    assert volume_phase(_obj("pv2", spec={}), {}) == "Available"
    pre_bound = _obj("pv3", spec={"claimRef": {"namespace": "default", "name": "later"}})
    assert volume_phase(pre_bound, {}) == "Available"


def test_claim_releasable_only_without_pods() -> None:
    deleting = _obj(
        "data",
        spec={},
    )
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    deleting["metadata"]["finalizers"] = ["kubernetes.io/pvc-protection"]
    user = {**pod_with_claim("p", "data"), "status": {"phase": "Running"}}
    user["metadata"]["namespace"] = "default"
    assert not claim_releasable(deleting, [user])
    assert claim_releasable(deleting, [{**user, "status": {"phase": "Succeeded"}}])


# -- over HTTP ---------------------------------------------------------------------------------


def test_admission_finalizers_and_default_class(kube_api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(kube_api_client)
    storage = client.StorageV1Api(kube_api_client)
    storage.create_storage_class(
        storage_class(
            "orca-ebs",
            metadata={
                "name": "orca-ebs",
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
        )
    )
    created = core.create_namespaced_persistent_volume_claim("default", claim())
    assert created.metadata.finalizers == ["kubernetes.io/pvc-protection"]
    assert created.spec.storage_class_name == "orca-ebs"
    explicit = core.create_namespaced_persistent_volume_claim(
        "default", claim("none", storageClassName="")
    )
    assert explicit.spec.storage_class_name == ""
    assert core.create_persistent_volume(volume()).metadata.finalizers == [
        "kubernetes.io/pv-protection"
    ]


def test_static_binding(kube_core: client.CoreV1Api) -> None:
    kube_core.create_persistent_volume(volume("pv1"))
    eventually(lambda: kube_core.read_persistent_volume("pv1").status.phase == "Available")
    kube_core.create_namespaced_persistent_volume_claim("default", claim(storageClassName=""))
    eventually(lambda: claim_phase(kube_core, "data") == "Bound")
    bound = kube_core.read_namespaced_persistent_volume_claim("data", "default")
    assert bound.spec.volume_name == "pv1"
    assert bound.status.capacity == {"storage": "10Gi"}
    assert bound.status.access_modes == ["ReadWriteOnce"]
    pv = eventually(
        lambda: (v := kube_core.read_persistent_volume("pv1")).status.phase == "Bound" and v
    )
    assert (pv.spec.claim_ref.name, pv.spec.claim_ref.uid) == ("data", bound.metadata.uid)


def test_deleting_a_claim_releases_its_volume(kube_core: client.CoreV1Api) -> None:
    kube_core.create_persistent_volume(volume("pv1"))
    kube_core.create_namespaced_persistent_volume_claim("default", claim(storageClassName=""))
    eventually(lambda: claim_phase(kube_core, "data") == "Bound")
    kube_core.create_namespaced_pod("default", pod_with_claim("user", "data"))
    kube_core.delete_namespaced_persistent_volume_claim("data", "default")
    # A pod still uses it: the claim stays, being deleted, with its finalizer.
    deleting = kube_core.read_namespaced_persistent_volume_claim("data", "default")
    assert deleting.metadata.deletion_timestamp is not None
    assert deleting.metadata.finalizers == ["kubernetes.io/pvc-protection"]
    # A bound volume being deleted stays too.
    kube_core.delete_persistent_volume("pv1")
    assert kube_core.read_persistent_volume("pv1").metadata.deletion_timestamp is not None
    kube_core.delete_namespaced_pod("user", "default")
    eventually(lambda: gone(kube_core.read_namespaced_persistent_volume_claim, "data", "default"))
    eventually(lambda: gone(kube_core.read_persistent_volume, "pv1"))


def test_released_volume_keeps_its_claim_ref(kube_core: client.CoreV1Api) -> None:
    kube_core.create_persistent_volume(volume("pv1"))
    kube_core.create_namespaced_persistent_volume_claim("default", claim(storageClassName=""))
    eventually(lambda: claim_phase(kube_core, "data") == "Bound")
    kube_core.delete_namespaced_persistent_volume_claim("data", "default")
    pv = eventually(
        lambda: (v := kube_core.read_persistent_volume("pv1")).status.phase == "Released" and v
    )
    assert pv.spec.claim_ref.name == "data"


def test_missing_claim_is_unschedulable(kube_core: client.CoreV1Api, node: str) -> None:
    kube_core.create_namespaced_pod("default", pod_with_claim("p", "nope"))
    assert unschedulable_message(kube_core, "p") == (
        '0/1 nodes are available: persistentvolumeclaim "nope" not found.'
    )


def test_unbound_immediate_claim_is_unschedulable(
    kube_api_client: client.ApiClient, node: str
) -> None:
    core = client.CoreV1Api(kube_api_client)
    client.StorageV1Api(kube_api_client).create_storage_class(
        storage_class("slow", provisioner="example.com/nothing")
    )
    core.create_namespaced_persistent_volume_claim("default", claim(storageClassName="slow"))
    core.create_namespaced_pod("default", pod_with_claim("p", "data"))
    assert unschedulable_message(core, "p") == (
        "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims."
    )
    annotations = core.read_namespaced_persistent_volume_claim("data", "default").metadata
    assert annotations.annotations["volume.kubernetes.io/storage-provisioner"] == (
        "example.com/nothing"
    )


def test_volume_node_affinity_conflict(kube_core: client.CoreV1Api, node: str) -> None:
    affinity = {
        "required": {
            "nodeSelectorTerms": [
                {
                    "matchExpressions": [
                        {
                            "key": "topology.kubernetes.io/zone",
                            "operator": "In",
                            "values": ["us-east-1a"],
                        }
                    ]
                }
            ]
        }
    }
    kube_core.create_persistent_volume(volume("pv1", nodeAffinity=affinity))
    kube_core.create_namespaced_persistent_volume_claim("default", claim(storageClassName=""))
    eventually(lambda: claim_phase(kube_core, "data") == "Bound")
    kube_core.create_namespaced_pod("default", pod_with_claim("p", "data"))
    assert unschedulable_message(kube_core, "p") == (
        "0/1 nodes are available: 1 node(s) had volume node affinity conflict."
    )


def test_wait_for_first_consumer_provisioning(kube_api_client: client.ApiClient, node: str) -> None:
    core = client.CoreV1Api(kube_api_client)
    client.StorageV1Api(kube_api_client).create_storage_class(
        storage_class("orca-ebs", volumeBindingMode="WaitForFirstConsumer")
    )
    core.create_namespaced_persistent_volume_claim("default", claim(storageClassName="orca-ebs"))
    pending = core.read_namespaced_persistent_volume_claim("data", "default")
    assert pending.status.phase == "Pending"
    core.create_namespaced_pod("default", pod_with_claim("p", "data"))

    def selected() -> client.V1PersistentVolumeClaim | None:
        pvc = core.read_namespaced_persistent_volume_claim("data", "default")
        return pvc if SELECTED_NODE in (pvc.metadata.annotations or {}) else None

    annotated = eventually(selected)
    assert annotated.metadata.annotations[SELECTED_NODE] == "orca"
    # The scheduler waits for the claim: the pod is not bound yet (nobody provisions yet).
    assert core.read_namespaced_pod("p", "default").spec.node_name is None
    eventually(
        lambda: (
            (
                core.read_namespaced_persistent_volume_claim("data", "default").metadata
            ).annotations.get("volume.kubernetes.io/storage-provisioner")
            == PROVISIONER
        )
    )
    assert core.read_namespaced_pod("p", "default").spec.node_name is None


def test_provisioned_claim_binds_then_the_pod(
    kube_api_client: client.ApiClient, node: str, provisioner: list[str]
) -> None:
    core = client.CoreV1Api(kube_api_client)
    client.StorageV1Api(kube_api_client).create_storage_class(
        storage_class("orca-ebs", volumeBindingMode="WaitForFirstConsumer")
    )
    core.create_namespaced_persistent_volume_claim("default", claim(storageClassName="orca-ebs"))
    core.create_namespaced_pod("default", pod_with_claim("p", "data"))
    pod = eventually(lambda: (p := core.read_namespaced_pod("p", "default")).spec.node_name and p)
    assert pod.spec.node_name == "orca"
    bound = core.read_namespaced_persistent_volume_claim("data", "default")
    assert bound.status.phase == "Bound"
    # The volume was made for the claim before any pod was bound.
    assert provisioner == [f"pvc-{bound.metadata.uid}"]
    assert bound.spec.volume_name == provisioner[0]


def test_claim_being_deleted_is_unschedulable(kube_core: client.CoreV1Api, node: str) -> None:
    kube_core.create_persistent_volume(volume("pv1"))
    kube_core.create_namespaced_persistent_volume_claim("default", claim(storageClassName=""))
    eventually(lambda: claim_phase(kube_core, "data") == "Bound")
    kube_core.create_namespaced_pod("default", pod_with_claim("first", "data"))
    eventually(lambda: kube_core.read_namespaced_pod("first", "default").spec.node_name)
    kube_core.delete_namespaced_persistent_volume_claim("data", "default")
    kube_core.create_namespaced_pod("default", pod_with_claim("second", "data"))
    assert unschedulable_message(kube_core, "second") == (
        '0/1 nodes are available: persistentvolumeclaim "data" is being deleted.'
    )


def test_delayed_claim_without_volume_or_provisioner(
    kube_api_client: client.ApiClient, node: str
) -> None:
    core = client.CoreV1Api(kube_api_client)
    client.StorageV1Api(kube_api_client).create_storage_class(
        storage_class(
            "local",
            provisioner="kubernetes.io/no-provisioner",
            volumeBindingMode="WaitForFirstConsumer",
        )
    )
    core.create_namespaced_persistent_volume_claim("default", claim(storageClassName="local"))
    core.create_namespaced_pod("default", pod_with_claim("p", "data"))
    assert unschedulable_message(core, "p") == (
        "0/1 nodes are available: 1 node(s) didn't find available persistent volumes to bind."
    )
    # A matching local volume appears: the scheduler binds it to the claim, then the pod.
    core.create_persistent_volume(volume("local-1", storageClassName="local"))
    pod = eventually(lambda: (p := core.read_namespaced_pod("p", "default")).spec.node_name and p)
    assert pod.spec.node_name == "orca"
    assert core.read_namespaced_persistent_volume_claim("data", "default").spec.volume_name == (
        "local-1"
    )


def test_released_delete_volume_waits_for_its_provisioner(kube_core: client.CoreV1Api) -> None:
    provisioned = volume("pvc-1", persistentVolumeReclaimPolicy="Delete")
    provisioned["metadata"]["annotations"] = {"pv.kubernetes.io/provisioned-by": PROVISIONER}
    kube_core.create_persistent_volume(provisioned)
    kube_core.create_persistent_volume(
        volume("static", persistentVolumeReclaimPolicy="Delete", capacity={"storage": "20Gi"})
    )
    kube_core.create_namespaced_persistent_volume_claim("default", claim(storageClassName=""))
    kube_core.create_namespaced_persistent_volume_claim(
        "default",
        claim("big", storageClassName="", resources={"requests": {"storage": "15Gi"}}),
    )
    eventually(lambda: claim_phase(kube_core, "data") == "Bound")
    eventually(lambda: claim_phase(kube_core, "big") == "Bound")
    assert kube_core.read_namespaced_persistent_volume_claim("big", "default").spec.volume_name == (
        "static"
    )
    kube_core.delete_namespaced_persistent_volume_claim("data", "default")
    kube_core.delete_namespaced_persistent_volume_claim("big", "default")
    eventually(lambda: kube_core.read_persistent_volume("pvc-1").status.phase == "Released")
    failed = eventually(
        lambda: (v := kube_core.read_persistent_volume("static")).status.phase == "Failed" and v
    )
    assert failed.status.message == (
        'error getting deleter volume plugin for volume "static": no deletable volume plugin '
        "matched"
    )


def test_binder_events(kube_api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(kube_api_client)
    client.StorageV1Api(kube_api_client).create_storage_class(
        storage_class("orca-ebs", volumeBindingMode="WaitForFirstConsumer")
    )
    core.create_namespaced_persistent_volume_claim("default", claim(storageClassName="orca-ebs"))

    def reasons() -> list[str] | None:
        events = core.list_namespaced_event(
            "default", field_selector="involvedObject.name=data"
        ).items
        return [e.reason for e in events] or None

    assert eventually(reasons) == ["WaitForFirstConsumer"]
