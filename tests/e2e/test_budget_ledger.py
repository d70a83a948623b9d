"""Issue 12's fleet-wide budget ledger on the embedded stack, as real processes: the Temporal dev
server, the AWS and Kubernetes emulators, ORCA's watcher and TWO ORCA workers on one task queue
(`tests.fixtures.dev_stack.MultiWorkerStack`), the limits set in the generated config file.

- `BURST` pods created at once against `limits.maxConcurrentInstances: 5`: a sampler reading the
  AWS emulator's live ORCA instances (by the cluster tag, every 0.5 s) never sees more than 5
  pending or running, and every pod runs and succeeds, each on exactly one instance. Issue 12
  asks for 40; on this 2-core machine 40 took about 140 s, so the suite runs 20
  (`ORCA_TEST_LEDGER_BURST=40 pytest tests/e2e/test_budget_ledger.py` runs the issue's figure;
  it passes the same way);
- the same (half as many pods) against `limits.maxHourlyCost` set to admit 3 instances at the
  type's on-demand price (read from the Pricing API, as ORCA reads it);
- kill -9 of one worker and then of the Temporal server mid-burst: no limit exceeded, no pod with
  two instances, every pod converges, and the ledger (query `summary` on `orca-ledger/orca-dev`)
  is left holding no claim;
- accrual: a pod's cost in the ledger is its price times its instance's runtime, within one
  accrual interval (plus what the test's own clocks can resolve);
- `limits.dailyBudget` exhausted by a running pod holds the next launch: the pod stays Pending
  with reason `BudgetExceeded` and an event naming `limits.dailyBudget`, and gets no instance.

Nothing is mocked. Pods run short-lived containers (`emulator.orca.research/run-seconds`).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3
import pytest
from kubernetes import client
from temporalio.client import Client

from orca import instance_tags
from orca.activities.instance_catalog import on_demand_price_from_price_list
from orca.payload_codec import DATA_CONVERTER
from orca.workflows.budget_ledger import BudgetLedger
from orca.workflows.ledger_models import LedgerSummary, ledger_workflow_id
from orca_devstack.examples import burst_pod
from tests.fixtures.dev_stack import MultiWorkerStack, eventually, running_multi_worker_stack

pytestmark = pytest.mark.slow

CLUSTER = "orca-dev"
INSTANCE_TYPE = "m5.large"
LIVE = ("pending", "running")
BURST = int(os.environ.get("ORCA_TEST_LEDGER_BURST", "20"))
UPKEEP_S = 10.0
"""The ledger's stale-claim check interval (`limits.ledgerUpkeepInterval`, 2 min by default): a
release lost to a kill is made good by then."""


FAST = {
    "instances": {"capacityRetryInterval": "5s"},
    "worker": {"instancePollInterval": "1s", "statusPollInterval": "1s"},
}


def with_limits(**limits: Any) -> dict[str, Any]:
    return {**FAST, "limits": {"ledgerUpkeepInterval": f"{UPKEEP_S:g}s", **limits}}


# -- clients and helpers ---------------------------------------------------------------------
def aws(stack: MultiWorkerStack, service: str, region: str = "us-west-2") -> Any:
    assert stack.endpoints is not None
    return boto3.client(
        service,
        endpoint_url=stack.endpoints.aws_endpoint_url,
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def on_demand_price(stack: MultiWorkerStack, instance_type: str) -> Decimal:
    """The type's on-demand price as ORCA reads it: pricing:GetProducts, from us-east-1."""
    pages = aws(stack, "pricing", region="us-east-1").get_paginator("get_products")
    filters = {
        "instanceType": instance_type,
        "regionCode": "us-west-2",
        "operatingSystem": "Linux",
        "tenancy": "Shared",
        "preInstalledSw": "NA",
        "capacitystatus": "Used",
    }
    for page in pages.paginate(
        ServiceCode="AmazonEC2",
        Filters=[{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in filters.items()],
    ):
        for document in page["PriceList"]:
            parsed = on_demand_price_from_price_list(document)
            if parsed is not None and parsed[0] == instance_type:
                return parsed[1]
    raise AssertionError(f"no on-demand price for {instance_type}")


def ledger_summary(stack: MultiWorkerStack) -> LedgerSummary:
    assert stack.endpoints is not None
    address = stack.endpoints.temporal_address

    async def query() -> LedgerSummary:
        temporal = await Client.connect(address, data_converter=DATA_CONVERTER)
        handle = temporal.get_workflow_handle_for(BudgetLedger.run, ledger_workflow_id(CLUSTER))
        return await handle.query(BudgetLedger.summary)

    return asyncio.run(query())


class InstanceSampler:
    """Every `period` seconds: the cluster's ORCA instances in the AWS emulator, by tag. Keeps
    the most live (pending or running) instances seen at once, every instance seen per pod UID,
    and when each instance was first seen no longer live."""

    def __init__(self, ec2: Any, period: float = 0.5) -> None:
        self.ec2 = ec2
        self.period = period
        self.max_live = 0
        self.samples = 0
        self.by_pod: dict[str, set[str]] = {}
        self.launched_at: dict[str, datetime] = {}
        self.ended_seen_at: dict[str, datetime] = {}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="instance-sampler", daemon=True)

    def __enter__(self) -> InstanceSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def sample(self) -> None:
        pages = self.ec2.get_paginator("describe_instances").paginate(
            Filters=[{"Name": f"tag:{instance_tags.CLUSTER}", "Values": [CLUSTER]}]
        )
        seen_at = datetime.now(UTC)
        live = 0
        for page in pages:
            for reservation in page["Reservations"]:
                for instance in reservation["Instances"]:
                    tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
                    instance_id = instance["InstanceId"]
                    uid = tags.get(instance_tags.POD_UID, "")
                    self.by_pod.setdefault(uid, set()).add(instance_id)
                    self.launched_at.setdefault(instance_id, instance["LaunchTime"])
                    if instance["State"]["Name"] in LIVE:
                        live += 1
                    else:
                        self.ended_seen_at.setdefault(instance_id, seen_at)
        self.max_live = max(self.max_live, live)
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sample()
            except Exception as error:  # the emulator is never killed here; keep sampling
                self.errors.append(repr(error))
            self._stop.wait(self.period)


def create_pods(
    core: client.CoreV1Api, names: list[str], annotations: dict[str, str]
) -> dict[str, str]:
    """Create the pods at once (16 threads); name → UID."""

    def create(name: str) -> tuple[str, str]:
        body: Any = burst_pod(name, annotations, grace_seconds=2)
        return name, core.create_namespaced_pod("default", body).metadata.uid

    with ThreadPoolExecutor(16) as pool:
        return dict(pool.map(create, names))


def short_pod(run_seconds: int = 2) -> dict[str, str]:
    return {
        "orca.research/instance-type": INSTANCE_TYPE,
        "orca.research/launch-type": "on-demand",
        "emulator.orca.research/run-seconds": str(run_seconds),
    }


def phases(core: client.CoreV1Api, names: set[str]) -> dict[str, str]:
    pods = core.list_namespaced_pod("default").items
    return {p.metadata.name: p.status.phase for p in pods if p.metadata.name in names}


def all_succeeded(core: client.CoreV1Api, names: list[str], within: float) -> None:
    wanted = set(names)

    def done() -> bool:
        now = phases(core, wanted)
        failed = {n: p for n, p in now.items() if p == "Failed"}
        assert not failed, f"pods failed: {failed}"
        return len(now) == len(wanted) and all(p == "Succeeded" for p in now.values())

    eventually(done, f"{len(names)} pods to succeed", within=within)


def no_claims_left(stack: MultiWorkerStack, within: float = 60) -> LedgerSummary:
    last: list[LedgerSummary] = []

    def empty() -> LedgerSummary | None:
        last[:] = [ledger_summary(stack)]
        return last[0] if last[0].admitted == 0 and not last[0].waiting else None

    try:
        return eventually(empty, "the ledger to hold no claim", within=within)
    except AssertionError as error:
        running = [p.pod for p in last[0].pods if p.running] if last else []
        raise AssertionError(f"{error}; still claimed: {running}; {last}") from None


def events_of(core: client.CoreV1Api, name: str) -> list[Any]:
    return list(
        core.list_namespaced_event("default", field_selector=f"involvedObject.name={name}").items
    )


def run_burst(
    stack: MultiWorkerStack, sampler: InstanceSampler, count: int, within: float = 240
) -> dict[str, str]:
    core = stack.core()
    prefix = uuid.uuid4().hex[:5]
    names = [f"ledger-{prefix}-{i:02d}" for i in range(count)]
    uids = create_pods(core, names, short_pod())
    all_succeeded(core, names, within)
    for name, uid in uids.items():
        assert len(sampler.by_pod.get(uid, ())) == 1, f"{name}: {sampler.by_pod.get(uid)}"
    return uids


# -- a limit of 5 instances, two workers ------------------------------------------------------
@pytest.fixture(scope="module")
def five_instances(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MultiWorkerStack]:
    with running_multi_worker_stack(
        tmp_path_factory.mktemp("ledger-five"), config=with_limits(maxConcurrentInstances=5)
    ) as stack:
        yield stack


def test_two_workers_never_exceed_five_instances_and_every_pod_runs(
    five_instances: MultiWorkerStack,
) -> None:
    assert {c.name for c in five_instances.children} >= {"worker", "worker-2"}
    with InstanceSampler(aws(five_instances, "ec2")) as sampler:
        run_burst(five_instances, sampler, BURST)
    assert sampler.samples > 10
    assert sampler.max_live <= 5, f"{sampler.max_live} instances live at once"
    assert sampler.max_live >= 2, "the burst ran instances side by side"
    summary = no_claims_left(five_instances)
    assert summary.launched == 0
    # Both workers launched: the limit held across processes, not within one.
    for log in ("worker.log", "worker-2.log"):
        text = (five_instances.state_dir / "logs" / log).read_text(errors="replace")
        assert "launched instance" in text, f"{log} launched nothing"


def test_kill_of_a_worker_and_of_temporal_mid_burst_loses_and_doubles_nothing(
    five_instances: MultiWorkerStack,
) -> None:
    core = five_instances.core()
    prefix = uuid.uuid4().hex[:5]
    names = [f"chaos-{prefix}-{i:02d}" for i in range(BURST)]
    with InstanceSampler(aws(five_instances, "ec2")) as sampler:
        uids = create_pods(core, names, short_pod())
        wanted = set(names)

        def succeeded(at_least: int) -> bool:
            return sum(p == "Succeeded" for p in phases(core, wanted).values()) >= at_least

        eventually(lambda: succeeded(4), "a first wave of pods to succeed", within=120)
        five_instances.kill("worker")
        eventually(lambda: succeeded(9), "pods to succeed after the worker's kill", within=120)
        five_instances.kill("temporal")
        all_succeeded(core, names, within=300)
    assert sampler.max_live <= 5, f"{sampler.max_live} instances live at once"
    for name, uid in uids.items():
        assert len(sampler.by_pod.get(uid, ())) == 1, f"{name}: {sampler.by_pod.get(uid)}"
    # A release lost to the server's kill comes back with terminate's retry (a 10 s heartbeat
    # timeout) or, if its workflow ended, with the next upkeep.
    summary = no_claims_left(five_instances, within=UPKEEP_S + 50)
    assert summary.holds == {}


# -- maxHourlyCost, and accrual ---------------------------------------------------------------
ACCRUAL_S = 1.0


@pytest.fixture(scope="module")
def hourly_cost(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MultiWorkerStack]:
    # The emulator's table price of m5.large; the test reads the live one and checks it agrees.
    limit = Decimal("0.096") * Decimal("3.5")
    with running_multi_worker_stack(
        tmp_path_factory.mktemp("ledger-cost"),
        config=with_limits(maxHourlyCost=str(limit), accrualInterval=f"{ACCRUAL_S:g}s"),
    ) as stack:
        yield stack


def test_two_workers_never_exceed_max_hourly_cost(hourly_cost: MultiWorkerStack) -> None:
    price = on_demand_price(hourly_cost, INSTANCE_TYPE)
    assert price == Decimal("0.096"), "the limit in the fixture admits 3 at this price"
    with InstanceSampler(aws(hourly_cost, "ec2")) as sampler:
        run_burst(hourly_cost, sampler, BURST // 2)
    assert sampler.max_live <= 3, f"{sampler.max_live} instances live at once"
    assert sampler.max_live >= 2
    assert sampler.max_live * price <= Decimal("0.096") * Decimal("3.5")
    no_claims_left(hourly_cost)


def test_accrued_cost_is_price_times_runtime(hourly_cost: MultiWorkerStack) -> None:
    price = on_demand_price(hourly_cost, INSTANCE_TYPE)
    core = hourly_cost.core()
    name = f"accrual-{uuid.uuid4().hex[:5]}"
    with InstanceSampler(aws(hourly_cost, "ec2"), period=0.25) as sampler:
        uid = create_pods(core, [name], short_pod(run_seconds=8))[name]
        workflow_id = f"pod/default/{name}/{uid}"
        eventually(lambda: phases(core, {name}).get(name) == "Running", f"{name} to run")
        time.sleep(3)  # a few accrual intervals into the run
        running = next(p for p in ledger_summary(hourly_cost).pods if p.pod == workflow_id)
        all_succeeded(core, [name], within=120)
        summary = no_claims_left(hourly_cost)
    # While running: the cost so far lags price * time since launch by at most one interval.
    so_far = price * Decimal((running.ended - running.started).total_seconds()) / 3600
    per_interval = price * Decimal(ACCRUAL_S) / 3600
    assert -Decimal("1e-9") <= so_far - running.cost <= per_interval + Decimal("1e-9")
    assert running.cost > 0
    # Released: its whole window, against the instance's runtime as EC2 shows it.
    (released,) = [p for p in summary.pods if p.pod == workflow_id]
    window = Decimal((released.ended - released.started).total_seconds())
    assert abs(released.cost - price * window / 3600) <= Decimal("1e-9")
    (instance_id,) = sampler.by_pod[uid]
    runtime = (
        sampler.ended_seen_at[instance_id] - sampler.launched_at[instance_id]
    ).total_seconds()
    # One accrual interval, plus LaunchTime's one-second resolution and the sampling period.
    slack = Decimal(ACCRUAL_S + 1.0 + 0.25)
    assert abs(released.cost - price * Decimal(runtime) / 3600) <= price * slack / 3600
    assert runtime >= 8


# -- dailyBudget exhausted mid-run -----------------------------------------------------------
MINIMUM_RUNTIME_S = 5
BUDGET_SECONDS = 10
"""The daily budget pays for this many seconds of one m5.large."""


@pytest.fixture(scope="module")
def daily_budget(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MultiWorkerStack]:
    budget = Decimal("0.096") * BUDGET_SECONDS / 3600
    with running_multi_worker_stack(
        tmp_path_factory.mktemp("ledger-daily"),
        config=with_limits(
            dailyBudget=str(budget),
            minimumRuntime=f"{MINIMUM_RUNTIME_S}s",
            accrualInterval="1s",
        ),
    ) as stack:
        yield stack


def test_an_exhausted_daily_budget_holds_new_launches(daily_budget: MultiWorkerStack) -> None:
    price = on_demand_price(daily_budget, INSTANCE_TYPE)
    budget = price * BUDGET_SECONDS / 3600
    core = daily_budget.core()
    spender, held = f"spender-{uuid.uuid4().hex[:5]}", f"held-{uuid.uuid4().hex[:5]}"
    long_running = {**short_pod(), "emulator.orca.research/run-seconds": "inf"}
    with InstanceSampler(aws(daily_budget, "ec2")) as sampler:
        create_pods(core, [spender], long_running)
        eventually(lambda: phases(core, {spender}).get(spender) == "Running", f"{spender} to run")
        # Spent so far leaves less than the minimum runtime of another instance.
        left_for_minimum = price * MINIMUM_RUNTIME_S / 3600
        eventually(
            lambda: ledger_summary(daily_budget).spent_today > budget - left_for_minimum,
            "the running pod to spend the daily budget",
            within=60,
        )
        held_uid = create_pods(core, [held], long_running)[held]

        def held_for_budget() -> bool:
            status = core.read_namespaced_pod(held, "default").status
            return status.phase == "Pending" and status.reason == "BudgetExceeded"

        eventually(held_for_budget, f"{held} to be held with reason BudgetExceeded", within=60)
        messages = [e.message for e in events_of(core, held) if e.reason == "BudgetExceeded"]
        assert messages, "a BudgetExceeded event"
        assert any("limits.dailyBudget" in m for m in messages), messages
        summary = ledger_summary(daily_budget)
        assert any(p.endswith(held_uid) for p in summary.waiting)
        time.sleep(2)  # a ledger round or two more: still held, still no instance
        assert core.read_namespaced_pod(held, "default").status.phase == "Pending"
        assert held_uid not in sampler.by_pod
        # `enforcement: hold` only holds: the spending pod keeps running.
        assert phases(core, {spender})[spender] == "Running"
        for name in (held, spender):
            core.delete_namespaced_pod(name, "default")
        no_claims_left(daily_budget)
