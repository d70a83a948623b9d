"""`orca config validate|show|schema`: check a config file, show the settings, print the schema.

- `validate [FILE]` loads the file exactly as the worker and the watcher do (`load_settings`:
  the file, then `ORCA_*` environment variables over it) and prints every offending key path with
  what is allowed (exit 2), or that it is valid (exit 0). Run it in CI before a rollout.
- `show` prints the settings a CLI command would use (`orca.cli.cluster_settings`: the config
  file, or the settings ORCA publishes on its node, with the environment over them), with every
  secret (`temporal.apiKey`, `aws.credentials.secretAccessKey`, ...) masked as `**********`.
- `schema` prints the JSON Schema of the file, generated from the pydantic settings model
  (`orca.settings.Settings`, camelCase keys, attribute docstrings as descriptions), for editors
  and for the Helm chart's `values.schema.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from orca.cli import connections, output
from orca.cli.errors import EXIT_OK, EXIT_USAGE, CommandError
from orca.settings import Settings, find_config_file, load_settings
from orca.settings_schema import settings_json_schema


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "config",
        help="validate a config file, show the effective settings, print the settings schema",
        description="validate: check a config file as the worker and watcher load it. show: the "
        "settings a command uses, secrets masked. schema: the config file's JSON Schema.",
    )
    commands = parser.add_subparsers(dest="config_command", metavar="COMMAND")
    commands.required = True
    validate = commands.add_parser(
        "validate",
        help="check a config file; every bad key is named with what is allowed (exit 2)",
        description="Load FILE (default: --config, $ORCA_CONFIG, ./orca.yaml, "
        "~/.config/orca/config.yaml, /etc/orca/config.yaml) as the worker and the watcher "
        "load it, ORCA_* environment variables applied.",
    )
    validate.add_argument("file", nargs="?", type=Path, metavar="FILE", help="the config file")
    validate.set_defaults(handler=run_validate)
    show = commands.add_parser(
        "show",
        help="print the effective settings, secrets masked",
        description="The settings a command runs with: the config file, or the settings ORCA "
        "publishes on its node, with ORCA_* environment variables over them. Secrets masked.",
    )
    show.add_argument("-o", "--output", choices=(output.YAML, output.JSON), default=output.YAML)
    show.set_defaults(handler=run_show)
    schema = commands.add_parser(
        "schema",
        help="print the config file's JSON Schema (from the settings model)",
        description="The JSON Schema (draft 2020-12) of the config file, camelCase keys.",
    )
    schema.set_defaults(handler=run_schema)


def run_validate(args: argparse.Namespace) -> int:
    path = args.file or find_config_file(getattr(args, "config", None), os.environ)
    if path is None:
        raise CommandError(
            "no config file to validate: give FILE or --config, or set $ORCA_CONFIG", EXIT_USAGE
        )
    settings = load_settings(path)  # ConfigError: exit 2 with every key path (orca.cli.main)
    print(
        f"{path}: valid (region {settings.aws.region}, cluster {settings.kubernetes.cluster_name})"
    )
    return EXIT_OK


def run_show(args: argparse.Namespace) -> int:
    settings = connections.load_command_settings(args)
    output.print_document(masked_settings(settings), args.output, sys.stdout)
    return EXIT_OK


def masked_settings(settings: Settings) -> dict[str, Any]:
    """The settings as a config document (camelCase keys), every secret as `**********`."""
    document: dict[str, Any] = settings.model_dump(mode="json", by_alias=True)
    return document


def run_schema(args: argparse.Namespace) -> int:
    print(json.dumps(settings_schema(), indent=2))
    return EXIT_OK


def settings_schema() -> dict[str, Any]:
    """The one generated schema (`orca.settings_schema`, also the Helm chart's), titled."""
    schema = settings_json_schema()
    schema["title"] = "ORCA configuration (config.yaml)"
    return schema
