"""Usage figures of emulated containers in CloudWatch, read back as ORCA reads them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from orca.usage_metrics import UsageMetric
from orca.usage_queries import PodKey, Statistic
from orca.usage_reader import UsageReader
from orca_devstack.emulators.aws import AwsEmulator
from orca_devstack.emulators.aws.container_metrics import PodFigures, PodRequests
from tests.emulators.aws.test_aws_ssm import make_pod, running_instance, send, start_script
from tests.fixtures.aws import AwsClientFactory, wait_until


def test_figures_follow_the_annotations_in_percent_of_the_request() -> None:
    pod = PodFigures(
        namespace="ml",
        name="train",
        uid="u",
        annotations={
            "emulator.orca.research/cpu-utilization": "50",
            "emulator.orca.research/memory-bytes": "1000",
            "emulator.orca.research/gpu-utilization": "3",
        },
        requests=PodRequests.of(
            {
                "containers": [
                    {"requests": {"cpu": "1500m", "nvidia.com/gpu": "2"}},
                    {"requests": {"cpu": "500m"}},
                ]
            }
        ),
    )
    figures = pod.advance(10)
    assert figures[UsageMetric.CPU_USAGE_CORES] == pytest.approx(1.0)
    assert figures[UsageMetric.CPU_USAGE_SECONDS] == pytest.approx(10.0)
    assert figures[UsageMetric.MEMORY_WORKING_SET_BYTES] == 1000
    assert figures[UsageMetric.GPU_UTILIZATION] == 3
    assert UsageMetric.NEURONCORE_UTILIZATION not in figures
    assert pod.advance(10)[UsageMetric.CPU_USAGE_SECONDS] == pytest.approx(20.0)


def test_busy_by_default_and_no_accelerator_figures_without_accelerators() -> None:
    pod = PodFigures(
        "ml",
        "cpu",
        "u",
        {},
        PodRequests.of({"containers": [{"requests": {"cpu": "2", "memory": "1Gi"}}]}),
    )
    figures = pod.advance(1)
    assert figures[UsageMetric.CPU_USAGE_CORES] == pytest.approx(1.6)
    assert figures[UsageMetric.MEMORY_WORKING_SET_BYTES] == 2**29
    assert UsageMetric.GPU_UTILIZATION not in figures


def _pod(annotations: dict[str, str], requests: dict[str, str]) -> dict[str, Any]:
    pod = make_pod({"emulator.orca.research/run-seconds": "inf", **annotations})
    pod["containers"] = [{"name": "trainer", "image": "busybox", "requests": requests}]
    return pod


def test_running_pods_publish_on_the_pod_dimension(
    aws: AwsEmulator, aws_client: AwsClientFactory
) -> None:
    ssm = aws_client("ssm")
    reader = UsageReader(aws_client("cloudwatch"))
    instance_id = running_instance(aws, aws_client)
    idle = _pod(
        {"emulator.orca.research/gpu-utilization": "2"}, {"cpu": "4", "nvidia.com/gpu": "1"}
    )
    busy = _pod({}, {"aws.amazon.com/neuron": "1"})
    busy["name"] = "busy"
    for pod in (idle, busy):
        send(ssm, instance_id, f"orca start ml/{pod['name']}", start_script(pod))
    keys = [PodKey(namespace="ml", name=p["name"], uid=p["uid"]) for p in (idle, busy)]
    metrics = [
        UsageMetric.CPU_USAGE_CORES,
        UsageMetric.GPU_UTILIZATION,
        UsageMetric.NEURONCORE_UTILIZATION,
    ]

    def read() -> dict[Any, Any]:
        now = datetime.now(UTC)
        return reader.read(
            keys,
            metrics,
            statistic=Statistic.MAXIMUM,
            period_seconds=60,
            start=now - timedelta(minutes=5),
            end=now + timedelta(minutes=1),
        )

    wait_until(lambda: len(read()) == 2, timeout=20)
    figures = read()
    assert figures[keys[0]][UsageMetric.CPU_USAGE_CORES].latest == pytest.approx(3.2)
    assert figures[keys[0]][UsageMetric.GPU_UTILIZATION].maximum == 2
    assert UsageMetric.NEURONCORE_UTILIZATION not in figures[keys[0]]
    assert figures[keys[1]][UsageMetric.NEURONCORE_UTILIZATION].maximum == 90
    assert reader.calls >= 1


def test_get_metric_data_takes_at_most_500_queries(
    aws_client: AwsClientFactory, aws: AwsEmulator
) -> None:
    cloudwatch = aws_client("cloudwatch")
    query = {
        "MetricStat": {
            "Metric": {"Namespace": "ORCA/Pods", "MetricName": "cpu_usage_cores"},
            "Period": 60,
            "Stat": "Average",
        }
    }
    now = datetime.now(UTC)
    with pytest.raises(ClientError, match="must not have a size greater than 500"):
        cloudwatch.get_metric_data(
            MetricDataQueries=[{"Id": f"q{i}", **query} for i in range(501)],
            StartTime=now - timedelta(minutes=5),
            EndTime=now,
        )
