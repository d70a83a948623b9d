"""Settings the Go ORCA accepted that would spend money or mean something else here.

`development.mockAWS: true` launches nothing (as `dryRun`); every other accepted-but-unused key
is named by `ignored_settings`, which the worker and the watcher log at start.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from orca.settings import (
    DEBUG_ANNOTATION_WARNING,
    AwsSettings,
    DevelopmentSettings,
    Settings,
    ignored_settings,
    load_settings,
)

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "orca-go"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("ORCA_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def load(tmp_path: Path, text: str) -> Settings:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return load_settings(path)


def test_mock_aws_means_launch_nothing_like_dry_run(tmp_path: Path) -> None:
    settings = load(tmp_path, "aws: {region: us-west-2}\ndevelopment: {mockAWS: true}")
    assert settings.development.launches_nothing
    assert not settings.development.dry_run
    assert any(
        "development.mockAWS" in line and "launches nothing" in line
        for line in ignored_settings(settings)
    )


def test_dry_run_launches_nothing_and_the_defaults_launch() -> None:
    assert DevelopmentSettings(dry_run=True).launches_nothing
    assert not DevelopmentSettings().launches_nothing
    assert not DevelopmentSettings(mock_aws=False, dry_run=False).launches_nothing


def test_defaults_name_only_the_debug_annotation() -> None:
    assert ignored_settings(Settings(aws=AwsSettings(region="us-west-2"))) == [
        DEBUG_ANNOTATION_WARNING
    ]


def test_every_accepted_but_unused_key_is_named(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        """
aws: {region: us-west-2, vpcID: vpc-1, developmentMode: true}
metrics: {prometheus: {enabled: false}}
development: {enableFastCleanup: true, cleanupInterval: 1m}
""",
    )
    named = " | ".join(ignored_settings(settings))
    for key in (
        "aws.vpcID",
        "aws.developmentMode",
        "metrics.prometheus.enabled",
        "development.enableFastCleanup",
        "development.cleanupInterval",
        "orca.research/debug",
    ):
        assert key in named, key
    assert "development.mockAWS" not in named


def test_go_orca_dev_config_names_what_it_sets(tmp_path: Path) -> None:
    source = REFERENCE / "config.dev.yaml"
    if not source.exists():
        pytest.skip(f"the Go ORCA reference files are not beside the project ({source})")
    settings = load_settings(Path(shutil.copy(source, tmp_path / "config.dev.yaml")))
    named = " | ".join(ignored_settings(settings))
    assert "aws.vpcID" in named  # the Go file sets vpcID and developmentMode: true
    assert "aws.developmentMode" in named
    assert "development.enableFastCleanup" in named
    assert not settings.development.launches_nothing  # mockAWS: false there
