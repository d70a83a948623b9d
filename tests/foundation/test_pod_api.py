"""`PodApi` against the Kubernetes API emulator: one incarnation is addressed by its UID."""

from __future__ import annotations

import uuid

import pytest
from kubernetes import client
from temporalio.exceptions import ApplicationError

from orca.launch_spec import PodRef
from orca.pod_api import REJECTED, PodApi


def _create(core: client.CoreV1Api, name: str) -> PodRef:
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": "orca-aws-node", "containers": [{"name": "main", "image": "x"}]},
    }
    created = core.create_namespaced_pod("default", body)  # type: ignore[arg-type]
    return PodRef(namespace="default", name=name, uid=created.metadata.uid)


def _replace(core: client.CoreV1Api, pod: PodRef) -> PodRef:
    """Delete `pod` for good and create a newer incarnation under the same name."""
    core.delete_namespaced_pod(pod.name, "default", grace_period_seconds=0)
    return _create(core, pod.name)


@pytest.fixture
def pod(kube_core: client.CoreV1Api) -> PodRef:
    return _create(kube_core, f"p-{uuid.uuid4().hex[:8]}")


def test_read_returns_only_this_incarnation(kube_core: client.CoreV1Api, pod: PodRef) -> None:
    pods = PodApi(kube_core)
    current = pods.read(pod)
    assert current is not None
    assert current.metadata.uid == pod.uid
    newer = _replace(kube_core, pod)
    assert pods.read(pod) is None
    assert not pods.exists(pod)
    assert pods.exists(newer)
    kube_core.delete_namespaced_pod(newer.name, "default", grace_period_seconds=0)
    assert pods.read(newer) is None


def test_status_patches_reach_this_incarnation_only(
    kube_core: client.CoreV1Api, pod: PodRef
) -> None:
    pods = PodApi(kube_core)
    assert pods.patch_status(pod, {"status": {"phase": "Running", "reason": "Started"}})
    status = kube_core.read_namespaced_pod(pod.name, "default").status
    assert (status.phase, status.reason) == ("Running", "Started")
    newer = _replace(kube_core, pod)
    assert not pods.patch_status(pod, {"status": {"phase": "Failed"}})
    assert kube_core.read_namespaced_pod(newer.name, "default").status.phase != "Failed"


def test_delete_is_immediate_and_spares_a_newer_pod(
    kube_core: client.CoreV1Api, pod: PodRef
) -> None:
    pods = PodApi(kube_core)
    kube_core.delete_namespaced_pod(pod.name, "default")  # graceful: the object stays
    assert kube_core.read_namespaced_pod(pod.name, "default").metadata.deletion_timestamp
    assert pods.delete(pod)
    with pytest.raises(client.ApiException) as missing:
        kube_core.read_namespaced_pod(pod.name, "default")
    assert missing.value.status == 404
    assert not pods.delete(pod)  # already gone: done
    newer = _create(kube_core, pod.name)
    assert not pods.delete(pod)  # the UID precondition fails (409): the newer pod stays
    assert kube_core.read_namespaced_pod(newer.name, "default").metadata.uid == newer.uid


def _event(pod: PodRef, name: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": pod.namespace},
        "involvedObject": {"kind": "Pod", "namespace": pod.namespace, "name": pod.name},
        "reason": "Tested",
        "message": "m",
        "type": "Normal",
    }


def test_events_are_posted_once_and_refusals_are_final(
    kube_core: client.CoreV1Api, pod: PodRef
) -> None:
    pods = PodApi(kube_core)
    name = f"{pod.name}.event"
    assert pods.post_event("default", _event(pod, name))
    assert not pods.post_event("default", _event(pod, name))  # a retried create: 409
    events = kube_core.list_namespaced_event(
        "default", field_selector=f"involvedObject.name={pod.name}"
    ).items
    assert [e.metadata.name for e in events] == [name]
    with pytest.raises(ApplicationError) as refused:
        pods.post_event("default", _event(pod, "Not A Valid Name"))
    assert refused.value.type == REJECTED
    assert refused.value.non_retryable
