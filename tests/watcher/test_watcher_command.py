"""`orca watcher`: expected failures end with a message and exit code 1, never a traceback."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from orca.cli.main import main


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_missing_kubeconfig_is_a_message_and_exit_code_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "orca.yaml"
    missing = tmp_path / "nope" / "kubeconfig"
    config.write_text(f"aws:\n  region: us-west-2\nkubernetes:\n  kubeconfig: {missing}\n")
    assert main(["--config", str(config), "watcher"]) == 1
    err = capsys.readouterr().err
    assert "orca watcher:" in err
    assert "kubernetes.kubeconfig" in err
    assert "Traceback" not in err


def test_a_mock_aws_config_is_named_at_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "orca.yaml"
    missing = tmp_path / "nope" / "kubeconfig"
    config.write_text(
        "aws:\n  region: us-west-2\n  vpcID: vpc-1\ndevelopment:\n  mockAWS: true\n"
        f"kubernetes:\n  kubeconfig: {missing}\n"
    )
    assert main(["--config", str(config), "watcher"]) == 1
    output = "".join(capsys.readouterr())
    assert "development.mockAWS is true: ORCA launches nothing" in output
    assert "aws.vpcID is ignored" in output


def test_help_describes_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["watcher", "--help"])
    assert "virtual node" in capsys.readouterr().out
