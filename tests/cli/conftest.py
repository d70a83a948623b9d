"""The operator commands run in-process (`orca.cli.main.main`); each configures logging for
itself, so the root logger's handlers are restored after every test."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _command_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in [n for n in os.environ if n.startswith("ORCA_")]:
        monkeypatch.delenv(name)
    # The AWS emulator accepts any credentials; the commands need some to sign requests.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def no_config_file(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A researcher's shell: no ./orca.yaml, no ~/.config/orca/config.yaml, no $ORCA_CONFIG
    (the autouse fixture removes every ORCA_ variable), no $KUBECONFIG."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.chdir(home)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    if Path("/etc/orca/config.yaml").exists():
        pytest.skip("/etc/orca/config.yaml exists here: every command would read it")
