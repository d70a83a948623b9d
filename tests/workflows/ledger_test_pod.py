"""A stand-in for a pod's workflow in the ledger tests, in a module of its own: the workflow
sandbox re-imports the module that defines a workflow, and a test module's imports (pytest and
its plugins) touch what the sandbox forbids (`random.getrandbits`)."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from orca.workflows.ledger_models import BUDGET_EXHAUSTED_SIGNAL


@workflow.defn(name="LedgerTestPod")
class LedgerTestPod:
    """Running until signalled, so the ledger's upkeep sees its pod as live."""

    def __init__(self) -> None:
        self._done = False
        self.stopped_because: str | None = None

    @workflow.signal
    def finish(self) -> None:
        self._done = True

    @workflow.signal(name=BUDGET_EXHAUSTED_SIGNAL)
    def budget_exhausted(self, message: str) -> None:
        self.stopped_because = message
        self._done = True

    @workflow.run
    async def run(self) -> str | None:
        await workflow.wait_condition(lambda: self._done)
        return self.stopped_because
