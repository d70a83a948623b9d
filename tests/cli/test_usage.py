"""`orca usage` against a real budget ledger on the Temporal dev server.

The ledger is a real `BudgetLedger` workflow hosted by a worker in this test, fed through the
client the launch activities use (`BudgetLedgerClient`): pods reserve, launch, accrue and
release as they do in the worker; the command then reads the ledger's summary as a user runs it
(in-process through `orca.cli.main.main`, in a thread since it runs its own event loop).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import pytest_asyncio
import yaml
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from orca.activities.launch_admission import BudgetLedgerClient, LedgerUpkeepActivities
from orca.budgets import Budget, BudgetKind, Claim
from orca.cli.main import main
from orca.cli.status import cost_cell, pod_costs
from orca.ledger_summary import read_ledger_summary
from orca.workflows.budget_ledger import BudgetLedger
from orca.workflows.ledger_models import LedgerRules
from orca_devstack.processes import free_port

TWO_INSTANCES = Budget(
    setting="limits.maxConcurrentInstances", kind=BudgetKind.INSTANCES, limit=Decimal(2)
)


@dataclass
class Cluster:
    name: str
    config: Path


def write_config(tmp_path: Path, address: str, cluster: str, task_queue: str) -> Path:
    path = tmp_path / f"{cluster}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "aws": {"region": "us-west-2"},
                "temporal": {"address": address, "taskQueue": task_queue},
                "kubernetes": {"clusterName": cluster},
            }
        ),
        encoding="utf-8",
    )
    return path


@pytest_asyncio.fixture
async def cluster(temporal_dev_env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[Cluster]:
    """A cluster whose ledger admitted three pods: ml/a launched and released, nlp/b running,
    ml/c held by a limit of two instances."""
    client = temporal_dev_env.client
    task_queue = f"usage-{uuid.uuid4()}"
    name = f"usage-{uuid.uuid4().hex[:8]}"
    rules = LedgerRules(
        budgets=[TWO_INSTANCES],
        task_queue=task_queue,
        accrual_interval=timedelta(milliseconds=200),
        upkeep_interval=timedelta(hours=1),  # the pods' workflows are not real ones here
    )
    ledger = BudgetLedgerClient(client, name, rules)

    def claim(namespace: str, pod: str, team: str | None, instance_type: str, price: str) -> Claim:
        return Claim(
            pod=f"pod/{namespace}/{pod}/uid-{pod}",
            namespace=namespace,
            team=team,
            instance_type=instance_type,
            hourly_price=Decimal(price),
        )

    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[BudgetLedger],
        activities=[LedgerUpkeepActivities(client).ledger_running_pods],
    ):
        a = claim("ml", "a", "vision", "g5.xlarge", "3600")  # $1 a second
        b = claim("nlp", "b", "text", "p5.48xlarge", "360000")  # $100 a second
        c = claim("ml", "c", None, "g5.xlarge", "3600")
        assert (await ledger.admit(a)).admitted
        assert (await ledger.admit(b)).admitted
        assert not (await ledger.admit(c)).admitted
        await ledger.record_launch(a.pod, "i-0aaa")
        await ledger.record_launch(b.pod, "i-0bbb")
        await asyncio.sleep(1)
        assert await ledger.release(a.pod) > 0
        # A release admits c (room freed); it holds its slot without launching.
        for _ in range(50):
            summary = await read_ledger_summary(client, name)
            if summary.pods and any(p.pod == b.pod and p.cost > 0 for p in summary.pods):
                break
            await asyncio.sleep(0.2)
        address = client.service_client.config.target_host
        yield Cluster(name, write_config(tmp_path, address, name, task_queue))


async def orca(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


async def test_the_table_groups_by_namespace_with_a_total_budgets_and_holds(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = await orca(capsys, "--config", str(cluster.config), "usage")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("Usage by namespace since ")
    assert lines[0].endswith("UTC (30d):")
    header = lines[1].split()
    assert header == ["NAMESPACE", "PODS", "INSTANCE-HOURS", "COST"]
    nlp, ml, summed = (line.split() for line in lines[2:5])
    assert [nlp[0], ml[0], summed[0]] == ["nlp", "ml", "TOTAL"]  # most expensive first
    costs = [Decimal(row[3].lstrip("$")) for row in (nlp, ml, summed)]
    assert costs[0] > costs[1] > 0
    assert abs(costs[0] + costs[1] - costs[2]) <= Decimal("0.01")
    assert summed[1] == "2"  # c never launched: no instance time
    assert "Now: 1 instance running at $360000.00/h" in out
    assert "limits.maxConcurrentInstances   cluster   2      2       100%" in out


async def test_json_and_csv_carry_the_same_rows(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = await orca(
        capsys, "--config", str(cluster.config), "usage", "--by", "pod", "-o", "json"
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["by"] == "pod"
    assert [row["pod"] for row in report["rows"]] == ["nlp/b", "ml/a"]
    assert 0.9 < report["rows"][1]["cost"] < 30  # a ran about a second at $1/s
    assert report["total"]["pods"] == 2
    assert report["budgets"] == [
        {"budget": "limits.maxConcurrentInstances", "scope": "cluster", "used": 2.0, "limit": 2.0}
    ]
    assert report["held"] == []  # a's release admitted c
    assert report["running_instances"] == 1

    code, out, err = await orca(
        capsys, "--config", str(cluster.config), "usage", "--by", "team", "-o", "csv"
    )
    assert code == 0, err
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["team", "pods", "instance_hours", "cost"]
    assert [row[0] for row in rows[1:]] == ["text", "vision"]


async def test_a_narrow_window_clips_the_released_pod(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = await orca(
        capsys, "--config", str(cluster.config), "usage", "--by", "instance-type", "--since", "1h"
    )
    assert code == 0, err
    assert "Usage by instance-type since" in out
    assert "(1h):" in out
    assert [line.split()[0] for line in out.splitlines()[2:5]] == [
        "p5.48xlarge",
        "g5.xlarge",
        "TOTAL",
    ]


async def test_status_costs_come_from_the_ledger_and_are_absent_without_one(
    cluster: Cluster, temporal_dev_env: WorkflowEnvironment
) -> None:
    client = temporal_dev_env.client
    costs = await pod_costs(client, cluster.name)
    assert costs is not None
    assert set(costs) == {"pod/ml/a/uid-a", "pod/nlp/b/uid-b"}
    assert cost_cell(costs["pod/ml/a/uid-a"]).startswith("$")
    assert cost_cell(costs.get("pod/ml/c/uid-c")) == "-"  # admitted, not launched yet
    assert await pod_costs(client, "never-launched") is None


async def test_held_launches_are_listed_with_their_reason(
    temporal_dev_env: WorkflowEnvironment, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = temporal_dev_env.client
    task_queue = f"usage-{uuid.uuid4()}"
    name = f"usage-{uuid.uuid4().hex[:8]}"
    one = Budget(
        setting="limits.namespaceQuotas.ml.maxInstances",
        kind=BudgetKind.INSTANCES,
        limit=Decimal(1),
        namespace="ml",
    )
    rules = LedgerRules(budgets=[one], task_queue=task_queue, upkeep_interval=timedelta(hours=1))
    ledger = BudgetLedgerClient(client, name, rules)
    async with Worker(client, task_queue=task_queue, workflows=[BudgetLedger]):
        for pod in ("first", "second"):
            await ledger.admit(
                Claim(pod=f"pod/ml/{pod}/u", namespace="ml", instance_type="m5.large")
            )
        config = write_config(tmp_path, client.service_client.config.target_host, name, task_queue)
        code, out, err = await orca(capsys, "--config", str(config), "usage")
    assert code == 0, err
    assert "no instance ran in this window" in out
    assert "Launches held (1, in submission order):" in out
    assert (
        "  ml/second: limits.namespaceQuotas.ml.maxInstances (1) would be exceeded: 1 in use" in out
    )


async def test_a_cluster_without_a_ledger_says_so(
    temporal_dev_env: WorkflowEnvironment, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    address = temporal_dev_env.client.service_client.config.target_host
    config = write_config(tmp_path, address, "never-launched", "nowhere")
    code, out, err = await orca(capsys, "--config", str(config), "usage")
    assert code == 1
    assert out == ""
    assert (
        "no budget ledger for cluster never-launched yet (it starts with the first launch)" in err
    )
    assert "Traceback" not in err


async def test_a_ledger_no_worker_answers_for_exits_1(
    temporal_dev_env: WorkflowEnvironment, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = temporal_dev_env.client
    task_queue = f"usage-{uuid.uuid4()}"
    name = f"usage-{uuid.uuid4().hex[:8]}"
    ledger = BudgetLedgerClient(client, name, LedgerRules(task_queue=task_queue))
    async with Worker(client, task_queue=task_queue, workflows=[BudgetLedger]):
        await ledger.admit(Claim(pod="pod/ml/a/u", namespace="ml", instance_type="m5.large"))
    # The ledger's only worker is gone.
    config = write_config(tmp_path, client.service_client.config.target_host, name, task_queue)
    code, out, err = await orca(capsys, "--config", str(config), "usage")
    assert code == 1
    assert out == ""
    assert f"the budget ledger orca-ledger/{name} did not answer" in err
    assert f"is an ORCA worker running on task queue {task_queue}?" in err
    assert "Traceback" not in err


async def test_an_unreachable_temporal_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, f"127.0.0.1:{free_port()}", "c", "q")
    code, _, err = await orca(capsys, "--config", str(config), "usage")
    assert code == 1
    assert "cannot reach Temporal at 127.0.0.1:" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("since", ["30", "soon", "0s"])
async def test_a_bad_window_exits_2(
    since: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, "127.0.0.1:1", "c", "q")
    code, _, err = await orca(capsys, "--config", str(config), "usage", "--since", since)
    assert code == 2
    assert "--since" in err
