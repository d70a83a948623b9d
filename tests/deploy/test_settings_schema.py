"""orca.settings_schema: the JSON Schema generated from the settings model agrees with
`load_settings` — what ORCA loads, the schema accepts, and what it refuses for a bad value, the
schema refuses too (checked with the jsonschema library, no helm needed)."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from orca import settings, settings_schema
from orca.units import parse_duration, parse_quantity
from tests.deploy.conftest import DEPLOY

VALIDATOR = jsonschema.Draft202012Validator(settings_schema.settings_json_schema())


def errors(document: dict[str, Any]) -> list[str]:
    return [error.json_path for error in VALIDATOR.iter_errors(document)]


def base_config() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((DEPLOY / "base" / "config.yaml").read_text())
    return document


def test_the_schema_is_a_valid_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(settings_schema.settings_json_schema())


def test_main_prints_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    settings_schema.main()
    assert json.loads(capsys.readouterr().out) == settings_schema.settings_json_schema()


def test_the_base_configuration_and_the_defaults_validate() -> None:
    assert errors(base_config()) == []
    assert errors({"aws": {"region": "eu-west-1"}}) == []


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("limits", "maxConcurrentInstances", -1),
        ("instances", "launchTimeout", "10minutes"),
        ("instances", "selectionMode", "cheapest"),
        ("node", "memory", "lots"),
        ("node", "cpu", "-4"),
        ("logging", "level", "verbose"),
        ("metrics", "port", 70000),
        ("node", "tpyo", 1),
    ],
)
def test_a_bad_value_is_refused_where_orca_refuses_it(section: str, key: str, value: Any) -> None:
    document = base_config()
    document[section][key] = value
    assert errors(document), f"the schema accepted {section}.{key}={value!r}"


def test_a_missing_region_is_refused() -> None:
    assert errors({"aws": {}}) == ["$.aws"]
    assert errors({}) == ["$"]


def test_durations_are_written_as_the_file_writes_them() -> None:
    node = settings_schema.settings_json_schema()["$defs"]["NodeSettings"]["properties"]
    assert node["leaseDuration"]["default"] == "40s"


_UNITS = st.sampled_from(["ms", "s", "m", "h", "d"])
_PART = st.tuples(st.integers(min_value=0, max_value=999), _UNITS).map(lambda p: f"{p[0]}{p[1]}")


@given(st.lists(_PART, min_size=1, max_size=4).map("".join))
def test_every_duration_orca_parses_matches_the_pattern(text: str) -> None:
    parse_duration(text)
    assert re.search(settings.DURATION_PATTERN, text)


@given(
    st.integers(min_value=0, max_value=10**6),
    st.sampled_from(["", "m", "k", "M", "G", "Ki", "Mi", "Gi", "Ti", "e3"]),
)
def test_every_capacity_orca_parses_matches_the_pattern(number: int, suffix: str) -> None:
    text = f"{number}{suffix}"
    assert parse_quantity(text) >= 0
    assert re.search(settings.QUANTITY_PATTERN, text)


@pytest.mark.parametrize("text", ["5 minutes", "1h30", "-5m", "m"])
def test_text_orca_refuses_as_a_duration_the_pattern_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)
    assert not re.search(settings.DURATION_PATTERN, text)
