"""Pod events to workflows, against the Kubernetes emulator and the Temporal dev server."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from kubernetes import client as k8s
from prometheus_client import REGISTRY
from temporalio.client import WorkflowExecutionStatus

from orca import search_attributes
from orca.launch_spec import PodRef, pod_ref_from_pod
from orca.watcher.kube_json import read_json
from orca.workflow_ids import pod_workflow_id
from orca_devstack.emulators.kube.registry import PODS, DeleteOptions
from tests.watcher.conftest import (
    WatcherParts,
    create_pod,
    eventually,
    executions,
    pod_manifest,
    received,
    running,
    running_watcher,
)
from tests.watcher.recording_workflow import RecordingPodLifecycle


def restarts(reason: str) -> float:
    value = REGISTRY.get_sample_value("orca_watch_restarts_total", {"reason": reason})
    return value or 0.0


def pod_exists(core: k8s.CoreV1Api, name: str) -> bool:
    try:
        core.read_namespaced_pod(name, "default")
    except k8s.ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


async def test_pod_created_starts_its_workflow_once_despite_duplicates_and_relists(
    parts: WatcherParts,
) -> None:
    settings = parts.settings()
    node = settings.node.name
    async with running_watcher(settings, parts.temporal) as watcher:
        await eventually(watcher.watcher.ready)
        ref = create_pod(parts.core, "train-1", node)
        other = create_pod(parts.core, "elsewhere", "some-other-node")
        await eventually(lambda: running(parts.temporal, ref))
        for value in ("a", "b", "c"):  # MODIFIED events the watcher must not turn into starts
            parts.core.patch_namespaced_pod(
                "train-1", "default", {"metadata": {"labels": {"x": value}}}
            )
        assert watcher.watcher.watch is not None
        await watcher.watcher.watch.relist()  # a relist reports every pod again
        assert watcher.watcher.reconciler is not None
        await watcher.watcher.reconciler.converge()
        assert watcher.watcher.queues is not None
        await watcher.watcher.queues.idle()
        assert await executions(parts.temporal, ref) == [WorkflowExecutionStatus.RUNNING]
        assert await executions(parts.temporal, other) == []
        described = await parts.temporal.get_workflow_handle(pod_workflow_id(ref)).describe()
        assert described.task_queue == parts.task_queue
        # Visible by namespace, name and phase from the start (the stand-in upserts none).
        attributes = described.typed_search_attributes
        assert attributes.get(search_attributes.POD_NAMESPACE) == "default"
        assert attributes.get(search_attributes.POD_NAME) == "train-1"
        assert attributes.get(search_attributes.PHASE) == "Planning"


async def test_deletion_timestamp_signals_pod_deleted_and_removal_signals_pod_gone(
    parts: WatcherParts,
) -> None:
    settings = parts.settings()
    node = settings.node.name
    async with running_watcher(settings, parts.temporal) as watcher:
        await eventually(watcher.watcher.ready)
        ref = create_pod(parts.core, "infer-1", node)
        await eventually(lambda: running(parts.temporal, ref))
        parts.core.delete_namespaced_pod("infer-1", "default", grace_period_seconds=45)
        assert pod_exists(parts.core, "infer-1")  # bound pods wait for their kubelet: ORCA
        await eventually(lambda: received(parts.temporal, ref, "pod_deleted:45"))
        # The workflow releases the pod object when done; here the test plays that part.
        parts.core.delete_namespaced_pod("infer-1", "default", grace_period_seconds=0)
        await eventually(lambda: received(parts.temporal, ref, "pod_gone"))
        handle = parts.temporal.get_workflow_handle(pod_workflow_id(ref))
        assert await handle.result() == ["pod_deleted:45", "pod_gone"]


async def test_deleting_a_pod_whose_workflow_finished_removes_the_pod_object(
    parts: WatcherParts,
) -> None:
    settings = parts.settings()
    node = settings.node.name
    async with running_watcher(settings, parts.temporal) as watcher:
        await eventually(watcher.watcher.ready)
        ref = create_pod(parts.core, "done-1", node)
        await eventually(lambda: running(parts.temporal, ref))
        handle = parts.temporal.get_workflow_handle(pod_workflow_id(ref))
        await handle.signal(RecordingPodLifecycle.finish)
        await handle.result()
        parts.core.delete_namespaced_pod("done-1", "default")
        await eventually(lambda: not pod_exists(parts.core, "done-1"))
        # A new pod with the same name is a new incarnation with its own workflow.
        again = create_pod(parts.core, "done-1", node)
        await eventually(lambda: running(parts.temporal, again))
        assert again.uid != ref.uid


async def test_daemonset_pods_stay_pending_with_one_event_and_are_released_on_delete(
    parts: WatcherParts,
) -> None:
    settings = parts.settings()
    node = settings.node.name
    manifest = pod_manifest("aws-node-x7k2p", node)
    manifest["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "name": "aws-node",
            "uid": "5d1e4f0c-1c55-4d8e-9c63-1f0c9d2c7a10",
            "controller": True,
        }
    ]
    async with running_watcher(settings, parts.temporal) as watcher:
        await eventually(watcher.watcher.ready)
        created = read_json(parts.core.create_namespaced_pod, "default", manifest)
        ref = PodRef(namespace="default", name="aws-node-x7k2p", uid=created["metadata"]["uid"])

        def reasons() -> list[str]:
            events = parts.core.list_namespaced_event(
                "default", field_selector="involvedObject.name=aws-node-x7k2p"
            ).items
            return [e.reason for e in events if e.source and e.source.component == "orca"]

        await eventually(lambda: reasons() == ["DaemonSetPodNotRun"])
        assert watcher.watcher.reconciler is not None
        await watcher.watcher.reconciler.converge()  # a resync tells it again: still one event
        assert watcher.watcher.queues is not None
        await watcher.watcher.queues.idle()
        assert reasons() == ["DaemonSetPodNotRun"]
        assert await executions(parts.temporal, ref) == []
        assert parts.core.read_namespaced_pod("aws-node-x7k2p", "default").status.phase == "Pending"
        parts.core.delete_namespaced_pod("aws-node-x7k2p", "default")
        await eventually(lambda: not pod_exists(parts.core, "aws-node-x7k2p"))


async def test_410_expired_and_dropped_connections_converge_without_duplicate_starts(
    parts: WatcherParts,
) -> None:
    settings = parts.settings()
    # The cut below also drops the leader election's connection and holds the API server's
    # store; with the tests' 2 s lease a loaded machine can lose leadership there, and the new
    # leader relists instead of meeting the 410 this test is about. A long lease keeps it on
    # the watch's own path.
    election = settings.watcher.leader_election.model_copy(
        update={"lease_duration": timedelta(seconds=60), "renew_interval": timedelta(seconds=1)}
    )
    settings = settings.model_copy(
        update={"watcher": settings.watcher.model_copy(update={"leader_election": election})}
    )
    node = settings.node.name
    async with running_watcher(settings, parts.temporal) as watcher:
        await eventually(watcher.watcher.ready)
        first = create_pod(parts.core, "before", node)
        await eventually(lambda: running(parts.temporal, first))

        # A dropped connection: the watch resumes from its resourceVersion.
        expired_before = restarts("expired")
        dropped_before = restarts("dropped")
        parts.kube._server._server.close_connections()  # type: ignore[union-attr]
        dropped = create_pod(parts.core, "after-drop", node)
        await eventually(lambda: running(parts.temporal, dropped))

        # 410: while the watch is cut and cannot reconnect, more changes happen than the server
        # retains, among them a new pod and a deletion the watch will never see as events.
        with parts.kube.store.lock:
            parts.kube._server._server.close_connections()  # type: ignore[union-attr]
            for index in range(60):
                parts.kube.registry.create(
                    PODS, "default", pod_manifest(f"filler-{index}", "elsewhere")
                )
            created = parts.kube.registry.create(PODS, "default", pod_manifest("during-410", node))
            parts.kube.registry.delete(
                PODS, "default", "after-drop", DeleteOptions(grace_period_seconds=0)
            )
        expired = pod_ref_from_pod(created)
        await eventually(lambda: running(parts.temporal, expired))
        await eventually(lambda: received(parts.temporal, dropped, "pod_gone"), within=20)
        assert watcher.watcher.watch is not None
        await eventually(lambda: watcher.watcher.watch.live)  # type: ignore[union-attr]
        for ref in (first, dropped, expired):
            assert len(await executions(parts.temporal, ref)) == 1
        assert restarts("expired") > expired_before
        assert restarts("dropped") > dropped_before


async def test_restarted_watcher_converges_pods_created_and_deleted_while_it_was_down(
    parts: WatcherParts,
) -> None:
    settings = parts.settings()
    node = settings.node.name
    async with running_watcher(settings, parts.temporal) as watcher:
        await eventually(watcher.watcher.ready)
        kept = create_pod(parts.core, "kept", node)
        vanishing = create_pod(parts.core, "vanishing", node)
        await eventually(lambda: running(parts.temporal, kept))
        await eventually(lambda: running(parts.temporal, vanishing))
        await watcher.crash()

    # While no watcher runs: a pod is created, another deleted for good.
    newcomer = create_pod(parts.core, "newcomer", node)
    parts.core.delete_namespaced_pod("vanishing", "default", grace_period_seconds=0)
    await asyncio.sleep(0)

    async with running_watcher(settings, parts.temporal) as watcher:
        await eventually(lambda: running(parts.temporal, newcomer))
        await eventually(lambda: received(parts.temporal, vanishing, "pod_gone"))
        assert await running(parts.temporal, kept)
        for ref in (kept, newcomer, vanishing):
            assert len(await executions(parts.temporal, ref)) == 1
