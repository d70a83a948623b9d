"""A small seeded chaos run on the real stack: fuzzed pods, each kill once, dropped watches, 410s,
throttling and capacity errors. It fails on any duplicate, leaked or wrongly launched instance,
any valid pod that does not run and any invalid pod that is not told. The stall figure is
printed, not asserted (tests never assert wall-clock speed); `make chaos` runs 100+ pods."""

from __future__ import annotations

import json

import pytest

from tests.chaos.runner import ChaosOptions, format_figures, run_chaos

pytestmark = pytest.mark.slow

SEED = 1
"""Draws 8 valid and 2 malformed pods, and puts every disruption inside the burst."""


@pytest.mark.timeout(240)
def test_small_chaos_run_converges_without_duplicates_leaks_or_silent_pods() -> None:
    lines: list[str] = []
    report = run_chaos(ChaosOptions(pods=10, seed=SEED, say=lines.append))
    print(format_figures(report))  # shown with -s or on failure
    print(json.dumps(report, indent=2))

    assert report["failures"] == [], "\n".join(lines)
    assert report["ok"]
    assert report["invalid_pods"] >= 1
    assert report["pods_converged"] == report["valid_pods"] > 0
    assert report["invalid_pods_told"] == report["invalid_pods"]
    assert report["duplicate_instances"] == 0
    assert report["leaked_instances"] == 0
    assert report["instances_for_invalid_pods"] == 0
    assert report["teardown_complete"]
    assert report["processes_left_after_stop"] == []
    kinds = sorted(d["kind"] for d in report["disruptions"])
    assert kinds == ["temporal", "watch-drop", "watcher", "worker"]
    drop = next(d for d in report["disruptions"] if d["kind"] == "watch-drop")
    assert "relisted" in drop["detail"]
    assert report["watch_restarts"]["expired_410"] >= 1
    assert report["unplanned_restarts"] == {}
    assert "plan_launch+launch_instance" in report["stall_after_worker_kill_s"]
