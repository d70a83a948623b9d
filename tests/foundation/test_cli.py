"""The `orca` command line: every command has --help; version works without a config."""

from __future__ import annotations

import subprocess
import sys

import pytest

from orca.cli.main import build_parser, main

COMMANDS = ["version", "worker", "watcher", "dev"]


def test_every_command_has_help() -> None:
    choices = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert set(COMMANDS) <= set(choices)
    for command in choices:
        result = subprocess.run(
            [sys.executable, "-m", "orca.cli.main", command, "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "usage: orca" in result.stdout


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("orca 0.1.0")
    assert "temporalio" in out


def test_unknown_command_exits_2() -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["launch-everything"])
    assert exit_info.value.code == 2
