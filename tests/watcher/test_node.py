"""The virtual node: registration, Lease renewal, readiness and shutdown, via `run()`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.request
from typing import Any

from kubernetes import client as k8s

from orca.watcher.kube_json import read_json, read_json_or_none
from orca.watcher.main import run
from tests.watcher.conftest import WatcherParts, eventually, running_watcher
from tests.watcher.kubelet_client import kubelet_get

DEPENDENCY_TAINT = "orca.research/dependency-unavailable"


def node_json(core: k8s.CoreV1Api, name: str) -> dict[str, Any] | None:
    return read_json_or_none(core.read_node, name)


def condition(node: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in node["status"]["conditions"] if c["type"] == kind)


async def test_node_is_registered_ready_with_a_renewed_lease_and_left_not_ready_on_stop(
    parts: WatcherParts,
) -> None:
    settings = parts.settings()
    name = settings.node.name
    coordination = k8s.CoordinationV1Api(parts.core.api_client)
    stop = asyncio.Event()
    task = asyncio.create_task(run(settings, stop=stop))
    try:
        # The real health probe: STS on the AWS emulator and a worker polling the task queue.
        node = await eventually(
            lambda: (
                (n := node_json(parts.core, name))
                and condition(n, "Ready")["status"] == "True"
                and n
            )
        )
        assert node["metadata"]["labels"]["orca.research/provider"] == "aws"
        assert node["metadata"]["labels"]["kubernetes.io/hostname"] == name
        assert node["spec"]["taints"] == [
            {"key": "orca.research/burst-node", "value": "true", "effect": "NoSchedule"}
        ]
        allocatable = node["status"]["allocatable"]
        assert allocatable["nvidia.com/gpu"] == settings.node.gpu
        assert allocatable["aws.amazon.com/neuron"] == settings.node.neuron
        assert allocatable["aws.amazon.com/fpga"] == settings.node.fpga
        assert node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == (
            settings.node.kubelet_port
        )
        assert {"type": "InternalIP", "address": "127.0.0.1"} in node["status"]["addresses"]
        assert condition(node, "MemoryPressure")["status"] == "False"
        for kind, reason in (
            ("orca.research/TemporalAvailable", "TemporalReachable"),
            ("orca.research/WorkerPolling", "WorkerPolling"),
            ("orca.research/AwsAvailable", "AwsCredentialsValid"),
        ):
            assert (condition(node, kind)["status"], condition(node, kind)["reason"]) == (
                "True",
                reason,
            )

        lease = await eventually(
            lambda: read_json_or_none(coordination.read_namespaced_lease, name, "kube-node-lease")
        )
        assert lease["spec"]["holderIdentity"] == name
        first_renewal = lease["spec"]["renewTime"]
        await eventually(
            lambda: (
                read_json(coordination.read_namespaced_lease, name, "kube-node-lease")["spec"][
                    "renewTime"
                ]
                != first_renewal
            )
        )
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=20)
    node = node_json(parts.core, name)
    assert node is not None, "the node is kept on shutdown unless node.deleteOnShutdown"
    ready = condition(node, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "WatcherStopped")


async def test_no_worker_polling_keeps_the_node_ready_and_taints_it_noschedule(
    parts: WatcherParts,
) -> None:
    settings = parts.settings(task_queue="nobody-polls-this-queue")
    stop = asyncio.Event()
    task = asyncio.create_task(run(settings, stop=stop))
    try:
        node = await eventually(
            lambda: (
                (n := node_json(parts.core, settings.node.name))
                and any(t["key"] == DEPENDENCY_TAINT for t in n["spec"].get("taints") or [])
                and n
            )
        )
        ready = condition(node, "Ready")
        assert (ready["status"], ready["reason"]) == ("True", "KubeletReady")
        polling = condition(node, "orca.research/WorkerPolling")
        assert (polling["status"], polling["reason"]) == ("False", "NoWorkerPolling")
        assert "nobody-polls-this-queue" in polling["message"]
        assert condition(node, "orca.research/TemporalAvailable")["status"] == "True"
        assert {"key": DEPENDENCY_TAINT, "effect": "NoSchedule"} in node["spec"]["taints"]
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=20)


async def test_taints_of_other_owners_survive_a_restart_and_unconfigured_ones_go(
    parts: WatcherParts,
) -> None:
    settings = parts.settings()
    name = settings.node.name
    extra = {"key": "example.org/maintenance", "value": "soon", "effect": "NoSchedule"}
    async with running_watcher(settings, parts.temporal):
        node = await eventually(lambda: node_json(parts.core, name))
        parts.core.patch_node(name, {"spec": {"taints": [*node["spec"]["taints"], extra]}})
    # Restarted without the configured burst taint: ORCA removes its own, keeps the other one.
    untainted = settings.model_copy(
        update={"node": settings.node.model_copy(update={"taints": ()})}
    )
    async with running_watcher(untainted, parts.temporal):
        await eventually(
            lambda: (
                (n := node_json(parts.core, name)) is not None and n["spec"]["taints"] == [extra]
            )
        )


async def test_health_endpoints_report_ready_once_registered_and_watching(
    parts: WatcherParts,
) -> None:
    settings = parts.settings()
    async with running_watcher(settings, parts.temporal) as watcher:
        await eventually(lambda: watcher.watcher.health_server is not None)
        assert watcher.watcher.health_server is not None
        port = watcher.watcher.health_server.port
        await eventually(lambda: _status(port, "/readyz") == 200)
        assert _status(port, "/healthz") == 200
        assert _status(port, "/metrics") == 200
        assert watcher.watcher.kubelet is not None
        status, body = kubelet_get(
            watcher.watcher.kubelet.port, "/stats/summary", token="orca-dev-emulator"
        )
        assert status == 200
        assert json.loads(body)["node"]["nodeName"] == settings.node.name


def _status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


async def test_the_lease_is_renewed_while_a_dependency_probe_hangs(parts: WatcherParts) -> None:
    from orca.aws_clients import AwsClients
    from orca.kube_clients import KubeClients
    from orca.watcher.main import Watcher
    from orca.watcher.node_health import Dependencies, always_ready

    settings = parts.settings()
    name = settings.node.name
    hang = asyncio.Event()
    healthy = always_ready()

    async def probe() -> Dependencies:
        if hang.is_set():
            await asyncio.sleep(3600)  # an AWS call that never answers
        return await healthy()

    watcher = Watcher(
        settings,
        kube=KubeClients(settings.kubernetes),
        aws=AwsClients(settings.aws),
        temporal=parts.temporal,
        health_check=probe,
    )
    coordination = k8s.CoordinationV1Api(parts.core.api_client)

    def renew_time() -> str | None:
        lease = read_json_or_none(coordination.read_namespaced_lease, name, "kube-node-lease")
        return lease["spec"]["renewTime"] if lease else None

    stop = asyncio.Event()
    task = asyncio.create_task(watcher.run(stop))
    try:
        await eventually(lambda: watcher.heartbeat is not None and watcher.heartbeat.registered)
        hang.set()
        seen = {await eventually(renew_time)}
        # Renewals keep coming although the probe (run every lease interval) never returns.
        for _ in range(3):
            seen.add(await eventually(lambda: (r := renew_time()) not in seen and r))
        assert len(seen) == 4
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
