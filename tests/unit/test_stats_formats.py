"""The kubelet's Summary API and /metrics/resource rendered from CloudWatch figures (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from orca.usage_metrics import UsageMetric
from orca.usage_queries import Sample
from orca.watcher.stats_formats import resource_metrics, summary

AT = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def pod(name: str, containers: list[str]) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ml", "uid": f"uid-{name}"},
        "status": {
            "phase": "Running",
            "startTime": "2026-01-01T11:00:00Z",
            "containerStatuses": [
                {"name": c, "state": {"running": {"startedAt": "2026-01-01T11:00:05Z"}}}
                for c in containers
            ],
        },
    }


FIGURES = {
    UsageMetric.CPU_USAGE_CORES: Sample(values=(1.5,), timestamps=(AT,)),
    UsageMetric.CPU_USAGE_SECONDS: Sample(values=(300.0,), timestamps=(AT,)),
    UsageMetric.MEMORY_WORKING_SET_BYTES: Sample(values=(2048.0,), timestamps=(AT,)),
    UsageMetric.NETWORK_RX_BYTES: Sample(values=(10.0,), timestamps=(AT,)),
    UsageMetric.FS_USED_BYTES: Sample(values=(100.0,), timestamps=(AT,)),
    UsageMetric.FS_CAPACITY_BYTES: Sample(values=(1000.0,), timestamps=(AT,)),
    UsageMetric.GPU_UTILIZATION: Sample(values=(42.0,), timestamps=(AT,)),
}


def figures_of(uid: str) -> dict[UsageMetric, Sample]:
    return FIGURES if uid == "uid-train" else {}


def test_summary_carries_usage_per_pod_split_across_containers_and_node_totals() -> None:
    document = summary(
        "node", AT, [pod("train", ["main", "side"]), pod("new", ["main"])], figures_of, AT
    )
    train, new = document["pods"]
    assert train["cpu"] == {
        "time": "2026-01-01T12:00:00Z",
        "usageNanoCores": 1_500_000_000,
        "usageCoreNanoSeconds": 300_000_000_000,
    }
    assert train["memory"]["workingSetBytes"] == 2048
    assert train["network"]["rxBytes"] == 10
    assert train["ephemeral-storage"] == {
        "time": "2026-01-01T12:00:00Z",
        "usedBytes": 100,
        "capacityBytes": 1000,
        "availableBytes": 900,
    }
    main = train["containers"][0]
    assert main["cpu"]["usageNanoCores"] == 750_000_000
    assert main["memory"]["workingSetBytes"] == 1024
    assert main["accelerators"][0]["dutyCycle"] == 42
    assert "cpu" not in new, "a pod without figures yet has none"
    assert new["containers"] == [{"name": "main", "startTime": "2026-01-01T11:00:05Z"}]
    assert document["node"]["cpu"]["usageNanoCores"] == 1_500_000_000
    assert document["node"]["memory"]["workingSetBytes"] == 2048


def test_resource_metrics_are_the_kubelets_prometheus_series() -> None:
    text = resource_metrics([pod("train", ["main"])], figures_of, AT)
    stamp = int(AT.timestamp() * 1000)
    lines = text.splitlines()
    assert "# TYPE container_cpu_usage_seconds_total counter" in lines
    labels = '{container="main",namespace="ml",pod="train"}'
    assert f"container_cpu_usage_seconds_total{labels} 300 {stamp}" in lines
    assert f"container_memory_working_set_bytes{labels} 2048 {stamp}" in lines
    assert f'pod_cpu_usage_seconds_total{{namespace="ml",pod="train"}} 300 {stamp}' in lines
    assert f"node_memory_working_set_bytes 2048 {stamp}" in lines
    assert "scrape_error 0" in lines
    assert text.endswith("\n")
