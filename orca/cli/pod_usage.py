"""The usage columns of `orca status`: CPU, memory and accelerator utilization per pod.

One batched CloudWatch read for every running pod of the table (`orca.usage_reader`, the same
figures the kubelet endpoint serves, docs/stats.md), averaged over the last `WINDOW`. It needs
`cloudwatch:GetMetricData` with the CLI's AWS credentials; without them (a researcher with a
kubeconfig alone) or on any AWS error the columns are left out rather than failing the command.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from orca.aws_clients import AwsClients
from orca.settings import Settings
from orca.usage_metrics import UsageMetric
from orca.usage_queries import PodKey, Sample
from orca.usage_reader import UsageReader

WINDOW = timedelta(minutes=5)
PERIOD_SECONDS = 60
METRICS = (
    UsageMetric.CPU_USAGE_CORES,
    UsageMetric.MEMORY_WORKING_SET_BYTES,
    UsageMetric.GPU_UTILIZATION,
    UsageMetric.NEURONCORE_UTILIZATION,
)
NONE = "-"


@dataclass(frozen=True)
class PodUsage:
    cpu_cores: float | None = None
    memory_bytes: float | None = None
    accelerator_percent: float | None = None
    """GPU utilization, or Neuron core utilization on a Neuron instance."""

    @classmethod
    def of(cls, figures: dict[UsageMetric, Sample]) -> PodUsage:
        def latest(metric: UsageMetric) -> float | None:
            sample = figures.get(metric)
            return sample.latest if sample else None

        accelerator = latest(UsageMetric.GPU_UTILIZATION)
        if accelerator is None:
            accelerator = latest(UsageMetric.NEURONCORE_UTILIZATION)
        return cls(
            cpu_cores=latest(UsageMetric.CPU_USAGE_CORES),
            memory_bytes=latest(UsageMetric.MEMORY_WORKING_SET_BYTES),
            accelerator_percent=accelerator,
        )

    def cells(self) -> tuple[str, str, str]:
        cpu = NONE if self.cpu_cores is None else f"{round(self.cpu_cores * 1000)}m"
        memory = NONE if self.memory_bytes is None else f"{round(self.memory_bytes / 2**20)}Mi"
        accelerator = (
            NONE if self.accelerator_percent is None else f"{self.accelerator_percent:.0f}%"
        )
        return cpu, memory, accelerator

    def document(self) -> dict[str, float | None]:
        return {
            "cpuCores": self.cpu_cores,
            "memoryBytes": self.memory_bytes,
            "acceleratorUtilizationPercent": self.accelerator_percent,
        }


def read_pod_usage(settings: Settings, pods: Sequence[PodKey]) -> dict[str, PodUsage] | None:
    """Usage per pod UID; None when CloudWatch cannot be read with these settings."""
    if not pods:
        return {}
    try:
        reader = UsageReader(AwsClients(settings.aws).cloudwatch)
        end = datetime.now(UTC)
        figures = reader.read(
            pods, METRICS, period_seconds=PERIOD_SECONDS, start=end - WINDOW, end=end
        )
    except Exception:  # no credentials, denied, unreachable: the table goes on without usage
        return None
    return {key.uid: PodUsage.of(value) for key, value in figures.items()}
