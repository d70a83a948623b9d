"""The StatefulSet controller: ordinal pods, their claims, ordering, re-creation, scale down,
cascading deletion; plain tests of its decisions, then over HTTP."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from orca_devstack.emulators.kube.stateful_sets import plan, pod_for
from tests.emulators.kube.test_storage_kinds import stateful_set, storage_class
from tests.fixtures.kube import eventually


def _set(**spec: Any) -> dict[str, Any]:
    body = stateful_set(**spec)
    body["metadata"].update(namespace="default", uid="set-uid", generation=1)
    body["spec"].setdefault("podManagementPolicy", "OrderedReady")
    return body


def _running(pod: dict[str, Any]) -> dict[str, Any]:
    return {
        **pod,
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    }


def test_pod_for_an_ordinal() -> None:
    pod = pod_for(_set(), 1)
    assert pod["metadata"]["name"] == "db-1"
    labels = pod["metadata"]["labels"]
    assert labels["app"] == "db"
    assert labels["statefulset.kubernetes.io/pod-name"] == "db-1"
    assert labels["apps.kubernetes.io/pod-index"] == "1"
    assert labels["controller-revision-hash"].startswith("db-")
    assert pod["metadata"]["ownerReferences"][0]["controller"] is True
    assert pod["spec"]["hostname"] == "db-1"
    assert pod["spec"]["subdomain"] == "db"
    assert pod["spec"]["volumes"] == [
        {"name": "data", "persistentVolumeClaim": {"claimName": "data-db-1"}}
    ]


def test_ordered_ready_creates_one_at_a_time() -> None:
    first = plan(_set(), [], {})
    assert [c["metadata"]["name"] for c, _ in first.create_claims] == ["data-db-0"]
    assert [p["metadata"]["name"] for p in first.create_pods] == ["db-0"]
    pending = {"metadata": {"name": "db-0"}, "status": {"phase": "Pending"}}
    assert plan(_set(), [pending], {}).create_pods == []
    ready = _running({"metadata": {"name": "db-0"}})
    assert [p["metadata"]["name"] for p in plan(_set(), [ready], {}).create_pods] == ["db-1"]
    parallel = plan(_set(podManagementPolicy="Parallel"), [], {})
    assert [p["metadata"]["name"] for p in parallel.create_pods] == ["db-0", "db-1"]


def test_scale_down_removes_the_highest_ordinal_first() -> None:
    pods = [_running({"metadata": {"name": f"db-{i}"}}) for i in range(3)]
    assert plan(_set(replicas=1), pods, {}).delete_pods == ["db-2"]
    parallel = plan(_set(replicas=1, podManagementPolicy="Parallel"), pods, {})
    assert parallel.delete_pods == ["db-2", "db-1"]


def test_failed_pod_is_deleted() -> None:
    failed = {"metadata": {"name": "db-0"}, "status": {"phase": "Failed"}}
    assert plan(_set(), [failed], {}).delete_pods == ["db-0"]


def make_ready(core: client.CoreV1Api, name: str) -> None:
    core.patch_namespaced_pod_status(
        name,
        "default",
        {
            "status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True"}],
            }
        },
    )


def read_pod(core: client.CoreV1Api, name: str) -> client.V1Pod | None:
    try:
        return core.read_namespaced_pod(name, "default")
    except client.ApiException as error:
        if error.status == 404:
            return None
        raise


def test_stateful_set_creates_claims_then_pods_in_order(
    kube_api_client: client.ApiClient,
) -> None:
    core = client.CoreV1Api(kube_api_client)
    apps = client.AppsV1Api(kube_api_client)
    apps.create_namespaced_stateful_set("default", stateful_set())
    pod0 = eventually(lambda: read_pod(core, "db-0"))
    claim0 = core.read_namespaced_persistent_volume_claim("data-db-0", "default")
    assert claim0.metadata.creation_timestamp <= pod0.metadata.creation_timestamp
    assert int(claim0.metadata.resource_version) < int(pod0.metadata.resource_version)
    assert claim0.metadata.labels == {"app": "db"}
    assert pod0.spec.volumes[0].persistent_volume_claim.claim_name == "data-db-0"
    assert pod0.metadata.owner_references[0].kind == "StatefulSet"
    # db-1 waits for db-0 to be Running and Ready.
    assert read_pod(core, "db-1") is None
    make_ready(core, "db-0")
    pod1 = eventually(lambda: read_pod(core, "db-1"))
    assert pod1.spec.volumes[0].persistent_volume_claim.claim_name == "data-db-1"
    make_ready(core, "db-1")
    status = eventually(
        lambda: (
            (s := apps.read_namespaced_stateful_set("db", "default").status).ready_replicas == 2
            and s
        )
    )
    assert (status.replicas, status.available_replicas, status.observed_generation) == (2, 2, 1)


def test_deleted_pod_comes_back_with_its_claim(kube_api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(kube_api_client)
    apps = client.AppsV1Api(kube_api_client)
    apps.create_namespaced_stateful_set("default", stateful_set(replicas=1))
    first = eventually(lambda: read_pod(core, "db-0"))
    core.delete_namespaced_pod("db-0", "default")
    again = eventually(
        lambda: (p := read_pod(core, "db-0")) and p.metadata.uid != first.metadata.uid and p
    )
    assert again.spec.volumes[0].persistent_volume_claim.claim_name == "data-db-0"
    claims = core.list_namespaced_persistent_volume_claim("default").items
    assert [c.metadata.name for c in claims] == ["data-db-0"]


def test_scale_down_and_delete(kube_api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(kube_api_client)
    apps = client.AppsV1Api(kube_api_client)
    apps.create_namespaced_stateful_set(
        "default", stateful_set(replicas=3, podManagementPolicy="Parallel")
    )
    eventually(lambda: len(core.list_namespaced_pod("default").items) == 3)
    apps.patch_namespaced_stateful_set_scale("db", "default", {"spec": {"replicas": 1}})
    eventually(
        lambda: [p.metadata.name for p in core.list_namespaced_pod("default").items] == ["db-0"]
    )
    # Claims are retained by default.
    claims = core.list_namespaced_persistent_volume_claim("default").items
    assert sorted(c.metadata.name for c in claims) == ["data-db-0", "data-db-1", "data-db-2"]
    apps.delete_namespaced_stateful_set("db", "default")
    eventually(lambda: core.list_namespaced_pod("default").items == [])
    assert len(core.list_namespaced_persistent_volume_claim("default").items) == 3


def test_claims_deleted_with_the_set_when_asked(kube_api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(kube_api_client)
    apps = client.AppsV1Api(kube_api_client)
    body = stateful_set(
        replicas=1,
        persistentVolumeClaimRetentionPolicy={"whenDeleted": "Delete", "whenScaled": "Retain"},
    )
    apps.create_namespaced_stateful_set("default", body)
    eventually(lambda: read_pod(core, "db-0"))
    apps.delete_namespaced_stateful_set("db", "default")
    eventually(lambda: core.list_namespaced_persistent_volume_claim("default").items == [])


def test_rolling_update_replaces_the_highest_outdated_ordinal() -> None:
    old = _set()
    pods = [
        _running({"metadata": {"name": f"db-{i}", "labels": p["metadata"]["labels"]}})
        for i, p in enumerate(pod_for(old, i) for i in range(2))
    ]
    assert plan(old, pods, {}).delete_pods == []
    new = _set()
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "busybox:1.37"
    rolled = plan(new, pods, {})
    assert rolled.delete_pods == ["db-1"]
    assert rolled.status["updatedReplicas"] == 0
    on_delete = _set(updateStrategy={"type": "OnDelete"})
    on_delete["spec"]["template"]["spec"]["containers"][0]["image"] = "busybox:1.37"
    assert plan(on_delete, pods, {}).delete_pods == []


def test_stateful_set_pod_gets_a_provisioned_volume(
    kube_api_client: client.ApiClient, node: str, provisioner: list[str]
) -> None:
    core = client.CoreV1Api(kube_api_client)
    client.StorageV1Api(kube_api_client).create_storage_class(
        storage_class("orca-ebs", volumeBindingMode="WaitForFirstConsumer")
    )
    body = stateful_set(replicas=1)
    body["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] = "orca-ebs"
    client.AppsV1Api(kube_api_client).create_namespaced_stateful_set("default", body)
    pod = eventually(lambda: (p := read_pod(core, "db-0")) and p.spec.node_name and p)
    assert pod.spec.node_name == node
    claim = core.read_namespaced_persistent_volume_claim("data-db-0", "default")
    assert (claim.status.phase, claim.spec.volume_name) == ("Bound", provisioner[0])
    # Deleted, pod-0 comes back to the same claim and volume.
    core.delete_namespaced_pod("db-0", "default", grace_period_seconds=0)
    again = eventually(
        lambda: (p := read_pod(core, "db-0")) and p.metadata.uid != pod.metadata.uid and p
    )
    assert again.spec.volumes[0].persistent_volume_claim.claim_name == "data-db-0"
    eventually(lambda: (p := read_pod(core, "db-0")) and p.spec.node_name == node)
    assert provisioner == [claim.spec.volume_name]
