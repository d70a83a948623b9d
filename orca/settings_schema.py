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

from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode

from orca.settings import Settings
from orca.units import format_duration


class _OrcaSchema(GenerateJsonSchema):
    """pydantic's generator with defaults written as the file writes them. (Durations and
    quantities describe their own text: `orca.settings.Duration` and `Quantity`.)"""

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
