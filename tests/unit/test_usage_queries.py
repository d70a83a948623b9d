"""The batched GetMetricData read: query building, batching and parsing (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orca.usage_metrics import NAMESPACE, POD_DIMENSION, UsageMetric, agent_config
from orca.usage_queries import (
    MAX_QUERIES_PER_CALL,
    PodKey,
    Sample,
    Statistic,
    batches,
    calls_needed,
    parse_results,
    usage_queries,
    valid_period,
)

METRICS = list(UsageMetric)


def pods(n: int) -> list[PodKey]:
    return [PodKey(namespace="ml", name=f"p{i}", uid=f"uid-{i}") for i in range(n)]


def test_one_query_per_pod_and_metric_on_the_pod_dimension() -> None:
    queries = usage_queries(pods(2), METRICS, statistic=Statistic.AVERAGE, period_seconds=60)
    assert len(queries) == 2 * len(METRICS)
    first = queries[0]
    assert first["Id"] == "p0_m0"
    assert first["MetricStat"]["Metric"] == {
        "Namespace": NAMESPACE,
        "MetricName": METRICS[0].value,
        "Dimensions": [{"Name": POD_DIMENSION, "Value": "ml/p0/uid-0"}],
    }
    assert first["MetricStat"]["Stat"] == "Average"
    assert len({q["Id"] for q in queries}) == len(queries)


@pytest.mark.parametrize("n", [0, 1, 45, 46, 100, 1000, 5000])
def test_calls_per_interval_are_ceil_of_queries_over_500(n: int) -> None:
    queries = usage_queries(pods(n), METRICS, statistic=Statistic.AVERAGE, period_seconds=60)
    calls = batches(queries)
    assert len(calls) == calls_needed(n, len(METRICS)) == -(-n * len(METRICS) // 500)
    assert all(len(call) <= MAX_QUERIES_PER_CALL for call in calls)
    assert sum(len(call) for call in calls) == len(queries)


@pytest.mark.parametrize(
    ("seconds", "valid"),
    [
        (1, True),
        (5, True),
        (30, True),
        (60, True),
        (120, True),
        (2, False),
        (45, False),
        (90, False),
    ],
)
def test_periods_are_those_cloudwatch_takes(seconds: int, valid: bool) -> None:
    assert valid_period(seconds) is valid
    if not valid:
        with pytest.raises(ValueError, match="not a CloudWatch period"):
            usage_queries(pods(1), METRICS, statistic=Statistic.AVERAGE, period_seconds=seconds)


def test_results_map_back_to_pods_newest_first_across_calls() -> None:
    keys = pods(2)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    metrics = [UsageMetric.CPU_USAGE_CORES, UsageMetric.GPU_UTILIZATION]
    results = [
        {"Id": "p0_m0", "Timestamps": [now - timedelta(minutes=1), now], "Values": [1.0, 2.0]},
        {"Id": "p0_m1", "Timestamps": [], "Values": []},
        {"Id": "p1_m1", "Timestamps": [now], "Values": [7.0]},
        {"Id": "p1_m1", "Timestamps": [now - timedelta(minutes=2)], "Values": [50.0]},
        {"Id": "unknown", "Timestamps": [now], "Values": [1.0]},
    ]
    figures = parse_results(results, keys, metrics)
    cpu = figures[keys[0]][UsageMetric.CPU_USAGE_CORES]
    assert cpu.latest == 2.0
    assert cpu.latest_at == now
    assert UsageMetric.GPU_UTILIZATION not in figures[keys[0]]
    gpu = figures[keys[1]][UsageMetric.GPU_UTILIZATION]
    assert gpu.values == (7.0, 50.0)
    assert gpu.maximum == 50.0


def test_agent_config_rolls_statsd_gauges_up_on_the_pod_dimension() -> None:
    config = agent_config(60)
    assert config["metrics"]["namespace"] == NAMESPACE
    assert config["metrics"]["aggregation_dimensions"] == [[POD_DIMENSION]]
    assert config["metrics"]["metrics_collected"]["statsd"]["metrics_collection_interval"] == 60


def test_orca_status_usage_cells() -> None:
    from orca.cli.pod_usage import PodUsage

    now = datetime(2026, 1, 1, tzinfo=UTC)
    usage = PodUsage.of(
        {
            UsageMetric.CPU_USAGE_CORES: Sample(values=(1.25,), timestamps=(now,)),
            UsageMetric.MEMORY_WORKING_SET_BYTES: Sample(values=(3 * 2**20,), timestamps=(now,)),
            UsageMetric.NEURONCORE_UTILIZATION: Sample(values=(42.4,), timestamps=(now,)),
        }
    )
    assert usage.cells() == ("1250m", "3Mi", "42%")
    assert PodUsage().cells() == ("-", "-", "-")
