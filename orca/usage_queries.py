"""The batched read of pod usage figures: GetMetricData queries for every pod at once (pure).

CloudWatch's GetMetricData takes up to `MAX_QUERIES_PER_CALL` metric queries per call, so N pods
with M metrics each cost ceil(N * M / 500) calls per interval (`calls_needed`), never one call per
pod. `usage_queries` builds the queries (each one metric of one pod, on the pod dimension of
`orca.usage_metrics`), `batches` splits them into calls, and `parse_results` turns the answers
back into per-pod figures. `orca.usage_reader` makes the calls.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from orca.usage_metrics import NAMESPACE, POD_DIMENSION, UsageMetric, pod_dimension_value

MAX_QUERIES_PER_CALL = 500
HIGH_RESOLUTION_PERIODS = (1, 5, 10, 30)


class Statistic(StrEnum):
    AVERAGE = "Average"
    MAXIMUM = "Maximum"


class PodKey(BaseModel):
    """The pod a figure belongs to."""

    model_config = ConfigDict(frozen=True)

    namespace: str
    name: str
    uid: str

    @property
    def dimension(self) -> str:
        return pod_dimension_value(self.namespace, self.name, self.uid)


class Sample(BaseModel):
    """A metric's datapoints for one pod, newest first."""

    model_config = ConfigDict(frozen=True)

    values: tuple[float, ...] = ()
    timestamps: tuple[datetime, ...] = ()

    @property
    def latest(self) -> float | None:
        return self.values[0] if self.values else None

    @property
    def latest_at(self) -> datetime | None:
        return self.timestamps[0] if self.timestamps else None

    @property
    def maximum(self) -> float | None:
        return max(self.values) if self.values else None


def valid_period(seconds: int) -> bool:
    """CloudWatch's allowed periods: 1, 5, 10, 30 (high resolution) or a multiple of 60."""
    return seconds in HIGH_RESOLUTION_PERIODS or (seconds >= 60 and seconds % 60 == 0)


def natural_statistic(metric: UsageMetric) -> Statistic:
    """Maximum for a cumulative figure (its newest value), Average for a gauge."""
    return Statistic.MAXIMUM if metric.value.endswith("_total") else Statistic.AVERAGE


def query_id(pod_index: int, metric_index: int) -> str:
    """GetMetricData ids start with a lower-case letter and hold only [a-zA-Z0-9_]."""
    return f"p{pod_index}_m{metric_index}"


def usage_queries(
    pods: Sequence[PodKey],
    metrics: Sequence[UsageMetric],
    *,
    statistic: Statistic | None = None,
    period_seconds: int,
) -> list[dict[str, Any]]:
    """One MetricStat query per pod and metric, in pod-major order; without `statistic`, each
    metric's `natural_statistic`."""
    if not valid_period(period_seconds):
        raise ValueError(
            f"period {period_seconds}s is not a CloudWatch period: 1, 5, 10, 30 or a multiple of 60"
        )
    return [
        {
            "Id": query_id(p, m),
            "MetricStat": {
                "Metric": {
                    "Namespace": NAMESPACE,
                    "MetricName": metric.value,
                    "Dimensions": [{"Name": POD_DIMENSION, "Value": pod.dimension}],
                },
                "Period": period_seconds,
                "Stat": (statistic or natural_statistic(metric)).value,
            },
            "ReturnData": True,
        }
        for p, pod in enumerate(pods)
        for m, metric in enumerate(metrics)
    ]


def batches(queries: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The queries split into GetMetricData calls of at most `MAX_QUERIES_PER_CALL`."""
    return [
        list(queries[start : start + MAX_QUERIES_PER_CALL])
        for start in range(0, len(queries), MAX_QUERIES_PER_CALL)
    ]


def calls_needed(pods: int, metrics_per_pod: int) -> int:
    return math.ceil(pods * metrics_per_pod / MAX_QUERIES_PER_CALL)


def parse_results(
    results: Iterable[Mapping[str, Any]],
    pods: Sequence[PodKey],
    metrics: Sequence[UsageMetric],
) -> dict[PodKey, dict[UsageMetric, Sample]]:
    """GetMetricData `MetricDataResults` (any number of calls' worth) as figures per pod; a pod
    or metric without datapoints is left out."""
    by_id = {
        query_id(p, m): (pod, metric)
        for p, pod in enumerate(pods)
        for m, metric in enumerate(metrics)
    }
    figures: dict[PodKey, dict[UsageMetric, Sample]] = {}
    for result in results:
        key = by_id.get(str(result.get("Id")))
        values = list(result.get("Values") or ())
        if key is None or not values:
            continue
        points = sorted(
            zip(result.get("Timestamps") or (), values, strict=False),
            key=lambda point: point[0],
            reverse=True,
        )
        pod, metric = key
        sample = figures.setdefault(pod, {}).get(metric)
        merged = list(zip(sample.timestamps, sample.values, strict=True)) if sample else []
        merged = sorted(merged + points, key=lambda point: point[0], reverse=True)
        figures[pod][metric] = Sample(
            values=tuple(float(v) for _, v in merged), timestamps=tuple(t for t, _ in merged)
        )
    return figures
