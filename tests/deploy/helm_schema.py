"""The Helm chart's values.schema.json: the chart's own keys (below) plus, as `config`, the
settings schema generated from ORCA's pydantic model (`orca.settings_schema`).

    python -m tests.deploy.helm_schema --write     # after changing orca/settings.py or the chart
    python -m tests.deploy.helm_schema --check     # exit 1 when the committed file is stale

tests/deploy/test_helm_schema.py fails when the committed file differs from what this makes, so
the chart can never accept a value ORCA refuses (or refuse one it accepts) unnoticed.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from orca.settings_schema import settings_json_schema
from tests.deploy.conftest import DEPLOY

SCHEMA_PATH = DEPLOY / "helm" / "orca" / "values.schema.json"

_STRING = {"type": "string"}
_BOOL = {"type": "boolean"}
_STRING_MAP = {"type": "object", "additionalProperties": _STRING}
_OBJECT = {"type": "object"}
_LIST_OF_OBJECTS = {"type": "array", "items": _OBJECT}
_PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
_CIDRS = {"type": "array", "items": {"type": "string", "pattern": r"^[0-9a-fA-F.:]+/[0-9]+$"}}


def _closed(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
    }
    if required:
        schema["required"] = required
    return schema


def _process(**extra: Any) -> dict[str, Any]:
    return _closed(
        {
            **extra,
            "replicas": {"type": "integer", "minimum": 0},
            "resources": _OBJECT,
            "terminationGracePeriodSeconds": {"type": "integer", "minimum": 0},
            "nodeSelector": _STRING_MAP,
            "tolerations": _LIST_OF_OBJECTS,
            "affinity": _OBJECT,
            "podAnnotations": _STRING_MAP,
            "extraEnv": _LIST_OF_OBJECTS,
        }
    )


def _service_account() -> dict[str, Any]:
    return _closed(
        {
            "roleArn": {
                "type": "string",
                "pattern": r"^(arn:aws[a-z-]*:iam::[0-9]{12}:role/.+)?$",
                "description": "IRSA: the IAM role (eks.amazonaws.com/role-arn); empty for none.",
            },
            "annotations": _STRING_MAP,
        }
    )


def chart_values_schema() -> dict[str, Any]:
    """The whole values schema: chart keys closed (a typo fails), `config` = ORCA's settings."""
    settings = settings_json_schema()
    definitions = settings.pop("$defs")
    settings.pop("$schema")
    settings["description"] = "ORCA's settings file (orca/settings.py), /etc/orca/config.yaml."
    schema = _closed(
        {
            "image": _closed(
                {
                    "repository": {"type": "string", "minLength": 1},
                    "tag": _STRING,
                    "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
                },
                required=["repository"],
            ),
            "imagePullSecrets": _LIST_OF_OBJECTS,
            "namespace": _closed({"create": _BOOL}),
            "serviceAccounts": _closed(
                {"worker": _service_account(), "watcher": _service_account()}
            ),
            "worker": _process(
                podDataNamespaces={"type": "array", "items": {"type": "string", "minLength": 1}}
            ),
            "watcher": _process(kubeletTLS=_closed({"secretName": _STRING})),
            "podDisruptionBudget": _closed({"enabled": _BOOL}),
            "temporalTLS": _closed(
                {"secretName": _STRING, "clientCertificate": _BOOL, "privateCA": _BOOL}
            ),
            "temporalAPIKey": _closed({"secretName": _STRING, "key": {"type": "string"}}),
            "networkPolicy": _closed(
                {
                    "enabled": _BOOL,
                    "kubeletFrom": _LIST_OF_OBJECTS,
                    "metricsFrom": _LIST_OF_OBJECTS,
                    "apiServer": _closed(
                        {"cidrs": _CIDRS, "ports": {"type": "array", "items": _PORT}}
                    ),
                    "temporalCIDRs": _CIDRS,
                    "awsCIDRs": _CIDRS,
                }
            ),
            "serviceMonitor": _closed(
                {"enabled": _BOOL, "interval": _STRING, "labels": _STRING_MAP}
            ),
            "userRole": _closed({"create": _BOOL, "subjects": _LIST_OF_OBJECTS}),
            "storageClass": _closed(
                {
                    "create": _BOOL,
                    "name": _STRING,
                    "default": _BOOL,
                    "reclaimPolicy": {"enum": ["Delete", "Retain"]},
                    "parameters": _STRING_MAP,
                }
            ),
            "config": settings,
            # Helm passes these to every chart; a parent chart may set them.
            "global": _OBJECT,
        },
        required=["image", "config"],
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Values of the ORCA Helm chart (generated: python -m tests.deploy.helm_schema)",
        **schema,
        "$defs": definitions,
    }


def render_schema() -> str:
    return json.dumps(chart_values_schema(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", action="store_true", help=f"write {SCHEMA_PATH.name}")
    action.add_argument("--check", action="store_true", help="exit 1 when it is stale")
    arguments = parser.parse_args(argv)
    text = render_schema()
    if arguments.write:
        SCHEMA_PATH.write_text(text)
        return 0
    if SCHEMA_PATH.exists() and SCHEMA_PATH.read_text() == text:
        return 0
    print(f"{SCHEMA_PATH} is stale: run python -m tests.deploy.helm_schema --write")
    return 1


if __name__ == "__main__":
    sys.exit(main())
