"""Usage figures: CloudWatch (the AWS emulator) → the watcher's batched read → the kubelet
endpoint's `/stats/summary` and `/metrics/resource`."""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from orca.aws_clients import AwsClients
from orca.settings import Settings
from orca.usage_metrics import NAMESPACE, POD_DIMENSION, UsageMetric, pod_dimension_value
from orca.watcher.pod_stats import PodStats
from tests.watcher.conftest import WatcherParts, create_pod, eventually, running_watcher
from tests.watcher.kubelet_client import kubelet_get

TOKEN = "orca-dev-emulator"


def mark_running(core: k8s.CoreV1Api, name: str) -> None:
    core.patch_namespaced_pod_status(
        name,
        "default",
        {
            "status": {
                "phase": "Running",
                "startTime": "2026-01-01T00:00:00Z",
                "containerStatuses": [
                    {
                        "name": "main",
                        "image": "busybox",
                        "imageID": "",
                        "ready": True,
                        "restartCount": 0,
                        "state": {"running": {"startedAt": "2026-01-01T00:00:01Z"}},
                    }
                ],
            }
        },
    )


def publish(
    settings: Settings,
    ref: Any,
    figures: dict[UsageMetric, float],
    at: datetime | None = None,
) -> None:
    """What the instance's CloudWatch agent puts, for one pod (at `at`, else now)."""
    stamp = {"Timestamp": at} if at is not None else {}
    AwsClients(settings.aws).cloudwatch.put_metric_data(
        Namespace=NAMESPACE,
        MetricData=[
            {
                "MetricName": metric.value,
                "Dimensions": [
                    {
                        "Name": POD_DIMENSION,
                        "Value": pod_dimension_value(ref.namespace, ref.name, ref.uid),
                    }
                ],
                "Value": value,
                **stamp,
            }
            for metric, value in figures.items()
        ],
    )


async def test_kubelet_endpoint_serves_the_pods_cloudwatch_figures(parts: WatcherParts) -> None:
    settings = parts.settings()
    ref = create_pod(parts.core, "stats-1", settings.node.name)
    mark_running(parts.core, "stats-1")
    publish(
        settings,
        ref,
        {
            UsageMetric.CPU_USAGE_CORES: 0.5,
            UsageMetric.CPU_USAGE_SECONDS: 12.0,
            UsageMetric.MEMORY_WORKING_SET_BYTES: 3 * 2**20,
            UsageMetric.GPU_UTILIZATION: 77.0,
        },
    )
    async with running_watcher(settings, parts.temporal) as watcher:
        await eventually(watcher.watcher.ready)
        kubelet = watcher.watcher.kubelet
        stats = watcher.watcher.stats
        assert kubelet is not None
        assert isinstance(stats, PodStats)
        await eventually(lambda: stats.figures(ref.uid))
        status, body = kubelet_get(kubelet.port, "/stats/summary", token=TOKEN)
        assert status == 200
        (row,) = [p for p in json.loads(body)["pods"] if p["podRef"]["uid"] == ref.uid]
        assert row["cpu"]["usageNanoCores"] == 500_000_000
        assert row["memory"]["workingSetBytes"] == 3 * 2**20
        assert row["containers"][0]["accelerators"][0]["dutyCycle"] == 77

        status, body = kubelet_get(kubelet.port, "/metrics/resource", token=TOKEN)
        assert status == 200
        lines = body.decode().splitlines()
        series = (
            'container_cpu_usage_seconds_total{container="main",namespace="default",pod="stats-1"}'
        )
        assert any(line.startswith(series + " 12 ") for line in lines), lines
        assert "scrape_error 0" in lines
        assert stats.reader.calls >= 1


KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"


@pytest.mark.kubectl
@pytest.mark.skipif(not Path(KUBECTL).is_file(), reason="kubectl is not installed")
async def test_kubectl_top_pod_and_node_through_metrics_k8s_io(parts: WatcherParts) -> None:
    """The API server (emulator) scrapes the watcher's /metrics/resource as metrics-server does;
    CPU is the rate of the pod's CPU seconds between two of the instance's datapoints."""
    settings = parts.settings()
    ref = create_pod(parts.core, "top-1", settings.node.name)
    mark_running(parts.core, "top-1")
    async with running_watcher(settings, parts.temporal) as watcher:
        await eventually(watcher.watcher.ready)

        def top(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [KUBECTL, "--kubeconfig", str(parts.kubeconfig), "top", *args],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )

        period = settings.node.stats_interval.total_seconds()
        started = (math.floor(time.time() / period) - 1) * period  # a boundary, in the past

        async def two_cores_used() -> bool:
            # The instance's agent: 2 cores busy, so the CPU seconds grow by 2 a second. Like the
            # CloudWatch agent it samples on the period's boundaries (CloudWatch answers each
            # period's start as the datapoint's time), however late this loop comes round.
            at = math.floor(time.time() / period) * period
            publish(
                settings,
                ref,
                {
                    UsageMetric.CPU_USAGE_SECONDS: 2.0 * (at - started),
                    UsageMetric.CPU_USAGE_CORES: 2.0,
                    UsageMetric.MEMORY_WORKING_SET_BYTES: 64 * 2**20,
                },
                at=datetime.fromtimestamp(at, UTC),
            )
            result = await asyncio.to_thread(top, "pod", "top-1", "--no-headers")
            return result.returncode == 0 and "top-1" in result.stdout

        await eventually(two_cores_used, within=60)
        result = await asyncio.to_thread(top, "pod", "top-1", "--no-headers")
        name, cpu, memory = result.stdout.split()
        assert name == "top-1"
        assert cpu.endswith("m")
        assert 1000 <= int(cpu[:-1]) <= 4000, result.stdout
        assert memory == "64Mi"

        async def node_has_a_rate() -> bool:
            # As metrics-server, the node's figure needs two scrapes with a moving counter: the
            # agent keeps publishing meanwhile.
            await two_cores_used()
            result = await asyncio.to_thread(top, "node", settings.node.name, "--no-headers")
            return result.returncode == 0

        await eventually(node_has_a_rate, within=60)
        nodes = await asyncio.to_thread(top, "node", settings.node.name, "--no-headers")
        assert nodes.returncode == 0, nodes.stderr
        assert nodes.stdout.split()[0] == settings.node.name
