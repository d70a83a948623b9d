"""`orca replay`: replay PodLifecycle histories against the current workflow code.

Run it before deploying new workflow code: any history the new code would not reproduce command
for command is reported as nondeterministic (exit 1), so the change needs a patch
(`workflow.patched`) or a new workflow version. Histories come from the server (one workflow ID,
or every workflow matching a visibility query, e.g. all failed ones) or from JSON files, the form
CI replays from `tests/histories/`. `--export DIR` writes the fetched histories as JSON files
(`temporal workflow show --output json` reads the same way), which is how those are captured.

A history file is named after its workflow ID with `/` written as `__`
(`pod__default__train-1__<uid>.json`); any other name is used as the ID as it is.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from google.protobuf import json_format
from temporalio.client import Client, WorkflowHistory
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Replayer

from orca.cli import connections
from orca.cli.errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, CommandError
from orca.payload_codec import DATA_CONVERTER
from orca.settings import Settings
from orca.workflow_ids import POD_LIFECYCLE_QUERY

ID_SEPARATOR = "__"


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="replay workflow histories against the current code; report nondeterminism",
        description="Replay PodLifecycle histories with Temporal's Replayer and report, per "
        "workflow, OK or nondeterministic with the error. Exit 1 if any fails. Without a "
        "source, replays the newest workflows on the server (--limit).",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--workflow-id", action="append", metavar="ID", help="one workflow (repeatable)"
    )
    source.add_argument(
        "--query",
        metavar="QUERY",
        help="visibility query, e.g. 'ExecutionStatus=\"Failed\"' (PodLifecycle workflows only)",
    )
    source.add_argument(
        "--histories", type=Path, metavar="DIR", help="replay the *.json history files in DIR"
    )
    parser.add_argument(
        "--limit", type=int, default=200, help="at most this many workflows from the server"
    )
    parser.add_argument(
        "--export",
        type=Path,
        metavar="DIR",
        help="also write each fetched history to DIR as JSON (for tests/histories/)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise CommandError(f"--limit {args.limit}: give a number >= 1", EXIT_USAGE)
    if args.histories is not None:
        if args.export is not None:
            raise CommandError(
                "--export needs histories from the server, not --histories", EXIT_USAGE
            )
        histories = read_history_files(args.histories)
        return asyncio.run(_replay_and_report(histories_from(histories), sys.stdout))
    settings = connections.load_command_settings(args)
    return asyncio.run(_replay_from_server(settings, args))


async def _replay_from_server(settings: Settings, args: argparse.Namespace) -> int:
    client = await connections.temporal(settings)
    histories: AsyncIterator[WorkflowHistory]
    if args.workflow_id:
        histories = _by_id(client, args.workflow_id)
    else:
        query = POD_LIFECYCLE_QUERY + (f" AND ({args.query})" if args.query else "")
        histories = _by_query(client, query, args.limit)
    try:
        # Fetch everything before replaying: an error raised inside the Replayer's iterator
        # would surface from its worker thread instead of as a message.
        fetched = [history async for history in histories]
    except RPCError as error:
        if error.status is RPCStatusCode.INVALID_ARGUMENT:
            raise CommandError(f"Temporal refused the query: {error.message}", EXIT_USAGE) from None
        raise CommandError(
            f"fetching histories from Temporal at {settings.temporal.address} failed: "
            f"{error.message}"
        ) from None
    if args.export is not None:
        export_histories(fetched, args.export, sys.stdout)
    return await _replay_and_report(histories_from(fetched), sys.stdout)


async def _by_id(client: Client, workflow_ids: Iterable[str]) -> AsyncIterator[WorkflowHistory]:
    for workflow_id in workflow_ids:
        try:
            yield await client.get_workflow_handle(workflow_id).fetch_history()
        except RPCError as error:
            if error.status is RPCStatusCode.NOT_FOUND:
                raise CommandError(
                    f"no workflow {workflow_id} in namespace {client.namespace}", EXIT_USAGE
                ) from None
            raise


async def _by_query(client: Client, query: str, limit: int) -> AsyncIterator[WorkflowHistory]:
    async for history in client.list_workflows(query, limit=limit).map_histories():
        yield history


def export_histories(histories: Iterable[WorkflowHistory], folder: Path, out: TextIO) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for history in histories:
        path = folder / history_file_name(history.workflow_id)
        path.write_text(history.to_json() + "\n", encoding="utf-8")
        print(f"wrote {path}", file=out)


def history_file_name(workflow_id: str) -> str:
    return workflow_id.replace("/", ID_SEPARATOR) + ".json"


def workflow_id_from_file(path: Path) -> str:
    return path.stem.replace(ID_SEPARATOR, "/")


def read_history_files(folder: Path) -> list[WorkflowHistory]:
    """Every `*.json` history in `folder` (sorted by name); `CommandError` for unreadable ones."""
    if not folder.is_dir():
        raise CommandError(f"{folder} is not a directory of history files", EXIT_USAGE)
    histories = []
    for path in sorted(folder.glob("*.json")):
        try:
            histories.append(
                WorkflowHistory.from_json(
                    workflow_id_from_file(path), path.read_text(encoding="utf-8")
                )
            )
        except (ValueError, KeyError, TypeError, json_format.ParseError) as error:
            raise CommandError(
                f"{path} is not a workflow history in JSON ({error})", EXIT_USAGE
            ) from None
    if not histories:
        raise CommandError(f"{folder} holds no *.json history files", EXIT_USAGE)
    return histories


async def histories_from(items: Iterable[WorkflowHistory]) -> AsyncIterator[WorkflowHistory]:
    for item in items:
        yield item


@dataclass(frozen=True)
class ReplayOutcome:
    workflow_id: str
    run_id: str
    failure: Exception | None


def pod_lifecycle_replayer() -> Replayer:
    """A Replayer for the workflow code in this checkout, with the workers' data converter."""
    from orca.workflows.pod_lifecycle import PodLifecycle

    return Replayer(workflows=[PodLifecycle], data_converter=DATA_CONVERTER)


async def replay_histories(histories: AsyncIterator[WorkflowHistory]) -> list[ReplayOutcome]:
    """Replay each history; a failure is recorded, not raised, so every history is checked."""
    outcomes = []
    async with pod_lifecycle_replayer().workflow_replay_iterator(histories) as results:
        async for result in results:
            outcomes.append(
                ReplayOutcome(
                    workflow_id=result.history.workflow_id,
                    run_id=result.history.run_id,
                    failure=result.replay_failure,
                )
            )
    return outcomes


async def _replay_and_report(histories: AsyncIterator[WorkflowHistory], out: TextIO) -> int:
    outcomes = await replay_histories(histories)
    if not outcomes:
        print("No workflow histories matched; nothing replayed.", file=out)
        return EXIT_OK
    failed = [o for o in outcomes if o.failure is not None]
    for outcome in outcomes:
        if outcome.failure is None:
            print(f"OK                {outcome.workflow_id} (run {outcome.run_id})", file=out)
        else:
            print(
                f"NONDETERMINISTIC  {outcome.workflow_id} (run {outcome.run_id}): "
                f"{outcome.failure}",
                file=out,
            )
    print(
        f"{len(outcomes)} replayed, {len(outcomes) - len(failed)} OK, {len(failed)} failed",
        file=out,
    )
    return EXIT_FAILURE if failed else EXIT_OK
