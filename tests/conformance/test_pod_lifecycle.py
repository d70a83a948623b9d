"""Binding, graceful deletion (the kubelet's part played by the test), eviction and finalizers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client

from tests.conformance.manifests import node_manifest, pod_manifest, unique
from tests.fixtures.kube import KubeBackend


@pytest.fixture
def node_name(kube_backend: KubeBackend) -> Iterator[str]:
    name = unique("node")
    kube_backend.core.create_node(node_manifest(name))
    yield name
    kube_backend.core.delete_node(name)


def bind(core: client.CoreV1Api, namespace: str, pod: str, node: str) -> None:
    core.create_namespaced_pod_binding(
        pod,
        namespace,
        {"metadata": {"name": pod}, "target": {"apiVersion": "v1", "kind": "Node", "name": node}},
        _preload_content=False,
    )


def test_binding_sets_node_name_and_pod_scheduled(
    kube_backend: KubeBackend, kube_namespace: str, node_name: str
) -> None:
    core = kube_backend.core
    core.create_namespaced_pod(kube_namespace, pod_manifest("bound"))
    bind(core, kube_namespace, "bound", node_name)
    pod = core.read_namespaced_pod("bound", kube_namespace)
    assert pod.spec.node_name == node_name
    assert {c.type: c.status for c in pod.status.conditions}["PodScheduled"] == "True"
    with pytest.raises(client.ApiException) as twice:
        bind(core, kube_namespace, "bound", node_name)
    assert twice.value.status == 409


def test_graceful_deletion_of_a_bound_pod(
    kube_backend: KubeBackend, kube_namespace: str, node_name: str
) -> None:
    core = kube_backend.core
    core.create_namespaced_pod(kube_namespace, pod_manifest("graceful"))
    bind(core, kube_namespace, "graceful", node_name)
    before = core.read_namespaced_pod("graceful", kube_namespace)
    core.delete_namespaced_pod("graceful", kube_namespace, grace_period_seconds=20)
    terminating = core.read_namespaced_pod("graceful", kube_namespace)
    assert terminating.metadata.deletion_timestamp is not None
    assert terminating.metadata.deletion_grace_period_seconds == 20
    assert int(terminating.metadata.resource_version) > int(before.metadata.resource_version)
    # Deleting again with the default (longer) grace period changes nothing.
    core.delete_namespaced_pod("graceful", kube_namespace)
    assert (
        core.read_namespaced_pod("graceful", kube_namespace).metadata.deletion_grace_period_seconds
        == 20
    )
    # The kubelet's final delete.
    core.delete_namespaced_pod("graceful", kube_namespace, grace_period_seconds=0)
    with pytest.raises(client.ApiException) as gone:
        core.read_namespaced_pod("graceful", kube_namespace)
    assert gone.value.status == 404


def test_default_grace_period_is_the_pods(
    kube_backend: KubeBackend, kube_namespace: str, node_name: str
) -> None:
    core = kube_backend.core
    core.create_namespaced_pod(
        kube_namespace, pod_manifest("default-grace", terminationGracePeriodSeconds=7)
    )
    bind(core, kube_namespace, "default-grace", node_name)
    core.delete_namespaced_pod("default-grace", kube_namespace)
    pod = core.read_namespaced_pod("default-grace", kube_namespace)
    assert pod.metadata.deletion_grace_period_seconds == 7
    core.delete_namespaced_pod(
        "default-grace", kube_namespace, body=client.V1DeleteOptions(grace_period_seconds=0)
    )
    assert "default-grace" not in {
        p.metadata.name for p in core.list_namespaced_pod(kube_namespace).items
    }


def test_unbound_pod_is_deleted_at_once(kube_backend: KubeBackend, kube_namespace: str) -> None:
    core = kube_backend.core
    core.create_namespaced_pod(kube_namespace, pod_manifest("unbound"))
    deleted = core.delete_namespaced_pod("unbound", kube_namespace)
    assert deleted.metadata.name == "unbound"
    with pytest.raises(client.ApiException) as gone:
        core.read_namespaced_pod("unbound", kube_namespace)
    assert gone.value.status == 404


def test_eviction_deletes_gracefully(
    kube_backend: KubeBackend, kube_namespace: str, node_name: str
) -> None:
    core = kube_backend.core
    core.create_namespaced_pod(kube_namespace, pod_manifest("evicted"))
    bind(core, kube_namespace, "evicted", node_name)
    core.create_namespaced_pod_eviction(
        "evicted",
        kube_namespace,
        client.V1Eviction(metadata=client.V1ObjectMeta(name="evicted", namespace=kube_namespace)),
    )
    pod = core.read_namespaced_pod("evicted", kube_namespace)
    assert pod.metadata.deletion_timestamp is not None
    assert pod.metadata.deletion_grace_period_seconds == 30
    core.delete_namespaced_pod("evicted", kube_namespace, grace_period_seconds=0)


def test_finalizers_hold_deletion(kube_backend: KubeBackend, kube_namespace: str) -> None:
    core = kube_backend.core
    core.create_namespaced_config_map(
        kube_namespace, {"metadata": {"name": "held", "finalizers": ["orca.research/test"]}}
    )
    core.delete_namespaced_config_map("held", kube_namespace)
    held = core.read_namespaced_config_map("held", kube_namespace)
    assert held.metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map(
        "held", kube_namespace, [{"op": "remove", "path": "/metadata/finalizers"}]
    )
    with pytest.raises(client.ApiException) as gone:
        core.read_namespaced_config_map("held", kube_namespace)
    assert gone.value.status == 404


def test_delete_preconditions(kube_backend: KubeBackend, kube_namespace: str) -> None:
    core = kube_backend.core
    created = core.create_namespaced_config_map(kube_namespace, {"metadata": {"name": "pre"}})
    with pytest.raises(client.ApiException) as conflict:
        core.delete_namespaced_config_map(
            "pre",
            kube_namespace,
            body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid="other")),
        )
    assert conflict.value.status == 409
    core.delete_namespaced_config_map(
        "pre",
        kube_namespace,
        body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=created.metadata.uid)),
    )
