"""Usage figures for the emulated containers, as an instance's CloudWatch agent publishes them.

Every ``metrics_interval_s`` the emulator puts one datapoint of each metric of
``orca.usage_metrics`` into moto's CloudWatch for every pod whose main containers are running, on
the pod dimension. The figures follow emulator-only pod annotations, in percent of what the pod
requests (its containers' ``resources.requests``, limits standing in for missing requests):

* ``emulator.orca.research/cpu-utilization``: CPU in use (default 80);
* ``emulator.orca.research/memory-bytes``: working set in bytes (default half the memory request,
  or 256 MiB without one);
* ``emulator.orca.research/gpu-utilization``: utilization of the pod's GPUs or Neuron cores
  (default 90); published only for a pod that requests ``nvidia.com/gpu`` (GPU metrics) or
  ``aws.amazon.com/neuron`` / ``aws.amazon.com/neuroncore`` (Neuron core utilization).

Cumulative figures (CPU seconds, network bytes) grow from the pod's start. Datapoints older than
``METRICS_RETENTION_SECONDS`` are dropped so a long ``orca dev`` keeps a bounded store.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from orca.units import parse_quantity
from orca.usage_metrics import NAMESPACE, POD_DIMENSION, UNITS, UsageMetric, pod_dimension_value
from orca_devstack.emulators.aws.containers import ANNOTATION_PREFIX
from orca_devstack.emulators.aws.lifecycle import Scheduler, Timer

CPU_UTILIZATION = ANNOTATION_PREFIX + "cpu-utilization"
MEMORY_BYTES = ANNOTATION_PREFIX + "memory-bytes"
GPU_UTILIZATION = ANNOTATION_PREFIX + "gpu-utilization"

BUSY_CPU_PERCENT = 80.0
BUSY_ACCELERATOR_PERCENT = 90.0
DEFAULT_MEMORY_BYTES = 256 * 2**20
FS_CAPACITY_BYTES = 100 * 2**30
GPU_MEMORY_BYTES = 16 * 2**30
GPU_POWER_WATTS = 300.0
NETWORK_BYTES_PER_SECOND = 64 * 1024
METRICS_RETENTION_SECONDS = 3600
NEURON_RESOURCES = ("aws.amazon.com/neuron", "aws.amazon.com/neuroncore")


@dataclass(frozen=True)
class PodRequests:
    cpu: float = 0.0
    memory: float = 0.0
    gpus: int = 0
    neuron: int = 0

    @classmethod
    def of(cls, manifest: Mapping[str, Any]) -> PodRequests:
        totals: dict[str, Decimal] = {}
        for container in manifest.get("containers") or ():
            for name, value in (container.get("requests") or {}).items():
                try:
                    totals[name] = totals.get(name, Decimal(0)) + parse_quantity(str(value))
                except (ValueError, InvalidOperation):
                    continue
        return cls(
            cpu=float(totals.get("cpu", 0)),
            memory=float(totals.get("memory", 0)),
            gpus=int(totals.get("nvidia.com/gpu", 0)),
            neuron=int(sum(totals.get(name, 0) for name in NEURON_RESOURCES)),
        )


def _percent(annotations: Mapping[str, Any], key: str, default: float) -> float:
    try:
        value = float(str(annotations[key]).strip())
    except (KeyError, ValueError):
        return default
    return value if value >= 0 and math.isfinite(value) else default


@dataclass
class PodFigures:
    """One emulated pod's running totals."""

    namespace: str
    name: str
    uid: str
    annotations: dict[str, str]
    requests: PodRequests
    cpu_seconds: float = 0.0
    network_bytes: float = 0.0
    data: dict[UsageMetric, float] = field(default_factory=dict)

    @property
    def dimension(self) -> str:
        return pod_dimension_value(self.namespace, self.name, self.uid)

    def advance(self, seconds: float) -> dict[UsageMetric, float]:
        """The figures after `seconds` more of running."""
        cpu_percent = _percent(self.annotations, CPU_UTILIZATION, BUSY_CPU_PERCENT)
        cores = cpu_percent / 100 * (self.requests.cpu or 1.0)
        self.cpu_seconds += cores * seconds
        self.network_bytes += NETWORK_BYTES_PER_SECOND * seconds
        memory_default = self.requests.memory / 2 if self.requests.memory else DEFAULT_MEMORY_BYTES
        try:
            memory = float(str(self.annotations[MEMORY_BYTES]).strip())
        except (KeyError, ValueError):
            memory = memory_default
        figures = {
            UsageMetric.CPU_USAGE_CORES: cores,
            UsageMetric.CPU_USAGE_SECONDS: self.cpu_seconds,
            UsageMetric.MEMORY_WORKING_SET_BYTES: memory,
            UsageMetric.NETWORK_RX_BYTES: self.network_bytes,
            UsageMetric.NETWORK_TX_BYTES: self.network_bytes / 2,
            UsageMetric.FS_USED_BYTES: 2 * 2**30,
            UsageMetric.FS_CAPACITY_BYTES: float(FS_CAPACITY_BYTES),
        }
        accelerator = _percent(self.annotations, GPU_UTILIZATION, BUSY_ACCELERATOR_PERCENT)
        if self.requests.gpus:
            figures[UsageMetric.GPU_UTILIZATION] = accelerator
            figures[UsageMetric.GPU_MEMORY_USED_BYTES] = (
                accelerator / 100 * GPU_MEMORY_BYTES * self.requests.gpus
            )
            figures[UsageMetric.GPU_POWER_WATTS] = (
                (0.2 + 0.8 * accelerator / 100) * GPU_POWER_WATTS * self.requests.gpus
            )
        if self.requests.neuron:
            figures[UsageMetric.NEURONCORE_UTILIZATION] = accelerator
        return figures


class MetricSink(Protocol):
    """Where datapoints go (moto's CloudWatch backend, in the emulator); lock held by callers."""

    def put(self, namespace: str, data: list[dict[str, Any]]) -> None: ...

    def prune(self, older_than: timedelta) -> None: ...


class ContainerUsage:
    """Publishes every tracked pod's figures on the scheduler, once per interval."""

    def __init__(
        self,
        sink: MetricSink,
        scheduler: Scheduler,
        *,
        interval: Callable[[], float],
        running: Callable[[], set[str]],
    ) -> None:
        """`running` gives the UIDs of the pods whose main containers run now."""
        self._sink = sink
        self._scheduler = scheduler
        self._interval = interval
        self._running = running
        self.pods: dict[str, PodFigures] = {}
        self._timer: Timer | None = None

    def restart(self) -> None:
        """Forget every pod and publish from now on (after an emulator reset)."""
        self.pods.clear()
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._scheduler.after(self._interval(), self._tick)

    def track(self, manifest: Mapping[str, Any]) -> None:
        """A start command's pod manifest: its containers may soon run."""
        uid = str(manifest.get("uid", ""))
        self.pods[uid] = PodFigures(
            namespace=str(manifest.get("namespace", "")),
            name=str(manifest.get("name", "")),
            uid=uid,
            annotations={str(k): str(v) for k, v in (manifest.get("annotations") or {}).items()},
            requests=PodRequests.of(manifest),
        )

    def publish(self, seconds: float) -> int:
        """One round of datapoints for the running pods; how many were put."""
        running = self._running()
        data: list[dict[str, Any]] = []
        for uid in sorted(running & self.pods.keys()):
            pod = self.pods[uid]
            for metric, value in pod.advance(seconds).items():
                data.append(
                    {
                        "MetricName": metric.value,
                        "Dimensions": [{"Name": POD_DIMENSION, "Value": pod.dimension}],
                        "Value": value,
                        "Unit": UNITS[metric],
                        "StorageResolution": 1,
                    }
                )
        for start in range(0, len(data), 1000):  # PutMetricData's limit per call
            self._sink.put(NAMESPACE, data[start : start + 1000])
        for uid in list(self.pods.keys() - running):
            if uid not in running and self.pods[uid].cpu_seconds:
                del self.pods[uid]  # ran and ended
        self._sink.prune(timedelta(seconds=METRICS_RETENTION_SECONDS))
        return len(data)

    def _tick(self) -> None:
        interval = self._interval()
        self.publish(interval)
        self._timer = self._scheduler.after(interval, self._tick)
