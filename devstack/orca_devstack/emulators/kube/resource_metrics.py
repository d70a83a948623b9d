"""`metrics.k8s.io/v1beta1` as metrics-server serves it, from the nodes' kubelets.

metrics-server scrapes every node's kubelet `/metrics/resource` (Prometheus text) with a client
certificate the kubelet trusts, keeps the two newest samples of each cumulative CPU counter and
reports CPU as their rate, memory as the newest working set. The emulator does the same on
demand: each `metrics.k8s.io` request scrapes every node with a kubelet endpoint (the API
server's kubelet client certificate, as for logs), at most once per `MIN_SCRAPE_SECONDS`, so the
first request after a pod starts may find no rate yet (metrics-server answers the same way until
its second scrape). `PodMetrics` carry the pod's running containers; `NodeMetrics` the node's
totals.

Parsing and the rate arithmetic are pure functions; `MetricsScraper` keeps the samples.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

GROUP = "metrics.k8s.io"
VERSION = "v1beta1"
API_VERSION = f"{GROUP}/{VERSION}"
MIN_SCRAPE_SECONDS = 0.5

RESOURCES: dict[str, dict[str, Any]] = {
    "nodes": {
        "name": "nodes",
        "singularName": "",
        "namespaced": False,
        "kind": "NodeMetrics",
        "verbs": ["get", "list"],
    },
    "pods": {
        "name": "pods",
        "singularName": "",
        "namespaced": True,
        "kind": "PodMetrics",
        "verbs": ["get", "list"],
    },
}

_SAMPLE = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)"
    r"(?:\s+(?P<stamp>-?\d+))?\s*$"
)
_LABEL = re.compile(r'(?P<key>[a-zA-Z_][a-zA-Z0-9_]*)="(?P<value>(?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class PromSample:
    name: str
    labels: tuple[tuple[str, str], ...]
    value: float
    timestamp_ms: int | None

    def label(self, key: str) -> str:
        return dict(self.labels).get(key, "")


def parse_exposition(text: str) -> list[PromSample]:
    """The samples of a Prometheus text exposition (comments and malformed lines skipped)."""
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        labels = tuple(
            (m["key"], m["value"].replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\"))
            for m in _LABEL.finditer(match["labels"] or "")
        )
        try:
            value = float(match["value"])
        except ValueError:
            continue
        stamp = int(match["stamp"]) if match["stamp"] else None
        samples.append(PromSample(match["name"], labels, value, stamp))
    return samples


@dataclass
class Point:
    value: float
    at: float
    """Seconds since the epoch."""


def rate(previous: Point | None, latest: Point) -> float | None:
    """Per-second increase between two samples; None without an earlier sample or on a reset."""
    if previous is None or latest.at <= previous.at or latest.value < previous.value:
        return None
    return (latest.value - previous.value) / (latest.at - previous.at)


def cpu_quantity(cores: float) -> str:
    return f"{max(0, round(cores * 1e9))}n"


def memory_quantity(size: float) -> str:
    return f"{max(0, round(size / 1024))}Ki"


def _rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _Series:
    previous: Point | None = None
    latest: Point | None = None

    def add(self, point: Point) -> None:
        if self.latest is not None and point.at == self.latest.at:
            self.latest = point
            return
        if self.latest is not None and point.at < self.latest.at:
            return
        self.previous, self.latest = self.latest, point

    @property
    def window(self) -> float:
        if self.previous is None or self.latest is None:
            return 0.0
        return self.latest.at - self.previous.at


@dataclass
class NodeSamples:
    """Everything kept from one node's scrapes, by series key."""

    series: dict[tuple[str, ...], _Series] = field(default_factory=dict)
    containers: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    """(namespace, pod) → containers seen in the newest scrape."""

    def add(self, samples: Iterable[PromSample], now: float) -> None:
        containers: dict[tuple[str, str], list[str]] = {}
        for sample in samples:
            at = sample.timestamp_ms / 1000 if sample.timestamp_ms is not None else now
            if sample.name in (
                "container_cpu_usage_seconds_total",
                "container_memory_working_set_bytes",
            ):
                pod = (sample.label("namespace"), sample.label("pod"))
                names = containers.setdefault(pod, [])
                if sample.label("container") not in names:
                    names.append(sample.label("container"))
                key: tuple[str, ...] = (sample.name, *pod, sample.label("container"))
            elif sample.name in ("node_cpu_usage_seconds_total", "node_memory_working_set_bytes"):
                key = (sample.name,)
            else:
                continue
            self.series.setdefault(key, _Series()).add(Point(sample.value, at))
        self.containers = containers

    def container_usage(self, namespace: str, pod: str, container: str) -> dict[str, Any] | None:
        cpu = self.series.get(("container_cpu_usage_seconds_total", namespace, pod, container))
        memory = self.series.get(("container_memory_working_set_bytes", namespace, pod, container))
        if cpu is None or cpu.latest is None or memory is None or memory.latest is None:
            return None
        cores = rate(cpu.previous, cpu.latest)
        if cores is None:
            return None
        return {
            "cpu": cpu_quantity(cores),
            "memory": memory_quantity(memory.latest.value),
            "_at": cpu.latest.at,
            "_window": cpu.window,
        }

    def node_usage(self) -> dict[str, Any] | None:
        cpu = self.series.get(("node_cpu_usage_seconds_total",))
        memory = self.series.get(("node_memory_working_set_bytes",))
        if cpu is None or cpu.latest is None or memory is None or memory.latest is None:
            return None
        cores = rate(cpu.previous, cpu.latest)
        if cores is None:
            return None
        return {
            "usage": {
                "cpu": cpu_quantity(cores),
                "memory": memory_quantity(memory.latest.value),
            },
            "timestamp": _rfc3339(cpu.latest.at),
            "window": f"{max(1, round(cpu.window))}s",
        }


def pod_metrics(pod: dict[str, Any], samples: NodeSamples | None) -> dict[str, Any] | None:
    """The pod's PodMetrics, or None while some running container has no rate yet."""
    metadata = pod.get("metadata") or {}
    namespace, name = str(metadata.get("namespace")), str(metadata.get("name"))
    if samples is None:
        return None
    names = samples.containers.get((namespace, name))
    if not names:
        return None
    containers, stamps, windows = [], [], []
    for container in names:
        usage = samples.container_usage(namespace, name, container)
        if usage is None:
            return None
        stamps.append(usage.pop("_at"))
        windows.append(usage.pop("_window"))
        containers.append({"name": container, "usage": usage})
    return {
        "kind": "PodMetrics",
        "apiVersion": API_VERSION,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "creationTimestamp": _rfc3339(time.time()),
            "labels": dict(metadata.get("labels") or {}),
        },
        "timestamp": _rfc3339(max(stamps)),
        "window": f"{max(1, round(max(windows)))}s",
        "containers": containers,
    }


def node_metrics(node: dict[str, Any], samples: NodeSamples | None) -> dict[str, Any] | None:
    metadata = node.get("metadata") or {}
    usage = samples.node_usage() if samples is not None else None
    if usage is None:
        return None
    return {
        "kind": "NodeMetrics",
        "apiVersion": API_VERSION,
        "metadata": {
            "name": metadata.get("name"),
            "creationTimestamp": _rfc3339(time.time()),
            "labels": dict(metadata.get("labels") or {}),
        },
        **usage,
    }


def metrics_list(kind: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"kind": f"{kind}List", "apiVersion": API_VERSION, "metadata": {}, "items": items}


class MetricsScraper:
    """Scrapes kubelets' `/metrics/resource` and keeps each node's samples."""

    def __init__(self, fetch: Callable[[dict[str, Any]], str]) -> None:
        """`fetch(node)` returns the node's `/metrics/resource` text or raises."""
        self._fetch = fetch
        self._nodes: dict[str, NodeSamples] = {}
        self._scraped: dict[str, float] = {}
        self._lock = threading.Lock()

    def samples(self, node: dict[str, Any]) -> NodeSamples | None:
        """The node's samples after scraping it (unless just scraped); None if it never
        answered."""
        name = str((node.get("metadata") or {}).get("name"))
        now = time.time()
        with self._lock:
            due = now - self._scraped.get(name, 0.0) >= MIN_SCRAPE_SECONDS
        if due:
            try:
                text = self._fetch(node)
            except Exception:
                text = None
            with self._lock:
                self._scraped[name] = now
                if text is not None:
                    self._nodes.setdefault(name, NodeSamples()).add(parse_exposition(text), now)
        with self._lock:
            return self._nodes.get(name)
