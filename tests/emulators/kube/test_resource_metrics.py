"""metrics.k8s.io from kubelet /metrics/resource text: parsing and rates (pure)."""

from __future__ import annotations

from orca_devstack.emulators.kube.resource_metrics import (
    NodeSamples,
    Point,
    node_metrics,
    parse_exposition,
    pod_metrics,
    rate,
)

LABELS = '{container="main",namespace="ml",pod="p"}'


def scrape(cpu: float, stamp_ms: int) -> str:
    return "\n".join(
        [
            "# HELP container_cpu_usage_seconds_total [STABLE] ...",
            "# TYPE container_cpu_usage_seconds_total counter",
            f"container_cpu_usage_seconds_total{LABELS} {cpu} {stamp_ms}",
            f"container_memory_working_set_bytes{LABELS} 1048576 {stamp_ms}",
            f"node_cpu_usage_seconds_total {cpu} {stamp_ms}",
            f"node_memory_working_set_bytes 1048576 {stamp_ms}",
            "scrape_error 0",
            "",
        ]
    )


def test_exposition_lines_parse_with_labels_and_timestamps() -> None:
    samples = parse_exposition(scrape(12.5, 1000) + 'x{a="q\\"uote"} 1\nbroken line here\n')
    first = samples[0]
    assert first.name == "container_cpu_usage_seconds_total"
    assert first.label("pod") == "p"
    assert first.value == 12.5
    assert first.timestamp_ms == 1000
    assert samples[-1].label("a") == 'q"uote'
    assert samples[-1].timestamp_ms is None


def test_rate_needs_two_samples_and_no_counter_reset() -> None:
    assert rate(None, Point(10, 5)) is None
    assert rate(Point(10, 5), Point(4, 6)) is None
    assert rate(Point(10, 5), Point(10, 5)) is None
    assert rate(Point(10, 5), Point(14, 7)) == 2.0


def test_pod_and_node_metrics_come_from_the_two_newest_samples() -> None:
    pod = {"metadata": {"name": "p", "namespace": "ml", "labels": {"app": "x"}}}
    node = {"metadata": {"name": "n"}}
    samples = NodeSamples()
    samples.add(parse_exposition(scrape(10.0, 1_000_000)), now=1000)
    assert pod_metrics(pod, samples) is None, "one sample gives no rate yet"
    samples.add(parse_exposition(scrape(10.0, 1_000_000)), now=1001)
    assert pod_metrics(pod, samples) is None, "the same datapoint again is not a second sample"
    samples.add(parse_exposition(scrape(13.0, 1_002_000)), now=1002)
    metrics = pod_metrics(pod, samples)
    assert metrics is not None
    assert metrics["containers"] == [
        {"name": "main", "usage": {"cpu": "1500000000n", "memory": "1024Ki"}}
    ]
    assert metrics["window"] == "2s"
    assert metrics["metadata"]["labels"] == {"app": "x"}
    node_view = node_metrics(node, samples)
    assert node_view is not None
    assert node_view["usage"] == {"cpu": "1500000000n", "memory": "1024Ki"}
