"""The kubelet's two usage formats, rendered from the pods' CloudWatch figures (pure).

- `summary`: the Summary API (`/stats/summary`, `k8s.io/kubelet/pkg/apis/stats/v1alpha1`): per
  pod `cpu` (usageNanoCores, usageCoreNanoSeconds), `memory` (workingSetBytes), `network`
  (rxBytes, txBytes), `ephemeral-storage` (usedBytes, capacityBytes), per container the same
  cpu and memory and `accelerators` (NVIDIA: dutyCycle, memoryUsed), and the node's totals;
- `resource_metrics`: `/metrics/resource` in the Prometheus text format, as the kubelet serves it
  to metrics-server: `container_cpu_usage_seconds_total`, `container_memory_working_set_bytes`,
  `container_start_time_seconds`, `pod_cpu_usage_seconds_total`,
  `pod_memory_working_set_bytes`, `node_cpu_usage_seconds_total`,
  `node_memory_working_set_bytes` and `scrape_error`, each sample with its datapoint's time.

The instance measures the pod as a whole (docs/stats.md); a pod's figures are split evenly across
its running containers, so container rows add up to the pod's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from orca.usage_metrics import UsageMetric
from orca.usage_queries import Sample

PodFigures = dict[UsageMetric, Sample]


def _time(at: datetime | None) -> str | None:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if at else None


def _value(figures: PodFigures, metric: UsageMetric) -> float | None:
    sample = figures.get(metric)
    return sample.latest if sample else None


def _at(figures: PodFigures, metric: UsageMetric) -> datetime | None:
    sample = figures.get(metric)
    return sample.latest_at if sample else None


def running_containers(pod: dict[str, Any]) -> list[tuple[str, str | None]]:
    """(name, startedAt) of the pod's running containers."""
    found = []
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        running = (status.get("state") or {}).get("running")
        if running is not None:
            found.append((str(status.get("name")), running.get("startedAt")))
    return found


def _cpu(figures: PodFigures, share: float) -> dict[str, Any] | None:
    cores = _value(figures, UsageMetric.CPU_USAGE_CORES)
    seconds = _value(figures, UsageMetric.CPU_USAGE_SECONDS)
    if cores is None and seconds is None:
        return None
    stats: dict[str, Any] = {
        "time": _time(
            _at(figures, UsageMetric.CPU_USAGE_CORES) or _at(figures, UsageMetric.CPU_USAGE_SECONDS)
        )
    }
    if cores is not None:
        stats["usageNanoCores"] = round(cores * 1e9 * share)
    if seconds is not None:
        stats["usageCoreNanoSeconds"] = round(seconds * 1e9 * share)
    return stats


def _memory(figures: PodFigures, share: float) -> dict[str, Any] | None:
    working_set = _value(figures, UsageMetric.MEMORY_WORKING_SET_BYTES)
    if working_set is None:
        return None
    return {
        "time": _time(_at(figures, UsageMetric.MEMORY_WORKING_SET_BYTES)),
        "workingSetBytes": round(working_set * share),
        "usageBytes": round(working_set * share),
    }


def _accelerators(figures: PodFigures, share: float) -> list[dict[str, Any]]:
    utilization = _value(figures, UsageMetric.GPU_UTILIZATION)
    if utilization is None:
        return []
    memory = _value(figures, UsageMetric.GPU_MEMORY_USED_BYTES)
    return [
        {
            "make": "nvidia",
            "model": "",
            "id": "all",
            "memoryTotal": 0,
            "memoryUsed": round((memory or 0) * share),
            "dutyCycle": round(utilization),
        }
    ]


def pod_summary(pod: dict[str, Any], figures: PodFigures) -> dict[str, Any]:
    metadata = pod.get("metadata") or {}
    status = pod.get("status") or {}
    running = running_containers(pod)
    share = 1 / len(running) if running else 1.0
    containers = []
    for name, started in running:
        container: dict[str, Any] = {"name": name, "startTime": started or status.get("startTime")}
        for key, stats in (("cpu", _cpu(figures, share)), ("memory", _memory(figures, share))):
            if stats is not None:
                container[key] = stats
        accelerators = _accelerators(figures, share)
        if accelerators:
            container["accelerators"] = accelerators
        containers.append(container)
    summary: dict[str, Any] = {
        "podRef": {
            "name": metadata.get("name"),
            "namespace": metadata.get("namespace"),
            "uid": metadata.get("uid"),
        },
        "startTime": status.get("startTime") or metadata.get("creationTimestamp"),
        "containers": containers,
    }
    cpu, memory = _cpu(figures, 1.0), _memory(figures, 1.0)
    if cpu is not None:
        summary["cpu"] = cpu
    if memory is not None:
        summary["memory"] = memory
    rx, tx = (
        _value(figures, UsageMetric.NETWORK_RX_BYTES),
        _value(figures, UsageMetric.NETWORK_TX_BYTES),
    )
    if rx is not None or tx is not None:
        interface = {"name": "eth0", "rxBytes": round(rx or 0), "txBytes": round(tx or 0)}
        summary["network"] = {
            "time": _time(_at(figures, UsageMetric.NETWORK_RX_BYTES)),
            **interface,
            "interfaces": [interface],
        }
    used, capacity = (
        _value(figures, UsageMetric.FS_USED_BYTES),
        _value(figures, UsageMetric.FS_CAPACITY_BYTES),
    )
    if used is not None:
        storage: dict[str, Any] = {
            "time": _time(_at(figures, UsageMetric.FS_USED_BYTES)),
            "usedBytes": round(used),
        }
        if capacity is not None:
            storage["capacityBytes"] = round(capacity)
            storage["availableBytes"] = max(0, round(capacity - used))
        summary["ephemeral-storage"] = storage
    return summary


def summary(
    node_name: str,
    node_start: datetime,
    pods: Iterable[dict[str, Any]],
    figures_of: Callable[[str], PodFigures],
    now: datetime,
) -> dict[str, Any]:
    """The Summary API document of the node and its pods."""
    rows = [
        pod_summary(pod, figures_of(str((pod.get("metadata") or {}).get("uid")))) for pod in pods
    ]
    node: dict[str, Any] = {
        "nodeName": node_name,
        "startTime": _time(node_start),
        "systemContainers": [],
    }
    cpu_rows = [r["cpu"] for r in rows if "cpu" in r]
    memory_rows = [r["memory"] for r in rows if "memory" in r]
    node["cpu"] = {
        "time": _time(now),
        "usageNanoCores": sum(c.get("usageNanoCores", 0) for c in cpu_rows),
        "usageCoreNanoSeconds": sum(c.get("usageCoreNanoSeconds", 0) for c in cpu_rows),
    }
    node["memory"] = {
        "time": _time(now),
        "workingSetBytes": sum(m["workingSetBytes"] for m in memory_rows),
        "usageBytes": sum(m["usageBytes"] for m in memory_rows),
    }
    return {"node": node, "pods": rows}


_HELP = {
    "container_cpu_usage_seconds_total": (
        "counter",
        "[STABLE] Cumulative cpu time consumed by the container in core-seconds",
    ),
    "container_memory_working_set_bytes": (
        "gauge",
        "[STABLE] Current working set of the container in bytes",
    ),
    "container_start_time_seconds": (
        "gauge",
        "[STABLE] Start time of the container since unix epoch in seconds",
    ),
    "node_cpu_usage_seconds_total": (
        "counter",
        "[STABLE] Cumulative cpu time consumed by the node in core-seconds",
    ),
    "node_memory_working_set_bytes": ("gauge", "[STABLE] Current working set of the node in bytes"),
    "pod_cpu_usage_seconds_total": (
        "counter",
        "[STABLE] Cumulative cpu time consumed by the pod in core-seconds",
    ),
    "pod_memory_working_set_bytes": ("gauge", "[STABLE] Current working set of the pod in bytes"),
    "scrape_error": (
        "gauge",
        "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise",
    ),
}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _number(value: float) -> str:
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def _epoch(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def resource_metrics(
    pods: Iterable[dict[str, Any]],
    figures_of: Callable[[str], PodFigures],
    now: datetime,
    scrape_error: bool = False,
) -> str:
    """`/metrics/resource` in the Prometheus text exposition format (version 0.0.4)."""
    series: dict[str, list[str]] = {name: [] for name in _HELP}
    node_cpu = node_memory = 0.0
    newest: datetime | None = None
    for pod in pods:
        metadata = pod.get("metadata") or {}
        namespace, name = str(metadata.get("namespace")), str(metadata.get("name"))
        figures = figures_of(str(metadata.get("uid")))
        running = running_containers(pod)
        share = 1 / len(running) if running else 1.0
        seconds = figures.get(UsageMetric.CPU_USAGE_SECONDS)
        memory = figures.get(UsageMetric.MEMORY_WORKING_SET_BYTES)
        for container, started in running:
            labels = _labels(container=container, namespace=namespace, pod=name)
            if seconds and seconds.latest is not None and seconds.latest_at:
                stamp = int(seconds.latest_at.timestamp() * 1000)
                value = _number(seconds.latest * share)
                series["container_cpu_usage_seconds_total"].append(
                    f"container_cpu_usage_seconds_total{labels} {value} {stamp}"
                )
            if memory and memory.latest is not None and memory.latest_at:
                stamp = int(memory.latest_at.timestamp() * 1000)
                value = _number(round(memory.latest * share))
                series["container_memory_working_set_bytes"].append(
                    f"container_memory_working_set_bytes{labels} {value} {stamp}"
                )
            start = _epoch(started)
            if start is not None:
                series["container_start_time_seconds"].append(
                    f"container_start_time_seconds{labels} {_number(start)}"
                )
        labels = _labels(namespace=namespace, pod=name)
        if seconds and seconds.latest is not None and seconds.latest_at:
            node_cpu += seconds.latest
            newest = max(newest or seconds.latest_at, seconds.latest_at)
            series["pod_cpu_usage_seconds_total"].append(
                f"pod_cpu_usage_seconds_total{labels} {_number(seconds.latest)} "
                f"{int(seconds.latest_at.timestamp() * 1000)}"
            )
        if memory and memory.latest is not None and memory.latest_at:
            node_memory += memory.latest
            series["pod_memory_working_set_bytes"].append(
                f"pod_memory_working_set_bytes{labels} {_number(round(memory.latest))} "
                f"{int(memory.latest_at.timestamp() * 1000)}"
            )
    stamp = int((newest or now).timestamp() * 1000)  # the node's counter moves with its pods'
    series["node_cpu_usage_seconds_total"].append(
        f"node_cpu_usage_seconds_total {_number(node_cpu)} {stamp}"
    )
    series["node_memory_working_set_bytes"].append(
        f"node_memory_working_set_bytes {_number(round(node_memory))} {stamp}"
    )
    series["scrape_error"].append(f"scrape_error {1 if scrape_error else 0}")
    lines = []
    for metric, samples in series.items():
        kind, text = _HELP[metric]
        lines.append(f"# HELP {metric} {text}")
        lines.append(f"# TYPE {metric} {kind}")
        lines.extend(samples)
    return "\n".join(lines) + "\n"
