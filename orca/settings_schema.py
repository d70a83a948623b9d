"""The JSON Schema of ORCA's settings file, generated from the pydantic model in `orca.settings`.

One source: the schema is never written by hand. `python -m orca.settings_schema` prints it;
the Helm chart's `values.schema.json` embeds it as the `config` value (made by
`python -m tests.deploy.helm_schema --write`, checked by tests/deploy/test_helm_schema.py), so
`helm install` and `helm template` refuse a bad value before anything reaches the cluster.

The schema describes the file's camelCase keys (the chart's and the kustomize base's spelling).
Where the model parses text itself, the schema says what text is accepted, so a JSON Schema
validator agrees with `load_settings`:
  - durations (`90s`, `5m`, `1h30m`, `7d`) are strings of `orca.units` parts, or seconds;
  - resource quantities (`1000`, `4Ti`) are strings or non-negative numbers.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from typing import Any

from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, JsonSchemaValue
from pydantic_core import core_schema

from orca import settings
from orca.settings import Settings
from orca.units import format_duration

# orca.units._DURATION_PART, repeated, anchored (JSON Schema patterns are not anchored).
DURATION_PATTERN = r"^\s*(\d+(\.\d+)?(ms|s|m|h|d))+\s*$"
DURATION_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "pattern": DURATION_PATTERN},
        {"type": "number", "minimum": 0},
    ],
    "description": "A duration: 250ms, 90s, 5m, 1h30m, 7d, or a number of seconds.",
}


# orca.units._QUANTITY without a sign: node capacities are never negative.
QUANTITY_PATTERN = r"^\s*\+?(\d+(\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?\s*$"
QUANTITY_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "pattern": QUANTITY_PATTERN},
        {"type": "number", "minimum": 0},
    ],
    "description": "A Kubernetes quantity such as 2, 500m, 16Gi or 1Ti.",
}


class _OrcaSchema(GenerateJsonSchema):
    """pydantic's generator with ORCA's textual types described as text."""

    def timedelta_schema(self, schema: core_schema.TimedeltaSchema) -> JsonSchemaValue:
        # pydantic says ISO 8601 ("P1D"); ORCA's Duration parser takes Go-style text.
        return dict(DURATION_SCHEMA)

    def function_before_schema(
        self, schema: core_schema.BeforeValidatorFunctionSchema
    ) -> JsonSchemaValue:
        if schema["function"].get("function") is settings._quantity:
            return dict(QUANTITY_SCHEMA)
        return super().function_before_schema(schema)

    def encode_default(self, dft: Any) -> Any:
        # A field's default as the file writes it: timedelta(seconds=40) is "40s", not "PT40S".
        if isinstance(dft, timedelta):
            return format_duration(dft)
        return super().encode_default(dft)


def settings_json_schema(mode: JsonSchemaMode = "validation") -> dict[str, Any]:
    """The settings file's schema (draft 2020-12), keys as the file spells them."""
    schema = Settings.model_json_schema(by_alias=True, mode=mode, schema_generator=_OrcaSchema)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def main() -> None:
    json.dump(settings_json_schema(), sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
