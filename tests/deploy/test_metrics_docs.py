"""docs/metrics.md documents every metric in orca/metrics.py, with its type and labels, and
nothing that no longer exists. Adding a metric without documenting it fails here."""

from __future__ import annotations

import re
from dataclasses import dataclass

from prometheus_client.metrics import MetricWrapperBase

from orca import metrics
from tests.deploy.conftest import REPO

DOC = REPO / "docs" / "metrics.md"
_HEADING = re.compile(r"^### `?(orca_[a-z0-9_]+)`?\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Defined:
    name: str
    """As exposed: counters carry `_total`."""
    type: str
    labels: tuple[str, ...]


def defined_metrics() -> dict[str, Defined]:
    found: dict[str, Defined] = {}
    for value in vars(metrics).values():
        if not isinstance(value, MetricWrapperBase):
            continue
        kind = str(value._type)
        name = value._name + ("_total" if kind == "counter" else "")
        found[name] = Defined(name, kind, tuple(value._labelnames))
    return found


def documented_sections() -> dict[str, str]:
    text = DOC.read_text()
    headings = list(_HEADING.finditer(text))
    sections: dict[str, str] = {}
    for index, match in enumerate(headings):
        end = headings[index + 1].start() if index + 1 < len(headings) else len(text)
        sections[match.group(1)] = text[match.end() : end]
    return sections


def test_orca_metrics_defines_some_metrics() -> None:
    assert "orca_launches_total" in defined_metrics()


def test_every_metric_is_documented_with_its_type_labels_and_a_query() -> None:
    sections = documented_sections()
    undocumented = sorted(set(defined_metrics()) - set(sections))
    assert not undocumented, f"document these in docs/metrics.md: {undocumented}"
    for name, metric in defined_metrics().items():
        section = sections[name]
        assert re.search(rf"\*\*Type\*\*:?\s*{metric.type}\b", section, re.IGNORECASE), name
        for label in metric.labels:
            assert f"`{label}`" in section, f"{name}: label {label} is not documented"
        assert "```promql" in section, f"{name}: give an example PromQL query"


def test_no_metric_is_documented_that_does_not_exist() -> None:
    stale = sorted(set(documented_sections()) - set(defined_metrics()))
    assert not stale, f"docs/metrics.md documents metrics orca/metrics.py no longer has: {stale}"
