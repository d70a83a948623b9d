"""`-o json|yaml|wide`: one way for every command to print an object or a table for scripts.

Tables and the text views are for people; `-o json` and `-o yaml` print the same facts as one
document with camelCase keys (as kubectl's), so `jq` and scripts do not parse columns. `wide`
adds columns to a table. Documents are plain JSON values: pydantic models are dumped in JSON mode,
datetimes as RFC 3339 strings, decimals as strings (no float rounding of dollars).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any, TextIO

import yaml
from pydantic import BaseModel
from pydantic.alias_generators import to_camel

TEXT = "text"
TABLE = "table"
WIDE = "wide"
JSON = "json"
YAML = "yaml"
DOCUMENT_FORMATS = (JSON, YAML)


def add_output_option(parser: argparse.ArgumentParser, *, table: bool) -> None:
    """`-o`: `table|wide|json|yaml` for a command printing a table, `text|json|yaml` else."""
    choices = (TABLE, WIDE, JSON, YAML) if table else (TEXT, JSON, YAML)
    parser.add_argument(
        "-o",
        "--output",
        choices=choices,
        default=choices[0],
        help=f"output format (default: {choices[0]})",
    )


def print_document(document: Any, output: str, out: TextIO) -> None:
    """`document` as JSON (indented) or YAML."""
    plain = to_plain(document)
    if output == YAML:
        print(yaml.safe_dump(plain, sort_keys=False).rstrip(), file=out)
    else:
        print(json.dumps(plain, indent=2), file=out)


def to_plain(value: Any) -> Any:
    """Only JSON types: models dumped in JSON mode with camelCase keys, datetimes RFC 3339,
    decimals as strings, enums as their values."""
    if isinstance(value, BaseModel):
        return _camel_keys(value.model_dump(mode="json", by_alias=True))
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    return value


def _camel_keys(value: Any) -> Any:
    """Workflow models name their fields in snake_case; documents use kubectl's camelCase."""
    if isinstance(value, dict):
        return {to_camel(str(k)): _camel_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel_keys(v) for v in value]
    return value


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]], out: TextIO) -> None:
    """Columns padded to their widest cell, three spaces apart, as kubectl prints them."""
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        cells = [str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)]
        print("   ".join(cells).rstrip(), file=out)
