"""`BudgetLedger`: the one place where launches are admitted, one workflow per cluster.

Every launch activity, in whichever worker it runs, reserves through the ledger before
RunInstances, reports the instance once EC2 answered and releases on terminate. A worker sends
what its activities ask as batches: one Update `apply` in flight per worker at a time, carrying
every reservation, launch and release queued meanwhile (update-with-start, so the first launch
creates the ledger). Temporal allows ten in-flight updates per workflow and aborts them under
load, so one update per launch would collapse in a burst; one per worker carries any burst.
Updates are handled one at a time on the workflow's single thread, so two workers can never
both take the last slot; Temporal keeps the claims durably, so a worker killed mid-launch or a
Temporal restart loses and double-counts nothing. A reservation is idempotent per pod: a retried
activity gets the answer it had.

A launch that does not fit waits in submission order (`orca.budgets.admit_in_order`); the pod's
workflow keeps it Pending with the hold's message and asks again. When room frees (a release),
the ledger admits the next claims in order and keeps their room until they ask.

Spend accrues from each launched claim's hourly price times its time since launch, every
`accrual_interval`, split at UTC midnight into the `SpendBook`. Every `upkeep_interval` the
ledger asks (activity `ledger_running_pods`) which of its pods' workflows still run and
releases the others (a workflow terminated from the UI, a pod that never came back). A spot
claim accrues at its zone's spot price over time: each upkeep also reads the price history of
the running spot offerings (activity `spot_price_history`) and corrects what was accrued since
each change (`orca.spot_accrual.reprice`), so spend matches the bill up to the changes of the
last upkeep interval.

A waiting pod admitted because another pod's claim ended is signalled (`launch_admitted`) so
its workflow asks again at once instead of at its next retry.

Dollar budgets are watched after every accrual (`orca.budgets.spend_announcements`): at
`warning_threshold` the scope's running pods get a `BudgetWarning` event; when the budget is
spent they get `BudgetExhausted` (new launches are held), or, with `enforcement: stop`, the
`budget_exhausted` signal that stops them with reason BudgetExceeded. Each level is announced
once per budget, scope and period.

The ledger also keeps the cluster's memory of offerings that just ran out of capacity
(`offering_unavailable` signal, `unavailable_offerings` query), so one worker's
InsufficientInstanceCapacity moves every worker's plans on (`orca.activities.shared_offerings`).

The history stays bounded: the ledger continues as new, carrying `LedgerState`, when Temporal
suggests it, once every update handler has finished.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from decimal import Decimal

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from orca.activities.models import EventType, PodEventReport
    from orca.budgets import (
        BudgetKind,
        Claim,
        Hold,
        SpendAnnouncement,
        SpendLevel,
        accrual_pieces,
        admit_in_order,
        day_of,
        hold_for,
        month_of,
        spend_announcements,
        usage,
    )
    from orca.settings import BudgetEnforcement
    from orca.spot_accrual import SpotPricePoint, SpotPricing, reprice
    from orca.workflow_ids import pod_ref_from_workflow_id
    from orca.workflows.ledger_models import (
        BUDGET_EXHAUSTED_SIGNAL,
        LAUNCH_ADMITTED_SIGNAL,
        LEDGER_WORKFLOW,
        Admission,
        AdmittedClaim,
        BudgetUse,
        LaunchRecord,
        LedgerBatch,
        LedgerBatchResult,
        LedgerState,
        LedgerSummary,
        OfferingMark,
        PodCost,
        SpotOffering,
        SpotPriceQuery,
    )

SPOT_PRICE_HISTORY = "spot-price-history"
"""Patch: the upkeep also reads the spot price history of the running spot claims."""
UPKEEP_ON_TIME = "upkeep-on-time"
"""Patch: the loop also wakes for the upkeep when it is due before the next accrual (an upkeep
interval shorter than the accrual interval was kept only at the accrual's pace)."""
RELEASED_KEPT = timedelta(days=35)
"""How long released pods' costs stay in the ledger (a month of `orca usage --by pod`)."""
MAX_RELEASED = 20_000


@workflow.defn(name=LEDGER_WORKFLOW)
class BudgetLedger:
    @workflow.init
    def __init__(self, state: LedgerState) -> None:
        self._state = state
        self._holds: dict[str, Hold] = {}
        self._to_notify: list[str] = []
        """Waiting pods admitted by another pod's call: signalled so they launch at once."""

    @workflow.run
    async def run(self, state: LedgerState) -> None:
        next_upkeep = workflow.now() + self._state.rules.upkeep_interval
        while not workflow.info().is_continue_as_new_suggested():
            wake_in = self._state.rules.accrual_interval
            if workflow.patched(UPKEEP_ON_TIME):
                wake_in = min(wake_in, max(next_upkeep - workflow.now(), timedelta(seconds=1)))
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: bool(self._to_notify) or workflow.info().is_continue_as_new_suggested(),
                    timeout=wake_in,
                )
            await self._notify_admitted()
            self._accrue(workflow.now())
            await self._announce_spend()
            if workflow.now() >= next_upkeep:
                await self._release_stale()
                if workflow.patched(SPOT_PRICE_HISTORY):
                    await self._reprice_spot()
                next_upkeep = workflow.now() + self._state.rules.upkeep_interval
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._notify_admitted()
        self._accrue(workflow.now())
        workflow.continue_as_new(self._state)

    @workflow.update
    def apply(self, batch: LedgerBatch) -> LedgerBatchResult:
        """Everything one worker asks at once: releases first (they free room), then
        launches recorded, then reservations in the order the worker sent them."""
        self._state.rules = batch.rules
        costs = [self._release(pod) for pod in batch.release]
        for record in batch.launched:
            self._record_launch(record)
        callers = {claim.pod for claim in batch.reserve}
        admissions = [self._reserve(claim, callers) for claim in batch.reserve]
        if batch.release and not batch.reserve:
            self._admit_waiting()
        return LedgerBatchResult(admissions=admissions, costs=costs)

    def _reserve(self, claim: Claim, callers: set[str]) -> Admission:
        held = self._state.admitted.get(claim.pod)
        if held is not None and held.claim == claim:
            return Admission(admitted=True)
        if held is not None:
            # Another offering for the same pod (a fallback): it replaces the one it had.
            self._drop(claim.pod)
            others = [a.claim for a in self._state.admitted.values()]
            if self._hold(claim, others) is None:
                self._admit(claim)
                return Admission(admitted=True)
        waiting = self._state.waiting
        position = next((i for i, c in enumerate(waiting) if c.pod == claim.pod), None)
        if position is None:
            waiting.append(claim)
        else:
            waiting[position] = claim
        self._admit_waiting(callers=callers)
        if claim.pod in self._state.admitted:
            return Admission(admitted=True)
        order = [c.pod for c in self._state.waiting]
        return Admission(
            admitted=False, hold=self._holds.get(claim.pod), position=order.index(claim.pod) + 1
        )

    def _record_launch(self, record: LaunchRecord) -> None:
        admitted = self._state.admitted.get(record.pod)
        if admitted is None or admitted.launched_at is not None:
            return
        now = workflow.now()
        launched_at = now if record.launched_at is None else min(record.launched_at, now)
        admitted.launched_at = launched_at
        admitted.accrued_until = launched_at
        admitted.instance_id = record.instance_id
        if admitted.claim.capacity_type == "spot" and admitted.claim.zone:
            admitted.spot_pricing = SpotPricing(
                price=admitted.claim.hourly_price, since=launched_at
            )

    def _release(self, pod: str) -> Decimal:
        """End a pod's claim (waiting or admitted); the dollars its instance cost."""
        return self._drop(pod)

    @workflow.signal
    def offering_unavailable(self, mark: OfferingMark) -> None:
        """A worker's launch met a capacity error: every worker's next plans put it last."""
        kept = [m for m in self._state.unavailable if m.offering != mark.offering]
        self._state.unavailable = [*kept, mark]

    @workflow.query
    def unavailable_offerings(self) -> list[OfferingMark]:
        now = workflow.now()
        return [m for m in self._state.unavailable if m.until > now]

    @workflow.query
    def summary(self) -> LedgerSummary:
        now = workflow.now()
        admitted = self._state.admitted.values()
        claims = [a.claim for a in admitted]
        uses = []
        for budget in self._state.rules.budgets:
            namespaces = (
                sorted({c.namespace for c in claims})
                if budget.each_namespace
                else [budget.namespace]
            )
            for namespace in namespaces:
                if budget.kind.is_spend:
                    period = day_of(now) if budget.kind is BudgetKind.DAILY_SPEND else month_of(now)
                    used = self._state.spend.spent(namespace, period)
                else:
                    used = usage(budget, namespace or "", claims)
                uses.append(
                    BudgetUse(
                        setting=budget.setting,
                        scope=namespace or "cluster",
                        used=used,
                        limit=budget.limit,
                    )
                )
        running = [
            PodCost(
                pod=a.claim.pod,
                namespace=a.claim.namespace,
                team=a.claim.team,
                instance_type=a.claim.instance_type,
                started=a.launched_at,
                ended=now,
                cost=a.cost,
                running=True,
                hourly_price=a.claim.hourly_price,
                capacity_type=a.claim.capacity_type,
            )
            for a in admitted
            if a.launched_at is not None
        ]
        return LedgerSummary(
            admitted=len(claims),
            launched=len(running),
            waiting=[c.pod for c in self._state.waiting],
            holds={pod: hold.message for pod, hold in self._holds.items()},
            hourly_cost=sum((a.accrual_price for a in admitted if a.launched_at), Decimal(0)),
            spent_today=self._state.spend.spent(None, day_of(now)),
            spent_this_month=self._state.spend.spent(None, month_of(now)),
            budgets=uses,
            pods=[*self._state.released, *running],
        )

    def _hold(self, claim: Claim, admitted: list[Claim]) -> Hold | None:
        rules = self._state.rules
        return hold_for(
            claim, admitted, self._state.spend, rules.budgets, workflow.now(), rules.minimum_runtime
        )

    def _admit(self, claim: Claim) -> None:
        self._state.admitted[claim.pod] = AdmittedClaim(claim=claim, admitted_at=workflow.now())

    def _admit_waiting(self, callers: set[str] | frozenset[str] = frozenset()) -> None:
        rules = self._state.rules
        newly, self._holds = admit_in_order(
            self._state.waiting,
            [a.claim for a in self._state.admitted.values()],
            self._state.spend,
            rules.budgets,
            workflow.now(),
            rules.minimum_runtime,
        )
        for claim in newly:
            self._admit(claim)
            if claim.pod not in callers:
                self._to_notify.append(claim.pod)
        admitted = {c.pod for c in newly}
        self._state.waiting = [c for c in self._state.waiting if c.pod not in admitted]

    def _drop(self, pod: str) -> Decimal:
        self._state.waiting = [c for c in self._state.waiting if c.pod != pod]
        self._holds.pop(pod, None)
        admitted = self._state.admitted.pop(pod, None)
        if admitted is None:
            return Decimal(0)
        now = workflow.now()
        self._accrue_one(admitted, now)
        if admitted.launched_at is not None:
            self._state.released.append(
                PodCost(
                    pod=pod,
                    namespace=admitted.claim.namespace,
                    team=admitted.claim.team,
                    instance_type=admitted.claim.instance_type,
                    started=admitted.launched_at,
                    ended=now,
                    cost=admitted.cost,
                    hourly_price=admitted.claim.hourly_price,
                    capacity_type=admitted.claim.capacity_type,
                )
            )
        return admitted.cost

    def _accrue(self, now: datetime) -> None:
        for admitted in self._state.admitted.values():
            self._accrue_one(admitted, now)
        self._state.unavailable = [m for m in self._state.unavailable if m.until > now]
        keep_from = now - RELEASED_KEPT
        released = [p for p in self._state.released if p.ended >= keep_from]
        self._state.released = released[-MAX_RELEASED:]
        self._state.spend.forget_before(day_of(keep_from))

    def _accrue_one(self, admitted: AdmittedClaim, now: datetime) -> None:
        if admitted.accrued_until is None or now <= admitted.accrued_until:
            return
        claim = admitted.claim
        for day, dollars in accrual_pieces(admitted.accrued_until, now, admitted.accrual_price):
            self._state.spend.add(claim.namespace, claim.team, day, dollars)
            admitted.cost += dollars
        admitted.accrued_until = now

    async def _announce_spend(self) -> None:
        """Warn the running pods of a scope whose dollar budget reaches the warning threshold;
        when it is spent, tell them new launches are held, or stop them (`enforcement: stop`)."""
        rules, now = self._state.rules, workflow.now()
        running = [a.claim for a in self._state.admitted.values() if a.launched_at is not None]
        announced = self._state.notified
        found = spend_announcements(
            rules.budgets,
            self._state.spend,
            [c.namespace for c in running],
            now,
            rules.warning_threshold,
            announced,
        )
        current = (day_of(now), month_of(now))
        self._state.notified = {
            k: v for k, v in announced.items() if k.rsplit("|", 1)[1] in current
        }
        for announcement in found:
            self._state.notified[announcement.key] = announcement.level
            workflow.logger.warning("budget %s: %s", announcement.level, announcement.message)
            stop = (
                announcement.level is SpendLevel.EXHAUSTED
                and rules.enforcement is BudgetEnforcement.STOP
            )
            for claim in running:
                if not announcement.covers(claim.namespace):
                    continue
                if stop:
                    message = announcement.message.replace(
                        "new launches are held", "limits.enforcement is stop: the pod is stopped"
                    )
                    await self._signal(claim.pod, BUDGET_EXHAUSTED_SIGNAL, message)
                else:
                    await self._pod_event(claim.pod, announcement)

    async def _pod_event(self, pod: str, announcement: SpendAnnouncement) -> None:
        ref = pod_ref_from_workflow_id(pod)
        if ref is None:
            return
        reason = "BudgetWarning" if announcement.level is SpendLevel.WARNING else "BudgetExhausted"
        try:
            await workflow.execute_activity(
                "record_pod_event",
                PodEventReport(
                    pod=ref, type=EventType.WARNING, reason=reason, message=announcement.message
                ),
                task_queue=self._state.rules.task_queue or None,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(maximum_attempts=3),
                summary=f"{reason} on {ref.key}",
            )
        except ActivityError:
            workflow.logger.info("could not post %s on %s", reason, ref.key)

    async def _signal(self, pod: str, signal: str, arg: object = None) -> None:
        try:
            handle = workflow.get_external_workflow_handle(pod)
            await (handle.signal(signal) if arg is None else handle.signal(signal, arg))
        except Exception:  # a pod whose workflow ended: upkeep releases its claim
            workflow.logger.info("could not signal %s to %s", signal, pod)

    async def _notify_admitted(self) -> None:
        pods, self._to_notify = self._to_notify, []
        for pod in pods:
            if pod not in self._state.admitted:
                continue
            await self._signal(pod, LAUNCH_ADMITTED_SIGNAL)

    async def _reprice_spot(self) -> None:
        """Correct the running spot claims' accrual by their zones' spot price history."""
        spot = [a for a in self._state.admitted.values() if a.spot_pricing is not None]
        if not spot:
            return
        self._accrue(workflow.now())
        offerings = {
            SpotOffering(instance_type=a.claim.instance_type, zone=a.claim.zone or "") for a in spot
        }
        since = min(a.spot_pricing.since for a in spot if a.spot_pricing is not None)
        try:
            history: list[SpotPricePoint] = await workflow.execute_activity(
                "spot_price_history",
                SpotPriceQuery(
                    offerings=sorted(offerings, key=lambda o: (o.instance_type, o.zone)),
                    since=since,
                ),
                result_type=list[SpotPricePoint],
                task_queue=self._state.rules.task_queue or None,
                start_to_close_timeout=timedelta(minutes=1),
                retry_policy=RetryPolicy(maximum_attempts=3),
                summary=f"spot prices of {len(offerings)} offerings",
            )
        except ActivityError:
            workflow.logger.warning("could not read spot price history; accruing at known prices")
            return
        # Claims released while the activity ran were billed at the price known then.
        for admitted in self._state.admitted.values():
            pricing, claim = admitted.spot_pricing, admitted.claim
            if pricing is None or admitted.accrued_until is None:
                continue
            points = [
                p for p in history if (p.instance_type, p.zone) == (claim.instance_type, claim.zone)
            ]
            repriced = reprice(pricing, points, admitted.accrued_until)
            for day, dollars in repriced.corrections:
                self._state.spend.add(claim.namespace, claim.team, day, dollars)
                admitted.cost += dollars
            admitted.spot_pricing = repriced.pricing

    async def _release_stale(self) -> None:
        pods = sorted({*self._state.admitted, *(c.pod for c in self._state.waiting)})
        if not pods:
            return
        try:
            running: list[str] = await workflow.execute_activity(
                "ledger_running_pods",
                pods,
                result_type=list[str],
                task_queue=self._state.rules.task_queue or None,
                start_to_close_timeout=timedelta(minutes=1),
                retry_policy=RetryPolicy(maximum_attempts=3),
                summary=f"which of {len(pods)} pods still run",
            )
        except ActivityError:
            workflow.logger.warning("could not tell which pods still run; releasing nothing")
            return
        # A pod that reserved while the check ran is kept: only pods known before it are stale.
        stale = set(pods) - set(running)
        for pod in sorted(stale):
            if pod in self._state.admitted or any(c.pod == pod for c in self._state.waiting):
                workflow.logger.info("releasing the claim of a pod whose workflow ended: %s", pod)
                self._drop(pod)
        if stale:
            self._admit_waiting()
