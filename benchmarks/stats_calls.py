"""GetMetricData calls per stats interval for N running pods, against the target.

Run: `python -m benchmarks.stats_calls [--pods 1 10 46 47 100 1000 5000]`. For each N it makes
the watcher's batched read (`orca.usage_reader.UsageReader`, every metric of
`orca.usage_metrics`) once against the AWS emulator (which, like CloudWatch, refuses more than
500 queries per call) and prints the calls it took beside the target ceil(N x metrics / 500)
of issue 17. It asserts nothing; a JSON line follows the table.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta

import boto3

from orca.usage_metrics import UsageMetric
from orca.usage_queries import PodKey, calls_needed
from orca.usage_reader import UsageReader
from orca_devstack.emulators.aws import AwsEmulator

DEFAULT_PODS = (1, 10, 46, 47, 100, 1000, 5000)


def measure(reader: UsageReader, pods: int) -> dict[str, int]:
    keys = [PodKey(namespace="bench", name=f"p{i}", uid=f"uid-{i}") for i in range(pods)]
    metrics = list(UsageMetric)
    before = reader.calls
    now = datetime.now(UTC)
    reader.read(keys, metrics, period_seconds=60, start=now - timedelta(minutes=3), end=now)
    return {
        "pods": pods,
        "metrics_per_pod": len(metrics),
        "calls": reader.calls - before,
        "target": calls_needed(pods, len(metrics)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, nargs="+", default=list(DEFAULT_PODS))
    options = parser.parse_args()
    with AwsEmulator() as aws:
        cloudwatch = boto3.client(
            "cloudwatch",
            endpoint_url=aws.endpoint_url,
            region_name=aws.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        reader = UsageReader(cloudwatch)
        rows = [measure(reader, n) for n in options.pods]
    print(f"{'pods':>6} {'metrics/pod':>11} {'calls/interval':>14} {'target':>6}")
    for row in rows:
        print(
            f"{row['pods']:>6} {row['metrics_per_pod']:>11} {row['calls']:>14} {row['target']:>6}"
        )
    print(json.dumps({"get_metric_data_calls_per_interval": rows}))


if __name__ == "__main__":
    main()
