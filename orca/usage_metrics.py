"""The usage figures an instance publishes about its pod (docs/stats.md, docs/instance-contract.md).

One CloudWatch namespace (`NAMESPACE`), one dimension (`POD_DIMENSION`, value
`<namespace>/<name>/<uid>` as the pod's log streams are named), and the metrics of `UsageMetric`.
On an instance the runner samples the pod's containers (cgroup v2 files), the host's network and
the pod directory's filesystem, `nvidia-smi` and `neuron-monitor` every `PUBLISH_INTERVAL_SECONDS`
and hands each figure to the CloudWatch agent's StatsD listener as a gauge tagged with the pod
dimension; the agent (configured by `agent_config`) publishes them into the namespace, with a
rollup on the pod dimension alone (`aggregation_dimensions`), which is what ORCA reads. The AWS
emulator publishes the same metrics for every emulated container.

This module is the contract both sides import; it has no I/O.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

NAMESPACE = "ORCA/Pods"
POD_DIMENSION = "Pod"
PUBLISH_INTERVAL_SECONDS = 60
STATSD_ADDRESS = "127.0.0.1:8125"


class UsageMetric(StrEnum):
    """Every figure published per pod; gauges unless the name ends in `_total` (cumulative since
    the pod's containers started)."""

    CPU_USAGE_CORES = "cpu_usage_cores"
    """CPU cores in use by the pod's containers, averaged over the last sample interval."""
    CPU_USAGE_SECONDS = "cpu_usage_seconds_total"
    """CPU time used by the pod's containers (cgroup `cpu.stat` usage_usec)."""
    MEMORY_WORKING_SET_BYTES = "memory_working_set_bytes"
    """Memory in use less inactive file cache, as the kubelet's working set."""
    NETWORK_RX_BYTES = "network_rx_bytes_total"
    NETWORK_TX_BYTES = "network_tx_bytes_total"
    FS_USED_BYTES = "fs_used_bytes"
    """Bytes used on the filesystem holding the pod's directory (volumes, logs)."""
    FS_CAPACITY_BYTES = "fs_capacity_bytes"
    GPU_UTILIZATION = "gpu_utilization_percent"
    """NVIDIA GPU utilization, the mean over the instance's GPUs (nvidia-smi utilization.gpu)."""
    GPU_MEMORY_USED_BYTES = "gpu_memory_used_bytes"
    """GPU memory in use, summed over the GPUs."""
    GPU_POWER_WATTS = "gpu_power_watts"
    """GPU power draw, summed over the GPUs."""
    NEURONCORE_UTILIZATION = "neuroncore_utilization_percent"
    """Neuron core utilization, the mean over the instance's Neuron cores (neuron-monitor)."""


UNITS: dict[UsageMetric, str] = {
    UsageMetric.CPU_USAGE_CORES: "Count",
    UsageMetric.CPU_USAGE_SECONDS: "Seconds",
    UsageMetric.MEMORY_WORKING_SET_BYTES: "Bytes",
    UsageMetric.NETWORK_RX_BYTES: "Bytes",
    UsageMetric.NETWORK_TX_BYTES: "Bytes",
    UsageMetric.FS_USED_BYTES: "Bytes",
    UsageMetric.FS_CAPACITY_BYTES: "Bytes",
    UsageMetric.GPU_UTILIZATION: "Percent",
    UsageMetric.GPU_MEMORY_USED_BYTES: "Bytes",
    UsageMetric.GPU_POWER_WATTS: "None",
    UsageMetric.NEURONCORE_UTILIZATION: "Percent",
}

ACCELERATOR_UTILIZATION = (UsageMetric.GPU_UTILIZATION, UsageMetric.NEURONCORE_UTILIZATION)


def pod_dimension_value(namespace: str, name: str, uid: str) -> str:
    return f"{namespace}/{name}/{uid}"


def agent_config(interval_seconds: int = PUBLISH_INTERVAL_SECONDS) -> dict[str, Any]:
    """The CloudWatch agent configuration the runner installs: a StatsD listener whose gauges go
    to `NAMESPACE`, rolled up on the pod dimension alone (the agent adds `metric_type`)."""
    return {
        "agent": {"metrics_collection_interval": interval_seconds, "omit_hostname": True},
        "metrics": {
            "namespace": NAMESPACE,
            "aggregation_dimensions": [[POD_DIMENSION]],
            "metrics_collected": {
                "statsd": {
                    "service_address": STATSD_ADDRESS,
                    "metrics_collection_interval": interval_seconds,
                    "metrics_aggregation_interval": interval_seconds,
                }
            },
        },
    }


def agent_config_json(interval_seconds: int = PUBLISH_INTERVAL_SECONDS) -> str:
    return json.dumps(agent_config(interval_seconds), sort_keys=True)
