"""The cluster-side settings the watcher publishes on its virtual node, for the `orca` CLI.

A researcher has a kubeconfig, not the operator's config file. What the CLI needs from the
operator's settings (where Temporal is and in which namespace, the task queue, the cluster's name,
the virtual node's name, labels and taints, the AWS region, endpoint and subnets, the
`instances` and `limits` sections that decide which pods are valid) is published by the watcher
as one annotation on the Node object it registers, `orca.research/cluster-settings`, a JSON
document in the config file's own shape (camelCase keys).

Why the node and not ORCA's ConfigMap: the node is cluster-scoped and every cluster user may
already `get nodes` (kubectl's `get pods -o wide` and the scheduler's messages name it); a
ConfigMap lives in ORCA's namespace, which the CLI would have to know and researchers would need
RBAC for, and it holds the whole file. The watcher chooses what is published (`PUBLISHED_KEYS`):
nothing secret (no API key, credentials, certificate paths) and nothing only the processes need.

`temporal.publicAddress`, when set, is published as `temporal.address`: in a cluster the
processes use the frontend's in-cluster Service name, which a laptop cannot resolve.

Version skew: a newer watcher may publish keys an older CLI does not know; `read_published`
drops them instead of failing, since the operator's settings were already validated by the
watcher that loaded them.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from orca.settings import Settings

PUBLISHED_SETTINGS_ANNOTATION = "orca.research/cluster-settings"

PUBLISHED_KEYS: dict[str, Any] = {
    "aws": {"region": True, "endpoint_url": True, "subnet_ids": True},
    "node": {"name": True, "labels": True, "taints": True},
    "instances": True,
    "limits": True,
    "temporal": {
        "address": True,
        "namespace": True,
        "task_queue": True,
        "ui_url": True,
        "tls": {"enabled": True, "server_name": True},
    },
    "kubernetes": {"cluster_name": True},
}
"""The settings (field names) that are published, as pydantic's `include` mapping."""


def published_settings(settings: Settings) -> str:
    """The annotation's value: the published part of `settings` as compact JSON."""
    document = settings.model_dump(mode="json", by_alias=True, include=PUBLISHED_KEYS)
    aws = document["aws"]
    aws["subnetIDs"] = list(settings.aws.subnets)  # the legacy subnetID merged in
    aws["endpointURL"] = settings.aws.endpoint
    if settings.temporal.public_address:
        document["temporal"]["address"] = settings.temporal.public_address
    return json.dumps(_without_nulls(document), separators=(",", ":"), sort_keys=True)


def read_published(text: str | None) -> dict[str, Any]:
    """A published annotation as a config document (camelCase keys), keeping only the keys this
    version's `Settings` knows; an absent or unreadable annotation is an empty document."""
    if not text:
        return {}
    try:
        document = json.loads(text)
    except ValueError:
        return {}
    known = _known_keys(Settings, document)
    return known if isinstance(known, dict) else {}


def _known_keys(model: type[BaseModel], document: Any) -> Any:
    if not isinstance(document, dict):
        return document
    kept: dict[str, Any] = {}
    for key, value in document.items():
        for name, info in model.model_fields.items():
            if key in (name, info.alias):
                inner = _section_model(info.annotation)
                kept[key] = _known_keys(inner, value) if inner is not None else value
                break
    return kept


def _section_model(annotation: Any) -> type[BaseModel] | None:
    """The section model of a field whose value is one section (not a list or mapping of them:
    those are published whole and validated by `Settings`)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    return value
