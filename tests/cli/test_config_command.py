"""`orca config validate|show|schema`: no service runs; the files are real files."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from orca.cli.main import main

DEPLOY_CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "base" / "config.yaml"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "orca.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def test_validate_accepts_the_shipped_config(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "config", "validate", str(DEPLOY_CONFIG))
    assert code == 0, err
    assert out.strip() == f"{DEPLOY_CONFIG}: valid (region us-west-2, cluster research-cluster)"


def test_validate_names_every_bad_key_and_what_is_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        {
            "aws": {"region": "us-west-2"},
            "instances": {"selectionMode": "cheapest"},
            "limits": {"maxConcurrentInstances": -1},
        },
    )
    code, out, err = run(capsys, "--config", str(path), "config", "validate")
    assert code == 2
    assert out == ""
    assert "instances.selectionMode: Input should be 'explicit', 'template' or 'auto'" in err
    assert "limits.maxConcurrentInstances: Input should be greater than or equal to 0" in err
    assert "Traceback" not in err


def test_validate_names_an_unknown_key_with_the_allowed_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, {"aws": {"region": "us-west-2"}, "temporal": {"adress": "x:7233"}})
    code, _, err = run(capsys, "config", "validate", str(path))
    assert code == 2
    assert "temporal.adress: unknown key; allowed here: address, publicAddress" in err


def test_validate_without_a_file_says_how_to_give_one(
    capsys: pytest.CaptureFixture[str], no_config_file: None
) -> None:
    code, _, err = run(capsys, "config", "validate")
    assert code == 2
    assert "no config file to validate: give FILE or --config" in err


def test_show_prints_the_effective_settings_with_secrets_masked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(
        tmp_path,
        {
            "aws": {
                "region": "eu-west-1",
                "credentials": {"accessKeyID": "AKIAEXAMPLE", "secretAccessKey": "s3cr3t"},
            },
            "temporal": {"apiKey": "tok-123"},
        },
    )
    monkeypatch.setenv("ORCA_TEMPORAL__NAMESPACE", "research")  # the environment wins
    code, out, err = run(capsys, "config", "show", "--config", str(path))
    assert code == 0, err
    shown = yaml.safe_load(out)
    assert shown["aws"]["region"] == "eu-west-1"
    assert shown["temporal"]["namespace"] == "research"
    assert shown["temporal"]["apiKey"] == "**********"
    assert shown["aws"]["credentials"]["secretAccessKey"] == "**********"
    assert "s3cr3t" not in out
    assert "tok-123" not in out
    assert shown["limits"]["minimumRuntime"] == "1h"  # durations as written in the file

    code, out, _ = run(capsys, "config", "show", "--config", str(path), "-o", "json")
    assert code == 0
    assert json.loads(out)["temporal"]["apiKey"] == "**********"


def test_schema_is_the_settings_model_and_checks_files_as_the_model_does(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(capsys, "config", "schema")
    assert code == 0, err
    schema = json.loads(out)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["required"] == ["aws"]
    assert schema["additionalProperties"] is False
    temporal = schema["$defs"]["TemporalSettings"]["properties"]
    assert "taskQueue" in temporal
    assert "uiURL" in temporal
    assert "Temporal UI" in temporal["uiURL"]["description"]  # attribute docstrings

    validator = jsonschema.Draft202012Validator(schema)
    shipped = yaml.safe_load(DEPLOY_CONFIG.read_text(encoding="utf-8"))
    assert list(validator.iter_errors(shipped)) == []
    bad = {"aws": {"region": "us-west-2"}, "instances": {"launchTimeout": "ten minutes"}}
    [error] = validator.iter_errors(bad)
    assert list(error.absolute_path) == ["instances", "launchTimeout"]
