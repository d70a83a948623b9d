"""deploy/monitoring/: the Grafana dashboard and the Prometheus alert rules parse, and every
metric and label they query exists in orca/metrics.py, so they cannot drift from the code."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import DEPLOY
from tests.deploy.test_metrics_docs import defined_metrics

MONITORING = DEPLOY / "monitoring"
DASHBOARD = MONITORING / "orca-cost-dashboard.json"
ALERTS = MONITORING / "orca-alerts.yaml"

_METRIC = re.compile(r"\b(orca_[a-z0-9_]+)(\{[^}]*\})?")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
_GRAFANA_VARIABLES = re.compile(r"\$(?:__\w+|\w+)|\$\{\w+\}")


def exposed_series() -> dict[str, tuple[str, ...]]:
    """Every series name Prometheus sees, with its labels (histograms: their three series)."""
    series: dict[str, tuple[str, ...]] = {}
    for name, metric in defined_metrics().items():
        series[name] = metric.labels
        if metric.type == "histogram":
            for suffix in _HISTOGRAM_SUFFIXES:
                series[name + suffix] = (*metric.labels, *(("le",) if suffix == "_bucket" else ()))
    return series


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def alert_rules() -> list[dict[str, Any]]:
    loaded = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    expressions = [
        target["expr"] for panel in dashboard()["panels"] for target in panel.get("targets", [])
    ]
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            expressions.append(variable["query"]["query"])
    return expressions


def every_expression() -> list[str]:
    return dashboard_expressions() + [rule["expr"] for rule in alert_rules()]


def check_expression(expression: str) -> list[str]:
    """What in one PromQL expression names a metric or label orca/metrics.py does not have."""
    series = exposed_series()
    problems: list[str] = []
    used = _METRIC.findall(expression)
    if not used:
        problems.append(f"queries no ORCA metric: {expression}")
    labels_in_use: set[str] = set()
    for name, matchers in used:
        if name not in series:
            problems.append(f"{name} is not in orca/metrics.py")
            continue
        for label in _MATCHER.findall(matchers):
            if label not in series[name]:
                problems.append(f"{name} has no label {label}")
        labels_in_use.update(series[name])
    for grouping in _GROUPING.findall(expression):
        for label in filter(None, (part.strip() for part in grouping.split(","))):
            if label not in labels_in_use | {"pod", "instance", "job", "component"}:
                problems.append(f"grouping by {label}, which none of its metrics has")
    return problems


def test_the_checker_catches_an_unknown_metric_and_label() -> None:
    assert check_expression("max(orca_hourly_cost_dollars)") == []
    assert check_expression("max(orca_no_such_thing)") == [
        "orca_no_such_thing is not in orca/metrics.py"
    ]
    assert check_expression('max(orca_spend_dollars{zone="a"})') == [
        "orca_spend_dollars has no label zone"
    ]
    assert check_expression("max by (color) (orca_launches_held)") == [
        "grouping by color, which none of its metrics has"
    ]


@pytest.mark.parametrize("expression", every_expression())
def test_every_query_names_metrics_and_labels_that_exist(expression: str) -> None:
    assert check_expression(_GRAFANA_VARIABLES.sub("x", expression)) == []


def test_the_dashboard_has_the_panels_and_variables_a_team_needs() -> None:
    board = dashboard()
    variables = {v["name"] for v in board["templating"]["list"]}
    assert {"datasource", "namespace", "team"} <= variables
    titles = " | ".join(p["title"].lower() for p in board["panels"])
    for wanted in (
        "hourly cost",
        "spend today",
        "spend this month",
        "budget remaining",
        "launches held",
        "running instances",
    ):
        assert wanted in titles, wanted
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    filtered = [e for e in dashboard_expressions() if "orca_pod_cost_dollars{" in e]
    assert filtered
    assert all('namespace=~"$namespace"' in e for e in filtered)


def test_every_alert_has_a_duration_severity_and_summary() -> None:
    rules = alert_rules()
    names = {rule["alert"] for rule in rules}
    assert {"OrcaBudgetNearlyUsed", "OrcaLaunchesHeld", "OrcaLedgerMetricsAbsent"} <= names
    for rule in rules:
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
    nearly = next(r for r in rules if r["alert"] == "OrcaBudgetNearlyUsed")
    assert ">= 0.8" in nearly["expr"]
    held = next(r for r in rules if r["alert"] == "OrcaLaunchesHeld")
    assert held["for"] == "10m"
