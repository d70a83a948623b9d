"""The burst benchmark's core runs end to end on the real stack with three pods and reports every
figure. Only the report's shape is checked: tests never assert wall-clock speed."""

from __future__ import annotations

import json

import pytest

from benchmarks.burst import REPORT_FIELDS, BurstOptions, format_table, run_burst

pytestmark = pytest.mark.slow


@pytest.mark.timeout(120)
def test_burst_with_three_pods_reports_every_field() -> None:
    report = run_burst(BurstOptions(pods=3, steady_intervals=3, say=lambda _line: None))

    missing = [name for name in REPORT_FIELDS if name not in report]
    assert missing == []
    json.dumps(report)  # the report is plain JSON
    assert report["pods"] == 3
    assert report["pods_running"] == 3
    for key in ("creation_to_launch_s", "creation_to_running_s"):
        assert set(report[key]) >= {"p50", "p95", "p99"}
        assert report[key]["p50"] is not None
    assert "ec2:RunInstances" in report["aws_calls_per_pod_to_running"]
    assert set(report["describe_instances"]) >= {
        "max_per_interval_to_running",
        "per_interval_steady",
        "target_per_interval",
    }
    assert report["activities_per_pod_to_running"] > 0
    # Pod status writes and events are local activities, counted from their markers.
    assert (
        0 < report["local_activities_per_pod_to_running"] < report["activities_per_pod_to_running"]
    )
    assert report["describe_instances"]["poll_rounds_to_running"] > 0
    assert report["history_events_per_pod_at_running"]["p50"] is not None
    assert report["history_bytes_per_pod_at_running"]["p50"] > 0
    parts = report["history_bytes_by_part_at_running"]
    assert {"start", "plan_launch input", "launch_instance input"} <= set(parts)
    # The parts are per-pod means: their sum lies within the pods' range (rounding aside).
    assert 0 < sum(parts.values()) <= report["history_bytes_per_pod_at_running"]["max"] + len(parts)
    assert set(report["peak_rss_mib"]) == {"worker", "watcher"}
    assert set(report["peak_rss_mib_per_1000_pods"]) == {"worker", "watcher"}
    assert report["cpu_seconds_per_pod_to_running"]["worker"] > 0
    assert 0 < report["aws_emulator_cpu_share"] < 1
    # The same-shape baseline timed its launch-equivalent step, so the ratio exists.
    assert report["baseline_same_shape"]["start_to_launch_equivalent_s"]["p95"] > 0
    assert report["creation_to_launch_p95_vs_same_shape"] is not None
    assert report["baseline"] is not None
    assert report["baseline"]["completed"] == 3
    assert report["throughput_ratio"] is not None
    same_shape = report["baseline_same_shape"]
    assert same_shape is not None
    assert same_shape["completed"] == 3
    assert (
        same_shape["local_activities_per_workflow"] == report["local_activities_per_pod_to_running"]
    )
    assert report["throughput_ratio_same_shape"] is not None
    assert set(report["targets"].values()) - {"PASS", "MISS"} <= {0.8, 1, 1.5, 6_100}
    assert report["processes_left_after_stop"] == []
    assert "throughput vs baseline" in format_table(report)
