"""CRUD, metadata, Status bodies, optimistic concurrency, selectors, via the official client."""

from __future__ import annotations

import json

import pytest
from kubernetes import client

from tests.conformance.manifests import node_manifest, pod_manifest, unique
from tests.fixtures.kube import KubeBackend


def _auth(api: client.ApiClient) -> dict[str, str]:
    token = api.configuration.api_key.get("authorization")
    return {"Authorization": token} if token else {}


def status_of(error: client.ApiException) -> dict:
    return json.loads(error.body)


def test_create_fills_metadata_and_pod_defaults(
    kube_backend: KubeBackend, kube_namespace: str
) -> None:
    core = kube_backend.core
    pod = core.create_namespaced_pod(kube_namespace, pod_manifest("defaults"))
    assert pod.metadata.uid
    assert pod.metadata.creation_timestamp is not None
    assert int(pod.metadata.resource_version) > 0
    assert pod.metadata.namespace == kube_namespace
    assert pod.status.phase == "Pending"
    assert pod.status.qos_class == "BestEffort"
    assert pod.spec.restart_policy == "Always"
    assert pod.spec.termination_grace_period_seconds == 30
    assert pod.spec.dns_policy == "ClusterFirst"
    container = pod.spec.containers[0]
    assert container.termination_message_path == "/dev/termination-log"
    assert container.termination_message_policy == "File"
    assert container.image_pull_policy == "IfNotPresent"
    fetched = core.read_namespaced_pod("defaults", kube_namespace)
    assert fetched.metadata.uid == pod.metadata.uid
    assert fetched.metadata.resource_version == pod.metadata.resource_version


def test_resource_version_is_one_increasing_counter(
    kube_backend: KubeBackend, kube_namespace: str
) -> None:
    core = kube_backend.core
    first = core.create_namespaced_config_map(
        kube_namespace, {"metadata": {"name": "a"}, "data": {"k": "1"}}
    )
    second = core.create_namespaced_secret(
        kube_namespace, {"metadata": {"name": "b"}, "stringData": {"k": "v"}}
    )
    updated = core.patch_namespaced_config_map("a", kube_namespace, {"data": {"k": "2"}})
    versions = [int(o.metadata.resource_version) for o in (first, second, updated)]
    assert versions == sorted(versions)
    assert len(set(versions)) == 3
    listed = core.list_namespaced_config_map(kube_namespace)
    assert int(listed.metadata.resource_version) >= versions[-1]


def test_generate_name(kube_backend: KubeBackend, kube_namespace: str) -> None:
    core = kube_backend.core
    manifest = pod_manifest("")
    manifest["metadata"] = {"generateName": "burst-"}
    names = {core.create_namespaced_pod(kube_namespace, manifest).metadata.name for _ in range(3)}
    assert len(names) == 3
    assert all(name.startswith("burst-") and len(name) == len("burst-") + 5 for name in names)


def test_status_bodies(kube_backend: KubeBackend, kube_namespace: str) -> None:
    core = kube_backend.core
    with pytest.raises(client.ApiException) as missing:
        core.read_namespaced_pod("nope", kube_namespace)
    body = status_of(missing.value)
    assert (missing.value.status, body["kind"], body["reason"], body["code"]) == (
        404,
        "Status",
        "NotFound",
        404,
    )
    assert body["details"] == {"name": "nope", "kind": "pods"}
    assert body["message"] == 'pods "nope" not found'

    core.create_namespaced_pod(kube_namespace, pod_manifest("twice"))
    with pytest.raises(client.ApiException) as duplicate:
        core.create_namespaced_pod(kube_namespace, pod_manifest("twice"))
    assert duplicate.value.status == 409
    assert status_of(duplicate.value)["reason"] == "AlreadyExists"

    invalid = pod_manifest("no-containers")
    invalid["spec"]["containers"] = []
    with pytest.raises(client.ApiException) as rejected:
        core.create_namespaced_pod(kube_namespace, invalid)
    body = status_of(rejected.value)
    assert (rejected.value.status, body["reason"]) == (422, "Invalid")
    assert any(cause["field"] == "spec.containers" for cause in body["details"]["causes"])

    nameless = pod_manifest("x")
    nameless["metadata"] = {}
    with pytest.raises(client.ApiException) as unnamed:
        core.create_namespaced_pod(kube_namespace, nameless)
    assert unnamed.value.status == 422

    with pytest.raises(client.ApiException) as no_namespace:
        core.create_namespaced_pod(unique("absent"), pod_manifest("x"))
    assert no_namespace.value.status == 404
    assert status_of(no_namespace.value)["details"]["kind"] == "namespaces"


def test_stale_resource_version_conflicts(kube_backend: KubeBackend, kube_namespace: str) -> None:
    core = kube_backend.core
    created = core.create_namespaced_config_map(
        kube_namespace, {"metadata": {"name": "cm"}, "data": {"v": "1"}}
    )
    stale = created.metadata.resource_version
    created.data = {"v": "2"}
    replaced = core.replace_namespaced_config_map("cm", kube_namespace, created)
    assert replaced.data == {"v": "2"}
    assert int(replaced.metadata.resource_version) > int(stale)

    created.data = {"v": "3"}
    created.metadata.resource_version = stale
    with pytest.raises(client.ApiException) as put_conflict:
        core.replace_namespaced_config_map("cm", kube_namespace, created)
    assert put_conflict.value.status == 409
    assert status_of(put_conflict.value)["reason"] == "Conflict"

    with pytest.raises(client.ApiException) as patch_conflict:
        core.patch_namespaced_config_map(
            "cm", kube_namespace, {"metadata": {"resourceVersion": stale}, "data": {"v": "4"}}
        )
    assert patch_conflict.value.status == 409
    assert core.read_namespaced_config_map("cm", kube_namespace).data == {"v": "2"}


def test_patch_flavours_on_pods(kube_backend: KubeBackend, kube_namespace: str) -> None:
    core = kube_backend.core
    core.create_namespaced_pod(kube_namespace, pod_manifest("patched", labels={"a": "1"}))
    merged = core.patch_namespaced_pod(
        "patched", kube_namespace, {"metadata": {"labels": {"b": "2"}}}
    )
    assert merged.metadata.labels == {"a": "1", "b": "2"}
    api = core.api_client
    # strategic merge by container name changes one image and keeps the rest of the container
    strategic = core.patch_namespaced_pod(
        "patched",
        kube_namespace,
        {"spec": {"containers": [{"name": "main", "image": "busybox:1.37"}]}},
    )
    assert strategic.spec.containers[0].image == "busybox:1.37"
    assert strategic.spec.containers[0].command == ["sleep", "3600"]
    # JSON patch
    json_patched = core.patch_namespaced_pod(
        "patched", kube_namespace, [{"op": "remove", "path": "/metadata/labels/a"}]
    )
    assert json_patched.metadata.labels == {"b": "2"}
    # explicit merge patch content type
    raw = api.rest_client.request(
        "PATCH",
        f"{api.configuration.host}/api/v1/namespaces/{kube_namespace}/pods/patched",
        headers={
            "Content-Type": "application/merge-patch+json",
            "Accept": "application/json",
            **_auth(api),
        },
        body={"metadata": {"annotations": {"x": "y"}}},
    )
    raw.read()
    assert json.loads(raw.data)["metadata"]["annotations"] == {"x": "y"}
    # a spec change beyond the mutable fields is refused
    with pytest.raises(client.ApiException) as forbidden:
        core.patch_namespaced_pod("patched", kube_namespace, {"spec": {"restartPolicy": "Never"}})
    assert forbidden.value.status == 422


def test_status_subresource_changes_only_status(
    kube_backend: KubeBackend, kube_namespace: str
) -> None:
    core = kube_backend.core
    core.create_namespaced_pod(kube_namespace, pod_manifest("status"))
    patched = core.patch_namespaced_pod_status(
        "status",
        kube_namespace,
        {
            "metadata": {"labels": {"ignored": "yes"}},
            "status": {
                "conditions": [{"type": "DisruptionTarget", "status": "True", "reason": "Spot"}]
            },
        },
    )
    conditions = {c.type: c for c in patched.status.conditions}
    assert conditions["DisruptionTarget"].reason == "Spot"
    assert not (patched.metadata.labels or {}).get("ignored")
    # The main resource ignores status.
    replaced = core.patch_namespaced_pod("status", kube_namespace, {"status": {"phase": "Running"}})
    assert replaced.status.phase == "Pending"
    running = core.patch_namespaced_pod_status(
        "status", kube_namespace, {"status": {"phase": "Running"}}
    )
    assert running.status.phase == "Running"


def test_label_and_field_selectors(kube_backend: KubeBackend, kube_namespace: str) -> None:
    core = kube_backend.core
    core.create_namespaced_pod(
        kube_namespace, pod_manifest("web-1", labels={"app": "web", "tier": "a"})
    )
    core.create_namespaced_pod(
        kube_namespace, pod_manifest("web-2", labels={"app": "web", "tier": "b"})
    )
    core.create_namespaced_pod(kube_namespace, pod_manifest("db-1", labels={"app": "db"}))

    def names(**kwargs: str) -> list[str]:
        return sorted(
            p.metadata.name for p in core.list_namespaced_pod(kube_namespace, **kwargs).items
        )

    assert names(label_selector="app=web") == ["web-1", "web-2"]
    assert names(label_selector="app==web,tier!=a") == ["web-2"]
    assert names(label_selector="tier in (a,b)") == ["web-1", "web-2"]
    assert names(label_selector="tier notin (a)") == ["db-1", "web-2"]
    assert names(label_selector="tier") == ["web-1", "web-2"]
    assert names(label_selector="!tier") == ["db-1"]
    assert names(field_selector="metadata.name=db-1") == ["db-1"]
    assert names(field_selector="metadata.name!=db-1") == ["web-1", "web-2"]
    assert names(field_selector="status.phase=Pending,spec.nodeName=") == ["db-1", "web-1", "web-2"]
    assert names(
        field_selector=f"metadata.namespace=={kube_namespace}", label_selector="app=db"
    ) == ["db-1"]
    everywhere = core.list_pod_for_all_namespaces(
        field_selector=f"metadata.namespace={kube_namespace}"
    )
    assert sorted(p.metadata.name for p in everywhere.items) == ["db-1", "web-1", "web-2"]
    with pytest.raises(client.ApiException) as unsupported:
        core.list_namespaced_pod(kube_namespace, field_selector="spec.containers=x")
    assert unsupported.value.status == 400


def test_pagination(kube_backend: KubeBackend, kube_namespace: str) -> None:
    core = kube_backend.core
    for index in range(5):
        core.create_namespaced_config_map(kube_namespace, {"metadata": {"name": f"cm-{index}"}})
    first = core.list_namespaced_config_map(kube_namespace, limit=2)
    seen = [c.metadata.name for c in first.items if c.metadata.name.startswith("cm-")]
    token = first.metadata._continue
    while token:
        page = core.list_namespaced_config_map(kube_namespace, limit=2, _continue=token)
        seen += [c.metadata.name for c in page.items if c.metadata.name.startswith("cm-")]
        token = page.metadata._continue
    assert seen == [f"cm-{index}" for index in range(5)]


def test_cluster_scoped_nodes_and_namespaces(kube_backend: KubeBackend) -> None:
    core = kube_backend.core
    namespaces = {n.metadata.name for n in core.list_namespace().items}
    assert {"default", "kube-system", "kube-node-lease", "kube-public"} <= namespaces
    name = unique("node")
    try:
        created = core.create_node(node_manifest(name, labels={"orca.research/virtual": "true"}))
        assert created.metadata.namespace is None
        status = core.patch_node_status(
            name,
            {
                "status": {
                    "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                    "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                    "capacity": {"cpu": "4", "pods": "10"},
                    "allocatable": {"cpu": "4", "pods": "10"},
                }
            },
        )
        assert {c.type: c.status for c in status.status.conditions}["Ready"] == "True"
        listed = core.list_node(label_selector="orca.research/virtual=true")
        assert [n.metadata.name for n in listed.items] == [name]
    finally:
        core.delete_node(name)
    with pytest.raises(client.ApiException) as gone:
        core.read_node(name)
    assert gone.value.status == 404


def test_leases(kube_backend: KubeBackend) -> None:
    coordination = kube_backend.coordination
    name = unique("lease")
    lease = coordination.create_namespaced_lease(
        "kube-node-lease",
        {"metadata": {"name": name}, "spec": {"holderIdentity": name, "leaseDurationSeconds": 40}},
    )
    assert lease.spec.lease_duration_seconds == 40
    lease.spec.renew_time = "2030-01-01T00:00:00.000000Z"
    renewed = coordination.replace_namespaced_lease(name, "kube-node-lease", lease)
    assert renewed.spec.renew_time.year == 2030
    assert int(renewed.metadata.resource_version) > int(lease.metadata.resource_version)
    lease.metadata.resource_version = lease.metadata.resource_version  # the stale one
    with pytest.raises(client.ApiException) as conflict:
        coordination.replace_namespaced_lease(name, "kube-node-lease", lease)
    assert conflict.value.status == 409
    coordination.delete_namespaced_lease(name, "kube-node-lease")
    assert name not in {
        lease.metadata.name for lease in coordination.list_namespaced_lease("kube-node-lease").items
    }


def test_events_with_involved_object_selector(
    kube_backend: KubeBackend, kube_namespace: str
) -> None:
    core = kube_backend.core
    pod = core.create_namespaced_pod(kube_namespace, pod_manifest("evented"))
    for reason in ("Launching", "Launched"):
        core.create_namespaced_event(
            kube_namespace,
            {
                "metadata": {"generateName": "evented."},
                "involvedObject": {
                    "kind": "Pod",
                    "name": "evented",
                    "namespace": kube_namespace,
                    "uid": pod.metadata.uid,
                    "apiVersion": "v1",
                },
                "reason": reason,
                "message": f"{reason} an instance",
                "type": "Normal",
                "source": {"component": "orca"},
            },
        )
    selected = core.list_namespaced_event(
        kube_namespace,
        field_selector=f"involvedObject.name=evented,involvedObject.namespace={kube_namespace},"
        f"involvedObject.uid={pod.metadata.uid}",
    )
    assert sorted(e.reason for e in selected.items) == ["Launched", "Launching"]
    none = core.list_namespaced_event(kube_namespace, field_selector="involvedObject.name=other")
    assert none.items == []


def test_delete_namespace_removes_content(kube_backend: KubeBackend) -> None:
    core = kube_backend.core
    name = unique("gone")
    core.create_namespace({"metadata": {"name": name}})
    core.create_namespaced_config_map(name, {"metadata": {"name": "cm"}})
    core.delete_namespace(name)
    if kube_backend.is_emulator:  # a real server takes a while through phase Terminating
        with pytest.raises(client.ApiException) as missing:
            core.read_namespace(name)
        assert missing.value.status == 404
    with pytest.raises(client.ApiException) as protected:
        core.delete_namespace("default")
    assert protected.value.status == 403


def _raw(api: client.ApiClient, method: str, path: str, body: object, content_type: str) -> dict:
    """A request with a body the client's own models would refuse (JSON numbers as quantities),
    as kubectl and other clients may send it."""
    response = api.rest_client.request(
        method,
        f"{api.configuration.host}{path}",
        headers={"Content-Type": content_type, "Accept": "application/json", **_auth(api)},
        body=body,
    )
    response.read()
    result: dict = json.loads(response.data)
    return result


def test_quantities_come_back_canonical(kube_backend: KubeBackend, kube_namespace: str) -> None:
    """An API server stores quantities as canonical strings, whatever JSON type they were sent
    as: a client that sent `nvidia.com/gpu: 1` reads back "1" (the official client's models
    refuse a number there)."""
    api = kube_backend.api_client
    manifest = pod_manifest("quantities")
    manifest["spec"]["containers"][0]["resources"] = {
        "requests": {"cpu": 0.5, "memory": "1024Mi", "nvidia.com/gpu": 1},
        "limits": {"cpu": "1000m", "nvidia.com/gpu": 1},
    }
    path = f"/api/v1/namespaces/{kube_namespace}/pods"
    created = _raw(api, "POST", path, manifest, "application/json")
    expected = {
        "requests": {"cpu": "500m", "memory": "1Gi", "nvidia.com/gpu": "1"},
        "limits": {"cpu": "1", "nvidia.com/gpu": "1"},
    }
    assert created["spec"]["containers"][0]["resources"] == expected
    pod = kube_backend.core.read_namespaced_pod("quantities", kube_namespace)
    assert pod.spec.containers[0].resources.requests == expected["requests"]

    node = node_manifest(unique("quantities"))
    name = node["metadata"]["name"]
    kube_backend.core.create_node(node)
    try:
        patched = _raw(
            api,
            "PATCH",
            f"/api/v1/nodes/{name}/status",
            {"status": {"capacity": {"cpu": 4, "memory": "16384Mi", "pods": 110}}},
            "application/merge-patch+json",
        )
        assert patched["status"]["capacity"] == {"cpu": "4", "memory": "16Gi", "pods": "110"}
        assert kube_backend.core.read_node(name).status.capacity["memory"] == "16Gi"
    finally:
        kube_backend.core.delete_node(name)


def test_secret_string_data_is_merged_into_data(
    kube_backend: KubeBackend, kube_namespace: str
) -> None:
    """`stringData` is write-only: the API server merges it into `data` (base64, stringData
    winning) and never returns it."""
    core = kube_backend.core
    core.create_namespaced_secret(
        kube_namespace,
        {
            "metadata": {"name": "mixed"},
            "data": {"kept": "a2VwdA==", "both": "b2xk"},
            "stringData": {"both": "new", "plain": "text"},
        },
    )
    raw = json.loads(
        core.read_namespaced_secret("mixed", kube_namespace, _preload_content=False).data
    )
    assert "stringData" not in raw
    assert raw["data"] == {"kept": "a2VwdA==", "both": "bmV3", "plain": "dGV4dA=="}
    core.patch_namespaced_secret("mixed", kube_namespace, {"stringData": {"plain": "changed"}})
    raw = json.loads(
        core.read_namespaced_secret("mixed", kube_namespace, _preload_content=False).data
    )
    assert "stringData" not in raw
    assert raw["data"]["plain"] == "Y2hhbmdlZA=="
    with pytest.raises(client.ApiException) as invalid:
        core.create_namespaced_secret(
            kube_namespace, {"metadata": {"name": "bad"}, "data": {"k": "not base64!"}}
        )
    assert invalid.value.status == 400
