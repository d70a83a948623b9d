"""Replay every committed history in tests/histories/ against the current workflow code.

This is the CI check for workflow changes: a change that would make a real, already-recorded run
take a different path (another activity, another order, a missing timer) fails here with the
Replayer's nondeterminism error, before any deployed workflow meets it. The histories were
captured from real runs on `orca dev` by `python -m tests.replay.capture_histories`, except the
`spot-recovery*` ones: runs of `test_spot_recovery`'s interruption scenario (fake activities, a
runner restart count of 2 shown, a 4 h max lifetime), before `relaunch-continues-pod`, before
`pod-lifecycle-2` and after it. A `<scenario>-before-<patch>.json` is a run recorded before that
patch: the code must still replay runs that old workflows left open.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory

from orca.cli.main import main
from orca.cli.replay import histories_from, read_history_files, replay_histories

HISTORIES = Path(__file__).resolve().parent.parent / "histories"
FILES = sorted(HISTORIES.glob("*.json"))
SCENARIOS = {"happy-path", "capacity-fallback", "invalid-pod", "deletion", "spot-recovery"}


def test_every_scenario_has_a_committed_history() -> None:
    assert {path.stem for path in FILES} >= SCENARIOS


@pytest.mark.parametrize("path", FILES, ids=[path.stem for path in FILES])
async def test_committed_history_replays(path: Path) -> None:
    [history] = [h for h in read_history_files(HISTORIES) if h.workflow_id == path.stem]
    [outcome] = await replay_histories(histories_from([history]))
    assert outcome.failure is None, f"{path.name} no longer replays: {outcome.failure}"


async def test_a_changed_workflow_is_reported_as_nondeterministic() -> None:
    """The check can fail: rename the first activity the history scheduled, as if the workflow
    code now called another one at that point."""
    document = json.loads((HISTORIES / "happy-path.json").read_text(encoding="utf-8"))
    for event in document["events"]:
        attributes = event.get("activityTaskScheduledEventAttributes")
        if attributes is not None:
            attributes["activityType"]["name"] = "launch_something_else"
            break
    history = WorkflowHistory.from_json("tampered", document)
    [outcome] = await replay_histories(histories_from([history]))
    assert outcome.failure is not None
    assert "nondetermin" in str(outcome.failure).lower()


def test_orca_replay_over_the_committed_histories(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "--histories", str(HISTORIES)]) == 0
    out = capsys.readouterr().out
    assert f"{len(read_history_files(HISTORIES))} replayed" in out
    assert "NONDETERMINISTIC" not in out


def test_orca_replay_exits_1_on_nondeterminism(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = json.loads((HISTORIES / "happy-path.json").read_text(encoding="utf-8"))
    for event in document["events"]:
        attributes = event.get("activityTaskScheduledEventAttributes")
        if attributes is not None:
            attributes["activityType"]["name"] = "launch_something_else"
            break
    (tmp_path / "tampered.json").write_text(json.dumps(document), encoding="utf-8")
    assert main(["replay", "--histories", str(tmp_path)]) == 1
    assert "NONDETERMINISTIC  tampered" in capsys.readouterr().out


def test_orca_replay_refuses_a_folder_without_histories(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.json").write_text("{not json", encoding="utf-8")
    assert main(["replay", "--histories", str(tmp_path)]) == 2
    assert "is not a workflow history" in capsys.readouterr().err
    assert main(["replay", "--histories", str(tmp_path / "missing")]) == 2
