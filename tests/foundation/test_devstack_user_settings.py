"""`orca dev` applies the user's settings (`--config FILE`, `ORCA_*`) over its generated ones and
keeps only its own endpoints, ports and emulator wiring. (That the worker really runs with them
is shown by tests/e2e/test_orphan_sweep.py, whose stack is configured by environment alone.)"""

from __future__ import annotations

import socket
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from orca.cli.main import main
from orca.settings import ConfigError, SelectionMode
from orca_devstack import user_settings
from orca_devstack.stack import DevStack, DevStackOptions

AWS_DEFAULTS = {
    "subnet_ids": {"us-west-2a": "subnet-a"},
    "security_group_id": "sg-1",
    "interruption_queue_url": "http://127.0.0.1:5000/123456789012/orca-interruptions",
}

USER_FILE = """
instances:
  selectionMode: template
  defaultTemplate: small
  templates:
    small: {instanceType: m5.large, launchType: on-demand}
orphans: {minAge: 3m}
temporal: {address: temporal.example.org:7233}
aws: {region: eu-west-1, subnetIDs: [subnet-real], tags: {team: vision}}
"""


def written_config(tmp_path: Path, user: user_settings.UserSettings) -> Path:
    stack = DevStack(DevStackOptions(state_dir=tmp_path), say=lambda _: None, user=user)
    stack.aws_defaults = AWS_DEFAULTS
    return stack._write_config("http://127.0.0.1:5000", tmp_path / "kubeconfig")


def test_file_and_environment_apply_over_the_generated_settings(tmp_path: Path) -> None:
    file = tmp_path / "mine.yaml"
    file.write_text(USER_FILE)
    environ = {
        "ORCA_ORPHANS__SWEEP_INTERVAL": "20s",
        "ORCA_TEMPORAL__ADDRESS": "elsewhere:7233",
        "ORCA_METRICS__PORT": "1",
        "HOME": "/root",
    }
    user = user_settings.collect(file, environ)

    assert "orphans.sweepInterval (ORCA_ORPHANS__SWEEP_INTERVAL)" in user.applied
    assert f"instances.templates.small.instanceType ({file})" in user.applied
    assert f"aws.tags.team ({file})" in user.applied
    assert f"temporal.address ({file})" in user.ignored
    assert f"aws.region ({file})" in user.ignored
    assert f"aws.subnetIDs ({file})" in user.ignored
    assert "ORCA_TEMPORAL__ADDRESS" in user.ignored
    assert "ORCA_METRICS__PORT" in user.ignored
    assert user.environment == {"ORCA_ORPHANS__SWEEP_INTERVAL": "20s"}

    path = written_config(tmp_path, user)
    stack = DevStack(DevStackOptions(state_dir=tmp_path), say=lambda _: None, user=user)
    settings = user_settings.check(path, stack._child_env("worker"))
    # The user's settings ...
    assert settings.instances.selection_mode is SelectionMode.TEMPLATE
    assert settings.instances.templates["small"].instance_type == "m5.large"
    assert "llm-training" in settings.instances.templates  # merged with the generated ones
    assert settings.orphans.min_age == timedelta(minutes=3)
    assert settings.orphans.sweep_interval == timedelta(seconds=20)
    assert settings.aws.tags == {"team": "vision"}
    # ... and the stack's own wiring.
    assert settings.temporal.address == "127.0.0.1:7233"
    assert settings.aws.region == "us-west-2"
    assert settings.aws.subnets == ("subnet-a",)
    assert settings.aws.endpoint == "http://127.0.0.1:5000"
    assert settings.metrics.port == 9090
    # The file stays in the documented camelCase spelling, one key per setting.
    text = path.read_text()
    assert "selectionMode: template" in text
    assert "selection_mode" not in text


def test_config_env_var_names_the_file_and_default_paths_are_not_read(tmp_path: Path) -> None:
    file = tmp_path / "mine.yaml"
    file.write_text("orphans: {reportOnly: true}\n")
    from_env = user_settings.collect(None, {"ORCA_CONFIG": str(file)})
    assert from_env.document == {"orphans": {"report_only": True}}
    assert from_env.environment == {}  # ORCA_CONFIG itself is not passed on
    assert user_settings.collect(None, {}) == user_settings.UserSettings()


def test_a_bad_user_setting_is_orcas_usual_message(tmp_path: Path) -> None:
    file = tmp_path / "mine.yaml"
    file.write_text("orphans: {sweepIntervall: 1m}\n")
    with pytest.raises(ConfigError, match=r"orphans\.sweepIntervall: unknown key"):
        user_settings.collect(file, {})
    user = user_settings.collect(None, {"ORCA_ORPHANS__MIN_AGE": "soon"})
    path = written_config(tmp_path, user)
    stack = DevStack(DevStackOptions(state_dir=tmp_path), say=lambda _: None, user=user)
    with pytest.raises(ConfigError, match=r"orphans\.minAge"):
        user_settings.check(path, stack._child_env("worker"))


def test_orca_dev_says_which_user_settings_it_applied(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    file = tmp_path / "mine.yaml"
    file.write_text(yaml.safe_dump({"orphans": {"reportOnly": True}}))
    monkeypatch.setenv("ORCA_ORPHANS__SWEEP_INTERVAL", "20s")
    monkeypatch.setenv("ORCA_TEMPORAL__NAMESPACE", "prod")
    with socket.socket() as holder:  # a taken port stops it right after the summary
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        code = main(
            [
                *("--config", str(file), "dev", "--headless"),
                *("--state-dir", str(tmp_path), "--kube-port", str(port)),
            ]
        )
    assert code == 1
    out = capsys.readouterr().out
    assert "your settings applied: orphans.reportOnly" in out
    assert "orphans.sweepInterval (ORCA_ORPHANS__SWEEP_INTERVAL)" in out
    assert "ignored (the stack's own endpoints, ports and wiring): ORCA_TEMPORAL__NAMESPACE" in out
