"""Reading the cluster's budget ledger (`BudgetLedger`, ID `orca-ledger/<clusterName>`) for reports.

`orca usage`, `orca status` and the worker's ledger metrics ask the ledger's `summary` query
through `read_ledger_summary`. A cluster has no ledger until its first launch (update-with-start
creates it), so "no ledger" is its own answer (`LedgerNotFound`), not an error of the server.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from orca.workflows.budget_ledger import BudgetLedger
from orca.workflows.ledger_models import LedgerSummary, ledger_workflow_id

SUMMARY_TIMEOUT = timedelta(seconds=10)


class LedgerNotFound(Exception):  # noqa: N818 - reads as the answer, like Temporal's NotFound
    """The cluster has no budget ledger yet (it starts with the first launch)."""

    def __init__(self, cluster_name: str) -> None:
        super().__init__(
            f"no budget ledger for cluster {cluster_name} yet (it starts with the first launch)"
        )
        self.cluster_name = cluster_name


async def read_ledger_summary(
    client: Client, cluster_name: str, rpc_timeout: timedelta = SUMMARY_TIMEOUT
) -> LedgerSummary:
    """The latest run's `summary`; `LedgerNotFound` when the cluster has none, `RPCError` and
    `WorkflowQueryFailedError` as Temporal raises them otherwise."""
    handle = client.get_workflow_handle_for(BudgetLedger.run, ledger_workflow_id(cluster_name))
    try:
        summary: LedgerSummary = await handle.query(BudgetLedger.summary, rpc_timeout=rpc_timeout)
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            raise LedgerNotFound(cluster_name) from None
        raise
    return summary
