"""The cluster-wide memory of offerings that just ran out of capacity, in each worker.

A worker whose launch meets InsufficientInstanceCapacity marks the offering in its own
`UnavailableOfferings` and signals the budget ledger (`BudgetLedgerClient.offering_unavailable`).
This loop brings the other workers' marks into this worker: every `interval` it reads the
ledger's `unavailable_offerings` query and marks each one locally for the time it has left, so
the next plans in every worker put that offering last. A ledger that does not exist yet or a
Temporal outage only delays the sharing: launches never wait for it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import structlog
from temporalio.service import RPCError

from orca.activities.launch_admission import BudgetLedgerClient
from orca.activities.unavailable_offerings import UnavailableOfferings

log = structlog.get_logger(__name__)


async def share_unavailable_offerings(
    ledger: BudgetLedgerClient, unavailable: UnavailableOfferings, interval: float = 10.0
) -> None:
    """Run until cancelled."""
    failing = False
    while True:
        try:
            marks = await ledger.unavailable_offerings()
        except RPCError as error:
            if not failing:
                log.info("cannot read the cluster's unavailable offerings yet", error=error.message)
            failing = True
        else:
            failing = False
            now = datetime.now(UTC)
            for mark in marks:
                left = (mark.until - now).total_seconds()
                if left > 0:
                    unavailable.mark(mark.offering, for_seconds=left)
        await asyncio.sleep(interval)
