"""Watcher tests run against the real parts: the Kubernetes API emulator, the AWS emulator and the
Temporal dev server, with a recording "PodLifecycle" workflow on a fresh task queue per test."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
import pytest_asyncio
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from orca.aws_clients import AwsClients
from orca.kube_clients import KubeClients
from orca.launch_spec import PodRef
from orca.settings import (
    AwsCredentials,
    AwsSettings,
    KubernetesSettings,
    LeaderElectionSettings,
    MetricsSettings,
    NodeSettings,
    Settings,
    TemporalSettings,
    WatcherSettings,
)
from orca.watcher.kube_json import read_json
from orca.watcher.kubelet_server import log_stream_name
from orca.watcher.main import Watcher
from orca.watcher.node_health import always_ready
from orca.workflow_ids import pod_workflow_id
from orca_devstack.emulators.aws import AwsEmulator
from orca_devstack.emulators.kube import KubeEmulator
from tests.fixtures.aws import aws, aws_emulator
from tests.watcher.recording_workflow import RecordingPodLifecycle

__all__ = ["aws", "aws_emulator"]

T = TypeVar("T")


_handed_out: set[int] = set()


def free_port() -> int:
    """A free loopback port, never the same twice in a session (the OS may reuse a freed one)."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port


async def eventually(check: Callable[[], Any], within: float = 15.0) -> Any:
    """Poll `check` (sync or async) until truthy; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(0.05)


@pytest.fixture
def kube() -> Iterator[KubeEmulator]:
    # A small retained window lets a test force 410 Expired; bookmarks often to exercise them.
    with KubeEmulator(host="127.0.0.1", port=0, retained_events=40, bookmark_interval=0.5) as emu:
        yield emu


@pytest.fixture
def kubeconfig(kube: KubeEmulator, tmp_path: Path) -> Path:
    return kube.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def core(kubeconfig: Path) -> Iterator[k8s.CoreV1Api]:
    api = k8s_config.new_client_from_config(str(kubeconfig))
    yield k8s.CoreV1Api(api)
    api.close()


@pytest.fixture
def task_queue() -> str:
    return f"watcher-test-{uuid.uuid4()}"


@pytest_asyncio.fixture
async def recorder(temporal_dev_env: WorkflowEnvironment, task_queue: str) -> AsyncIterator[Client]:
    """A worker running the recording PodLifecycle on the test's task queue; yields the client."""
    async with Worker(
        temporal_dev_env.client, task_queue=task_queue, workflows=[RecordingPodLifecycle]
    ):
        yield temporal_dev_env.client


@dataclass
class WatcherParts:
    """What a watcher test runs against: the Kubernetes emulator (with its kubeconfig and a
    client), the Temporal dev server with the recording PodLifecycle polling `task_queue`, and
    the AWS emulator, freshly reset."""

    kube: KubeEmulator
    kubeconfig: Path
    core: k8s.CoreV1Api
    temporal: Client
    task_queue: str
    aws: AwsEmulator

    def settings(self, **overrides: Any) -> Settings:
        """Watcher settings for these parts (`make_settings`'s keywords override them)."""
        parts: dict[str, Any] = {
            "kubeconfig": self.kubeconfig,
            "temporal": self.temporal,
            "task_queue": self.task_queue,
            "aws_emulator": self.aws,
        }
        return make_settings(**{**parts, **overrides})


@pytest.fixture
def parts(
    kube: KubeEmulator,
    kubeconfig: Path,
    core: k8s.CoreV1Api,
    recorder: Client,
    task_queue: str,
    aws: AwsEmulator,
) -> WatcherParts:
    """The six parts most watcher tests need, as one object."""
    return WatcherParts(kube, kubeconfig, core, recorder, task_queue, aws)


def make_settings(
    *,
    kubeconfig: Path,
    temporal: Client,
    task_queue: str,
    aws_emulator: AwsEmulator,
    node_name: str | None = None,
    lease_name: str | None = None,
    interruption_queue_url: str | None = None,
    resync_seconds: float = 300,
) -> Settings:
    return Settings(
        aws=AwsSettings(
            region=aws_emulator.region,
            endpoint_url=aws_emulator.endpoint_url,
            credentials=AwsCredentials(access_key_id="testing", secret_access_key="testing"),
            interruption_queue_url=interruption_queue_url,
            log_group=aws_emulator.defaults.log_group,
        ),
        node=NodeSettings(
            name=node_name or f"orca-test-{uuid.uuid4().hex[:8]}",
            kubelet_port=free_port(),
            lease_duration=timedelta(seconds=2),
            lease_renew_interval=timedelta(seconds=0.2),
            status_update_interval=timedelta(seconds=1),
            stats_interval=timedelta(seconds=1),
        ),
        temporal=TemporalSettings(
            address=temporal.service_client.config.target_host, task_queue=task_queue
        ),
        kubernetes=KubernetesSettings(kubeconfig=kubeconfig),
        watcher=WatcherSettings(
            health_port=0,
            resync_interval=timedelta(seconds=resync_seconds),
            leader_election=LeaderElectionSettings(
                lease_name=lease_name or f"orca-watcher-{uuid.uuid4().hex[:8]}",
                lease_duration=timedelta(seconds=2),
                renew_interval=timedelta(seconds=0.3),
            ),
        ),
        metrics=MetricsSettings(enabled=False),
    )


@dataclass
class RunningWatcher:
    watcher: Watcher
    stop: asyncio.Event
    task: asyncio.Task[None]

    async def shutdown(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, timeout=20)

    async def crash(self) -> None:
        """Stop without any goodbye (no NotReady, no lease release), like kill -9."""
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@contextlib.asynccontextmanager
async def running_watcher(
    settings: Settings, temporal: Client, identity: str | None = None
) -> AsyncIterator[RunningWatcher]:
    watcher = Watcher(
        settings,
        kube=KubeClients(settings.kubernetes),
        aws=AwsClients(settings.aws),
        temporal=temporal,
        identity=identity,
        health_check=always_ready(),
        interruption_wait_seconds=1,
    )
    stop = asyncio.Event()
    running = RunningWatcher(watcher, stop, asyncio.create_task(watcher.run(stop)))
    try:
        yield running
    finally:
        if not running.task.done():
            await running.shutdown()


def pod_manifest(
    name: str, node_name: str, *, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "annotations": annotations or {}},
        "spec": {
            "nodeName": node_name,
            "containers": [{"name": "main", "image": "busybox"}],
            "tolerations": [{"key": "orca.research/burst-node", "operator": "Exists"}],
        },
    }


def create_pod(
    core: k8s.CoreV1Api, name: str, node_name: str, annotations: dict[str, str] | None = None
) -> PodRef:
    manifest: Any = pod_manifest(name, node_name, annotations=annotations)
    created = read_json(core.create_namespaced_pod, "default", manifest)
    return PodRef(namespace="default", name=name, uid=created["metadata"]["uid"])


def write_container_logs(settings: Settings, ref: PodRef, messages: list[str]) -> None:
    """Put `messages` in the CloudWatch stream of the pod's container `main`, as its runner
    ships them, one millisecond apart."""
    logs = AwsClients(settings.aws).logs
    stream = log_stream_name(ref.namespace, ref.name, ref.uid, "main")
    logs.create_log_stream(logGroupName=settings.aws.log_group, logStreamName=stream)
    now = int(time.time() * 1000)
    logs.put_log_events(
        logGroupName=settings.aws.log_group,
        logStreamName=stream,
        logEvents=[{"timestamp": now + i, "message": m} for i, m in enumerate(messages)],
    )


async def executions(client: Client, ref: PodRef) -> list[WorkflowExecutionStatus | None]:
    found = []
    async for execution in client.list_workflows(f'WorkflowId="{pod_workflow_id(ref)}"'):
        found.append(execution.status)
    return found


async def running(client: Client, ref: PodRef) -> bool:
    try:
        description = await client.get_workflow_handle(pod_workflow_id(ref)).describe()
    except Exception:
        return False
    return description.status == WorkflowExecutionStatus.RUNNING


async def signals(client: Client, ref: PodRef) -> list[str]:
    result: list[str] = await client.get_workflow_handle(pod_workflow_id(ref)).query(
        RecordingPodLifecycle.signals
    )
    return result


async def received(client: Client, ref: PodRef, signal: str) -> bool:
    """Whether the pod's recording workflow has received `signal` (False while it cannot say)."""
    try:
        return signal in await signals(client, ref)
    except Exception:
        return False
