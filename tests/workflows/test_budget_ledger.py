"""The `BudgetLedger` workflow on the real Temporal dev server, driven through the client the
launch activities use (`BudgetLedgerClient`): exact admission under concurrent reservations,
submission order, idempotent retries, releases, stale claims and accrual."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import pytest
import pytest_asyncio
from temporalio import activity
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from orca.activities.launch_admission import BudgetLedgerClient, LedgerUpkeepActivities
from orca.activities.models import PodEventReport
from orca.activities.shared_offerings import share_unavailable_offerings
from orca.activities.spot_prices import SpotPriceActivities
from orca.activities.unavailable_offerings import UnavailableOfferings
from orca.aws_clients import AwsClients
from orca.budgets import Budget, BudgetKind, Claim
from orca.selection import Offering
from orca.settings import AwsCredentials, AwsSettings, BudgetEnforcement, LaunchType
from orca.workflows.budget_ledger import BudgetLedger
from orca.workflows.ledger_models import LedgerRules, LedgerSummary
from orca_devstack.emulators.aws import AwsEmulator
from tests.workflows.ledger_test_pod import LedgerTestPod

POSTED_EVENTS: list[PodEventReport] = []


@activity.defn(name="record_pod_event")
async def record_pod_event(report: PodEventReport) -> None:
    """Stands in for the worker's Kubernetes event writer (no cluster in these tests)."""
    POSTED_EVENTS.append(report)


@dataclass
class Ledger:
    client: Client
    ledger: BudgetLedgerClient
    task_queue: str

    async def summary(self) -> LedgerSummary:
        handle = self.client.get_workflow_handle_for(BudgetLedger.run, self.ledger.workflow_id)
        result: LedgerSummary = await handle.query(BudgetLedger.summary)
        return result


def gpu_claim(pod: str, gpus: int = 8, namespace: str = "ml", price: str = "0") -> Claim:
    return Claim(
        pod=pod,
        namespace=namespace,
        instance_type="p5.48xlarge",
        gpus=gpus,
        hourly_price=Decimal(price),
    )


def rules(task_queue: str, *budgets: Budget, **timing: timedelta) -> LedgerRules:
    return LedgerRules(budgets=list(budgets), task_queue=task_queue, **timing)


INSTANCES_3 = Budget(
    setting="limits.maxConcurrentInstances", kind=BudgetKind.INSTANCES, limit=Decimal(3)
)


@pytest_asyncio.fixture
async def worker(temporal_dev_env: WorkflowEnvironment) -> AsyncIterator[tuple[Client, str]]:
    client = temporal_dev_env.client
    task_queue = f"ledger-{uuid.uuid4()}"
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[BudgetLedger, LedgerTestPod],
        activities=[LedgerUpkeepActivities(client).ledger_running_pods, record_pod_event],
    ):
        yield client, task_queue


def ledger_for(worker: tuple[Client, str], ledger_rules: LedgerRules) -> Ledger:
    client, task_queue = worker
    cluster = f"test-{uuid.uuid4().hex[:8]}"
    return Ledger(client, BudgetLedgerClient(client, cluster, ledger_rules), task_queue)


async def test_concurrent_reservations_never_exceed_the_limit(worker: tuple[Client, str]) -> None:
    ledger = ledger_for(worker, rules(worker[1], INSTANCES_3))
    answers = await asyncio.gather(*(ledger.ledger.admit(gpu_claim(f"pod-{n}")) for n in range(12)))
    assert sum(a.admitted for a in answers) == 3
    held = [a for a in answers if not a.admitted]
    assert sorted(a.position for a in held if a.position) == list(range(1, 10))
    assert all("limits.maxConcurrentInstances (3)" in a.message for a in held)
    summary = await ledger.summary()
    assert summary.admitted == 3
    assert len(summary.waiting) == 9


async def test_room_freed_goes_to_the_first_waiting_pod(worker: tuple[Client, str]) -> None:
    ledger = ledger_for(worker, rules(worker[1], INSTANCES_3))
    for n in range(5):
        await ledger.ledger.admit(gpu_claim(f"pod-{n}"))
    # A retry of an admitted pod gets the same answer and takes no second slot.
    assert (await ledger.ledger.admit(gpu_claim("pod-0"))).admitted
    await ledger.ledger.release("pod-1")
    # pod-3 was first in line: the freed slot is kept for it, pod-4 still waits.
    assert not (await ledger.ledger.admit(gpu_claim("pod-4"))).admitted
    assert (await ledger.ledger.admit(gpu_claim("pod-3"))).admitted
    summary = await ledger.summary()
    assert summary.waiting == ["pod-4"]
    assert "pod-4" in summary.holds


async def test_a_fallback_offering_replaces_the_pods_claim(worker: tuple[Client, str]) -> None:
    gpus_8 = Budget(setting="limits.maxConcurrentGPUs", kind=BudgetKind.GPUS, limit=Decimal(8))
    ledger = ledger_for(worker, rules(worker[1], gpus_8))
    assert (await ledger.ledger.admit(gpu_claim("a", gpus=8))).admitted
    # Its fallback is a smaller instance: the claim shrinks, room opens for another pod.
    assert (await ledger.ledger.admit(gpu_claim("a", gpus=4))).admitted
    assert (await ledger.ledger.admit(gpu_claim("b", gpus=4))).admitted
    assert not (await ledger.ledger.admit(gpu_claim("c", gpus=1))).admitted


async def test_claims_of_pods_whose_workflow_ended_are_released(worker: tuple[Client, str]) -> None:
    client, task_queue = worker
    ledger = ledger_for(
        worker,
        rules(
            task_queue,
            INSTANCES_3,
            upkeep_interval=timedelta(seconds=1),
            # Far longer than the upkeep: the ledger must wake for the upkeep on its own time.
            accrual_interval=timedelta(hours=1),
        ),
    )
    live = await client.start_workflow(
        LedgerTestPod.run, id=f"pod/ml/live/{uuid.uuid4()}", task_queue=task_queue
    )
    assert (await ledger.ledger.admit(gpu_claim(live.id))).admitted
    # Two claims whose pods' workflows never ran (or ended): upkeep releases them.
    assert (await ledger.ledger.admit(gpu_claim("pod/ml/gone-1/x"))).admitted
    assert (await ledger.ledger.admit(gpu_claim("pod/ml/gone-2/x"))).admitted
    waiting = await client.start_workflow(
        LedgerTestPod.run, id=f"pod/ml/waiting/{uuid.uuid4()}", task_queue=task_queue
    )
    assert not (await ledger.ledger.admit(gpu_claim(waiting.id))).admitted
    for _ in range(100):
        summary = await ledger.summary()
        if summary.admitted == 2 and not summary.waiting:
            break
        await asyncio.sleep(0.2)
    else:
        pytest.fail(f"stale claims were not released: {summary}")
    assert (await ledger.ledger.admit(gpu_claim(waiting.id))).admitted
    await live.signal(LedgerTestPod.finish)
    await waiting.signal(LedgerTestPod.finish)


async def test_spend_accrues_from_launch_at_the_hourly_price(worker: tuple[Client, str]) -> None:
    ledger = ledger_for(worker, rules(worker[1], accrual_interval=timedelta(milliseconds=300)))
    assert (await ledger.ledger.admit(gpu_claim("a", price="3600"))).admitted  # $1 a second
    assert (await ledger.ledger.admit(gpu_claim("b", price="3600"))).admitted
    await ledger.ledger.record_launch("a", "i-0123")
    await asyncio.sleep(2)
    cost_a = await ledger.ledger.release("a")
    cost_b = await ledger.ledger.release("b")
    assert Decimal("1.5") < cost_a < Decimal(10)
    assert cost_b == 0  # never launched: nothing billed
    summary = await ledger.summary()
    assert summary.spent_today == cost_a
    assert [(p.pod, p.instance_type, p.cost) for p in summary.pods] == [
        ("a", "p5.48xlarge", cost_a)
    ]
    # Released twice (a retried terminate): nothing changes.
    assert await ledger.ledger.release("a") == 0


async def test_a_dollar_budget_holds_what_it_cannot_pay(worker: tuple[Client, str]) -> None:
    daily = Budget(setting="limits.dailyBudget", kind=BudgetKind.DAILY_SPEND, limit=Decimal(100))
    ledger = ledger_for(worker, rules(worker[1], daily, minimum_runtime=timedelta(hours=1)))
    held = await ledger.ledger.admit(gpu_claim("big", price="120"))
    assert not held.admitted
    assert "limits.dailyBudget ($100.00) is too small" in held.message
    assert (await ledger.ledger.admit(gpu_claim("small", namespace="nlp", price="40"))).admitted


async def test_release_without_a_ledger_is_a_no_op(worker: tuple[Client, str]) -> None:
    ledger = ledger_for(worker, rules(worker[1]))
    assert await ledger.ledger.release("never-reserved") == 0


@pytest.mark.parametrize("enforcement", [BudgetEnforcement.HOLD, BudgetEnforcement.STOP])
async def test_a_spent_daily_budget_warns_then_holds_or_stops(
    worker: tuple[Client, str], enforcement: BudgetEnforcement
) -> None:
    client, task_queue = worker
    daily = Budget(setting="limits.dailyBudget", kind=BudgetKind.DAILY_SPEND, limit=Decimal(4))
    ledger_rules = rules(
        task_queue, daily, accrual_interval=timedelta(milliseconds=300)
    ).model_copy(
        update={
            "enforcement": enforcement,
            "minimum_runtime": timedelta(seconds=1),
            "warning_threshold": 0.5,
        }
    )
    ledger = ledger_for(worker, ledger_rules)
    pod = await client.start_workflow(
        LedgerTestPod.run, id=f"pod/ml/train/{uuid.uuid4()}", task_queue=task_queue
    )
    assert (await ledger.ledger.admit(gpu_claim(pod.id, price="3600"))).admitted  # $1 a second
    await ledger.ledger.record_launch(pod.id, "i-0abc")
    uid = pod.id.rsplit("/", 1)[1]
    for _ in range(100):
        reasons = [e.reason for e in POSTED_EVENTS if e.pod.uid == uid]
        if enforcement is BudgetEnforcement.HOLD:
            done = "BudgetExhausted" in reasons
        else:
            done = "BudgetWarning" in reasons and (await pod.describe()).close_time is not None
        if done:
            break
        await asyncio.sleep(0.2)
    else:
        pytest.fail(f"no announcement: events {reasons}")
    assert reasons[0] == "BudgetWarning"
    warning = next(e for e in POSTED_EVENTS if e.reason == "BudgetWarning" and e.pod.uid == uid)
    assert warning.message.startswith("limits.dailyBudget ($4.00) is ")
    if enforcement is BudgetEnforcement.STOP:
        stopped = await pod.result()
        assert stopped is not None
        assert "limits.enforcement is stop: the pod is stopped" in stopped
        assert "BudgetExhausted" not in reasons
    else:
        assert reasons.count("BudgetExhausted") == 1
        await pod.signal(LedgerTestPod.finish)
    # A new launch is held: the budget is spent.
    held = await ledger.ledger.admit(gpu_claim("pod/ml/next/x", price="1"))
    assert not held.admitted
    assert "limits.dailyBudget ($4.00)" in held.message


async def test_an_offering_one_worker_found_out_is_unavailable_in_every_worker(
    worker: tuple[Client, str],
) -> None:
    ledger = ledger_for(worker, rules(worker[1]))
    assert (await ledger.ledger.admit(gpu_claim("a"))).admitted  # the ledger exists from here
    offering = Offering(
        instance_type="p5.48xlarge", zone="us-west-2a", capacity_type=LaunchType.SPOT
    )
    await ledger.ledger.offering_unavailable(offering)
    # Another worker: its own memory, filled by its sharing loop from the same ledger.
    elsewhere = UnavailableOfferings(ttl_seconds=180)
    other = BudgetLedgerClient(
        ledger.client, ledger.ledger.workflow_id.split("/", 1)[1], rules(worker[1])
    )
    sharing = asyncio.create_task(share_unavailable_offerings(other, elsewhere, interval=0.1))
    try:
        for _ in range(100):
            if offering in elsewhere.current():
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("the other worker never learnt of the unavailable offering")
    finally:
        sharing.cancel()
    marks = await ledger.ledger.unavailable_offerings()
    assert [m.offering for m in marks] == [offering]


async def test_a_burst_of_reservations_travels_in_a_few_batches(worker: tuple[Client, str]) -> None:
    """Temporal allows ten in-flight updates per workflow: a worker's burst must not need more."""
    limit = Budget(
        setting="limits.maxConcurrentInstances", kind=BudgetKind.INSTANCES, limit=Decimal(100)
    )
    ledger = ledger_for(worker, rules(worker[1], limit))
    answers = await asyncio.gather(*(ledger.ledger.admit(gpu_claim(f"p-{n}")) for n in range(300)))
    assert sum(a.admitted for a in answers) == 100
    released = await asyncio.gather(*(ledger.ledger.release(f"p-{n}") for n in range(50)))
    assert released == [0] * 50
    handle = ledger.client.get_workflow_handle(ledger.ledger.workflow_id)
    history = await handle.fetch_history()
    updates = [
        e
        for e in history.events
        if e.HasField("workflow_execution_update_accepted_event_attributes")
    ]
    assert len(updates) < 30, f"{len(updates)} updates for 350 questions"
    summary = await ledger.summary()
    assert summary.admitted == 100  # 50 released, the next 50 in line admitted
    assert len(summary.waiting) == 150


async def test_spot_spend_follows_the_zones_spot_price_history(
    temporal_dev_env: WorkflowEnvironment, aws: AwsEmulator
) -> None:
    client = temporal_dev_env.client
    task_queue = f"ledger-spot-{uuid.uuid4()}"
    zone = f"{aws.defaults.region}a"
    spot_prices = SpotPriceActivities(
        AwsClients(
            AwsSettings(
                region=aws.defaults.region,
                endpoint_url=aws.endpoint_url,
                credentials=AwsCredentials(access_key_id="testing", secret_access_key="testing"),
            )
        )
    )
    ledger = ledger_for(
        (client, task_queue),
        rules(
            task_queue,
            accrual_interval=timedelta(milliseconds=200),
            upkeep_interval=timedelta(milliseconds=400),
        ),
    )
    aws.control.set_spot_price("g5.xlarge", zone, 3600.0)  # $1 a second
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[BudgetLedger, LedgerTestPod],
        activities=[
            LedgerUpkeepActivities(client).ledger_running_pods,
            spot_prices.spot_price_history,
        ],
    ):
        pod = await client.start_workflow(
            LedgerTestPod.run, id=f"pod/ml/spot/{uuid.uuid4()}", task_queue=task_queue
        )
        # The plan saw half the price in effect: the history corrects it from the launch on.
        claim = Claim(
            pod=pod.id,
            namespace="ml",
            instance_type="g5.xlarge",
            hourly_price=Decimal(1800),
            capacity_type="spot",
            zone=zone,
        )
        assert (await ledger.ledger.admit(claim)).admitted
        await ledger.ledger.record_launch(pod.id, "i-0spot")

        async def accrues_at(price: int) -> None:
            for _ in range(100):
                if (await ledger.summary()).hourly_cost == price:
                    return
                await asyncio.sleep(0.1)
            pytest.fail(f"still accruing at {(await ledger.summary()).hourly_cost}/h, not {price}")

        await accrues_at(3600)
        changed_at = aws.control.set_spot_price("g5.xlarge", zone, 7200.0)  # $2 a second
        await accrues_at(7200)
        cost = await ledger.ledger.release(pod.id)
        [billed] = [p for p in (await ledger.summary()).pods if p.pod == pod.id]
        await pod.signal(LedgerTestPod.finish)
    expected = Decimal(
        (changed_at - billed.started).total_seconds() * 1
        + (billed.ended - changed_at).total_seconds() * 2
    )
    assert billed.cost == cost
    assert abs(cost - expected) < Decimal("0.01"), (cost, expected)
