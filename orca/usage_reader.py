"""Reads pod usage figures from CloudWatch in as few GetMetricData calls as the limit allows.

The queries come from `orca.usage_queries` (pure); this class only makes the calls, following
`NextToken` when an answer is paged, and counts them (`calls`) for the benchmark's figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from orca.usage_metrics import UsageMetric
from orca.usage_queries import PodKey, Sample, Statistic, batches, parse_results, usage_queries

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient


class UsageReader:
    def __init__(self, cloudwatch: CloudWatchClient) -> None:
        self.cloudwatch = cloudwatch
        self.calls = 0

    def read(
        self,
        pods: Sequence[PodKey],
        metrics: Sequence[UsageMetric],
        *,
        statistic: Statistic | None = None,
        period_seconds: int,
        start: datetime,
        end: datetime,
    ) -> dict[PodKey, dict[UsageMetric, Sample]]:
        """Every pod's datapoints of `metrics` between `start` and `end`, newest first."""
        queries = usage_queries(pods, metrics, statistic=statistic, period_seconds=period_seconds)
        results: list[dict[str, Any]] = []
        for batch in batches(queries):
            token: str | None = None
            while True:
                kwargs: dict[str, Any] = {
                    "MetricDataQueries": batch,
                    "StartTime": start,
                    "EndTime": end,
                    "ScanBy": "TimestampDescending",
                }
                if token:
                    kwargs["NextToken"] = token
                self.calls += 1
                answer = self.cloudwatch.get_metric_data(**kwargs)
                results.extend(dict(r) for r in answer.get("MetricDataResults", []))
                token = answer.get("NextToken")
                if not token:
                    break
        return parse_results(results, pods, metrics)
