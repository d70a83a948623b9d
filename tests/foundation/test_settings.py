"""Settings: the Go ORCA files load unchanged; every bad file names the key and what is allowed."""

from __future__ import annotations

import shutil
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from orca.cli.main import main
from orca.settings import ConfigError, LaunchType, SelectionMode, load_settings

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "orca-go"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("ORCA_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # no ./orca.yaml is picked up by accident


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def reference(name: str, tmp_path: Path) -> Path:
    source = REFERENCE / name
    if not source.exists():
        pytest.skip(f"the Go ORCA reference files are not beside the project ({source})")
    return Path(shutil.copy(source, tmp_path / name))


def test_go_orca_production_config_loads_unchanged(tmp_path: Path) -> None:
    settings = load_settings(reference("config.yaml", tmp_path))
    assert settings.aws.region == "us-west-2"
    assert settings.aws.subnets == ("subnet-00e5cb8f78655a3a0",)
    assert settings.aws.security_group_ids == ("sg-003dbf519fdf032e0",)
    assert settings.aws.tags["ManagedBy"] == "ORCA"
    assert settings.node.name == "orca-aws-node"
    assert settings.node.taints[0].key == "orca.research/burst-node"
    assert settings.instances.selection_mode is SelectionMode.EXPLICIT
    assert settings.limits.max_concurrent_instances == 50
    assert settings.limits.max_instance_lifetime is None


def test_go_orca_dev_config_loads_with_templates_and_limits(tmp_path: Path) -> None:
    settings = load_settings(reference("config.dev.yaml", tmp_path))
    llm = settings.instances.templates["llm-training"]
    assert llm.instance_type == "p5.48xlarge"
    assert llm.launch_type is LaunchType.SPOT
    assert llm.max_spot_price == Decimal("50.00")
    assert settings.instances.max_spot_prices["g5.xlarge"] == Decimal("2.00")
    assert settings.limits.max_instance_lifetime == timedelta(hours=4)
    assert settings.limits.namespace_quotas["default"].max_gpus == 2
    assert settings.development.cleanup_interval == timedelta(minutes=1)


def test_environment_overrides_the_file_key_by_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "aws: {region: us-west-2, subnetID: subnet-1}\nlimits: {dailyBudget: 5}")
    monkeypatch.setenv("ORCA_AWS__REGION", "eu-central-1")
    monkeypatch.setenv("ORCA_LIMITS__MAX_CONCURRENT_INSTANCES", "7")
    monkeypatch.setenv("ORCA_TEMPORAL__ADDRESS", "temporal.example:7233")
    settings = load_settings(path)
    assert settings.aws.region == "eu-central-1"
    assert settings.aws.subnet_id == "subnet-1"  # kept from the file
    assert settings.limits.max_concurrent_instances == 7
    assert settings.limits.daily_budget == Decimal(5)
    assert settings.temporal.address == "temporal.example:7233"


def test_search_order_uses_orca_config_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "aws: {region: ap-south-1}")
    monkeypatch.setenv("ORCA_CONFIG", str(path))
    assert load_settings().aws.region == "ap-south-1"


def test_search_order_finds_orca_yaml_in_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / "orca.yaml").write_text("aws: {region: sa-east-1}")
    assert load_settings().aws.region == "sa-east-1"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "aws: {region: x}\ninstances: {selectionMode: fastest}",
            "instances.selectionMode: Input should be 'explicit', 'template' or 'auto'",
        ),
        (
            "aws: {region: x}\nlimits: {maxConcurrentInstances: -1}",
            "limits.maxConcurrentInstances: Input should be greater than or equal to 0",
        ),
        (
            "aws: {region: x}\nlimits: {maxConcurrentInstances: many}",
            "limits.maxConcurrentInstances",
        ),
        ("node: {name: n}", "aws: required key is missing"),
        ("aws: {vpcID: vpc-1}", "aws.region: required key is missing"),
        (
            "aws: {region: x}\ninstances: {templates: {big: {launchType: spot}}}",
            "instances.templates.big.instanceType: required key is missing",
        ),
        ("aws: {region: x, subnetId: s}", "aws.subnetId: unknown key; allowed here: region"),
        (
            "aws: {region: x}\nnode: {taints: [{key: a, effect: Never}]}",
            "node.taints[0].effect: Input should be 'NoSchedule', 'PreferNoSchedule' or",
        ),
        ("aws: {region: x}\nlimits: {maxInstanceLifetime: 4 hours}", "expected a duration"),
        ("aws: {region: x}\nnode: {gpu: lots}", "node.gpu: 'lots' is not a quantity"),
        (
            "aws: {region: x}\ninstances: {selectionMode: template}",
            "selectionMode 'template' needs instances.defaultTemplate",
        ),
        ("- just\n- a list", "must be a YAML mapping of sections"),
        ("aws: {region: x\n", "is not valid YAML at line"),
    ],
)
def test_bad_config_names_the_key_and_what_is_allowed(
    tmp_path: Path, text: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(write(tmp_path, text))
    assert expected in str(error.value)


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml")


def test_cli_exits_2_on_a_bad_config_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "aws: {region: x}\ninstances: {selectionMode: fastest}")
    assert main(["--config", str(path), "worker"]) == 2
    err = capsys.readouterr().err
    assert "instances.selectionMode" in err
    assert "Traceback" not in err
