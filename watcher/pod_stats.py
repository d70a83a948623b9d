"""The node's latest usage figures: every running pod's, read from CloudWatch once per interval.

Every `node.statsInterval` one batched read (`orca.usage_reader`: ceil(N x M / 500)
GetMetricData calls for N running pods and the M metrics of `orca.usage_metrics`, never one per
pod) fetches the last few periods of every metric, and the newest datapoint of each is kept. The
kubelet endpoint renders `/stats/summary` and `/metrics/resource` from the kept figures
(`watcher.stats_formats`) and so never calls AWS on a request: metrics-server scraping every
15 s costs nothing more.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from orca import metrics
from orca.logging import get_logger
from orca.usage_metrics import UsageMetric
from orca.usage_queries import PodKey, Sample
from orca.usage_reader import UsageReader

log = get_logger(__name__)

LOOKBACK_PERIODS = 3
"""How many periods back a read looks: the newest datapoint may be a period late."""

PodFigures = dict[UsageMetric, Sample]


def running_pod_keys(pods: list[dict[str, Any]]) -> list[PodKey]:
    """The pods whose figures are worth reading: phase Running."""
    keys = []
    for pod in pods:
        metadata = pod.get("metadata") or {}
        if (pod.get("status") or {}).get("phase") != "Running":
            continue
        keys.append(
            PodKey(
                namespace=str(metadata.get("namespace")),
                name=str(metadata.get("name")),
                uid=str(metadata.get("uid")),
            )
        )
    return keys


ACCELERATORS = {
    UsageMetric.GPU_UTILIZATION: "gpu",
    UsageMetric.NEURONCORE_UTILIZATION: "neuroncore",
}


def export_accelerator_gauges(figures: dict[PodKey, PodFigures]) -> None:
    """`orca_pod_accelerator_utilization_percent` for exactly the pods read this round."""
    metrics.POD_ACCELERATOR_UTILIZATION.clear()
    for key, values in figures.items():
        for metric, accelerator in ACCELERATORS.items():
            sample = values.get(metric)
            if sample is not None and sample.latest is not None:
                metrics.POD_ACCELERATOR_UTILIZATION.labels(
                    namespace=key.namespace, pod=key.name, accelerator=accelerator
                ).set(sample.latest)


class PodStats:
    def __init__(
        self,
        reader: UsageReader,
        pods: Callable[[], list[dict[str, Any]]],
        interval: timedelta,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.reader = reader
        self.pods = pods
        self.interval = interval
        self._now = now
        self._figures: dict[str, PodFigures] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pod-stats", daemon=True)

    def start(self) -> PodStats:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()

    def figures(self, uid: str) -> PodFigures:
        """The pod's newest figures (empty when none were published yet)."""
        with self._lock:
            return dict(self._figures.get(uid, {}))

    def refresh(self) -> int:
        """One batched read of every running pod; how many pods have figures."""
        keys = running_pod_keys(self.pods())
        seconds = int(self.interval.total_seconds())
        end = self._now()
        figures = (
            self.reader.read(
                keys,
                list(UsageMetric),
                period_seconds=seconds,
                start=end - LOOKBACK_PERIODS * self.interval,
                end=end,
            )
            if keys
            else {}
        )
        with self._lock:
            self._figures = {key.uid: value for key, value in figures.items()}
        export_accelerator_gauges(figures)
        return len(figures)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.refresh()
            except Exception as error:
                log.warning("pod usage figures not read", error=str(error))
            self._stopping.wait(self.interval.total_seconds())
