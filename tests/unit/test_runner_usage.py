"""The runner's usage figures: what it hands the CloudWatch agent (docs/stats.md)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from orca.usage_metrics import NAMESPACE, UsageMetric
from tests.unit.test_bootstrap_script import document, full_pod, render, runner

BASH = shutil.which("bash")


def test_the_document_tells_the_runner_the_pod_dimension_and_the_agent_config() -> None:
    plan = render(full_pod())
    usage = document(plan.script).usage_metrics
    assert usage is not None
    doc = document(plan.script)
    assert usage.pod_dimension.endswith("/" + doc.pod_uid)
    assert usage.interval_seconds == 60
    assert json.loads(usage.agent_config)["metrics"]["namespace"] == NAMESPACE


def _function(script: str, name: str) -> str:
    found = re.search(rf"^{name}\(\) \{{.*?^\}}$", script, re.S | re.M)
    assert found, name
    return found.group(0)


@pytest.mark.skipif(BASH is None or shutil.which("jq") is None, reason="needs bash and jq")
def test_one_sample_reads_the_pods_cgroups_network_filesystem_and_gpus(tmp_path: Path) -> None:
    """`docker`, `nvidia-smi` and the gauge sender replaced; cgroup and network files faked."""
    script = runner(render(full_pod()).script)
    gauges = tmp_path / "gauges"
    program = "\n".join(
        [
            f"T={shlex.quote(str(tmp_path))}",
            "ORCA_RUNTIME=docker ORCA_POD_UID=uid-1 ORCA_DIR=$T",
            "ORCA_CGROUP_ROOT=$T/cg ORCA_NET_ROOT=$T/net",
            'docker() { case "$1" in ps) echo c1 ;; inspect) echo "$$" ;; esac; }',
            "nvidia-smi() { printf '40, 1000, 100.5\\n60, 3000, 200.5\\n'; }",
            'orca_gauge() { echo "$1 $2" >> "$T/gauges"; }',
            'cg="$ORCA_CGROUP_ROOT$(cut -d: -f3- /proc/$$/cgroup | head -n1)"',
            'mkdir -p "$cg" "$ORCA_NET_ROOT/eth0/statistics" "$ORCA_NET_ROOT/lo/statistics"',
            "printf 'usage_usec 3000000\\nuser_usec 1\\n' > \"$cg/cpu.stat\"",
            'echo 5000 > "$cg/memory.current"',
            "printf 'anon 1\\ninactive_file 1000\\n' > \"$cg/memory.stat\"",
            "echo 700 > $ORCA_NET_ROOT/eth0/statistics/rx_bytes",
            "echo 300 > $ORCA_NET_ROOT/eth0/statistics/tx_bytes",
            "echo 9 > $ORCA_NET_ROOT/lo/statistics/rx_bytes",
            "echo 9 > $ORCA_NET_ROOT/lo/statistics/tx_bytes",
            _function(script, "orca_usage_sample"),
            "orca_usage_sample 1000000 $(( $(date +%s%N) - 1000000000 ))",
        ]
    )
    result = subprocess.run(
        [BASH or "bash", "-c", program], check=True, capture_output=True, text=True, timeout=30
    )
    usec, _ = result.stdout.split()
    assert usec == "3000000"
    figures = dict(line.split() for line in gauges.read_text().splitlines())
    assert set(figures) <= {metric.value for metric in UsageMetric}
    assert float(figures["cpu_usage_seconds_total"]) == 3.0
    assert 1.0 < float(figures["cpu_usage_cores"]) <= 2.0  # 2 s of CPU in a little over 1 s
    assert figures["memory_working_set_bytes"] == "4000"
    assert (figures["network_rx_bytes_total"], figures["network_tx_bytes_total"]) == ("700", "300")
    assert int(figures["fs_capacity_bytes"]) > 0
    assert float(figures["gpu_utilization_percent"]) == 50.0
    assert figures["gpu_memory_used_bytes"] == str(4000 * 1048576)
    assert float(figures["gpu_power_watts"]) == 301.0
