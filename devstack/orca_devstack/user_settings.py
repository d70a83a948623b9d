"""The user's settings laid over the ones `orca dev` generates, so every setting can be tried on
the embedded stack.

`orca --config FILE dev` and `ORCA_<SECTION>__<KEY>` environment variables reach the stack's
worker and watcher the way they reach `orca worker` anywhere else: the file's keys are merged key
by key over the generated `config.yaml`, and the environment variables are passed to the
children, where they override the file. Only the stack's own wiring stays the stack's — the
endpoints, ports and emulator details in `STACK_OWNED` — since a user's Temporal address or AWS
subnets would point the stack away from its own servers. Those are reported as ignored.

Only an explicit file (`--config`, else `$ORCA_CONFIG`) is read: a default
`~/.config/orca/config.yaml` describes a real cluster, not the embedded stack.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel

from orca.settings import CONFIG_ENV_VAR, Settings, load_settings, read_config_document

ENV_PREFIX = "ORCA_"

STACK_OWNED: tuple[tuple[str, ...], ...] = (
    ("aws", "region"),
    ("aws", "vpc_id"),
    ("aws", "subnet_id"),
    ("aws", "subnet_ids"),
    ("aws", "security_group_ids"),
    ("aws", "endpoint_url"),
    ("aws", "local_stack_endpoint"),
    ("aws", "profile"),
    ("aws", "role_arn"),
    ("aws", "credentials"),
    ("aws", "interruption_queue_url"),
    ("node", "name"),
    ("node", "address"),
    ("node", "kubelet_port"),
    ("node", "kubelet_tls_cert_file"),
    ("node", "kubelet_tls_key_file"),
    ("node", "kubelet_client_ca_file"),
    ("temporal",),
    ("kubernetes", "kubeconfig"),
    ("kubernetes", "context"),
    ("metrics", "host"),
    ("metrics", "port"),
    ("logging", "format"),
    ("watcher", "health_port"),
    ("worker", "health_port"),
)
"""Setting paths (field names) that wire the stack to its own servers and ports."""


@dataclass(frozen=True)
class UserSettings:
    """What the user asked for, split into what the stack applies and what it ignores."""

    file: Path | None = None
    document: dict[str, Any] = field(default_factory=dict)
    """The file's settings that apply (field names as keys)."""
    environment: dict[str, str] = field(default_factory=dict)
    """The `ORCA_*` variables passed on to the worker and watcher."""
    applied: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()

    def summary(self) -> list[str]:
        """Lines for the start of `orca dev`."""
        lines = []
        if self.applied:
            lines.append("your settings applied: " + ", ".join(self.applied))
        if self.ignored:
            lines.append(
                "ignored (the stack's own endpoints, ports and wiring): " + ", ".join(self.ignored)
            )
        return lines


def is_stack_owned(path: tuple[str, ...]) -> bool:
    return any(path[: len(owned)] == owned for owned in STACK_OWNED)


def leaf_paths(document: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key path that ends in a value (mappings are descended into)."""
    paths: list[tuple[str, ...]] = []
    for key, value in document.items():
        path = (*prefix, str(key))
        if isinstance(value, Mapping) and value:
            paths.extend(leaf_paths(value, path))
        else:
            paths.append(path)
    return paths


def without_stack_owned(
    document: Mapping[str, Any], prefix: tuple[str, ...] = ()
) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for key, value in document.items():
        path = (*prefix, str(key))
        if is_stack_owned(path):
            continue
        kept[key] = without_stack_owned(value, path) if isinstance(value, Mapping) else value
    return kept


def merged(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`over` laid on `base` key by key; a value that is not a mapping replaces."""
    result = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result


def env_path(name: str) -> tuple[str, ...]:
    """`ORCA_ORPHANS__SWEEP_INTERVAL` → ("orphans", "sweep_interval")."""
    return tuple(part.lower() for part in name[len(ENV_PREFIX) :].split("__"))


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    """The model inside `Model`, `Model | None`, `tuple[Model, ...]` or `dict[str, Model]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in get_args(annotation):
        found = _inner_model(argument)
        if found is not None:
            return found
    return None


def dotted(path: tuple[str, ...]) -> str:
    """A field-name path in the file's spelling: ("orphans", "sweep_interval") →
    `orphans.sweepInterval` (names that are not fields, such as template names, stay)."""
    parts: list[str] = []
    model: type[BaseModel] | None = Settings
    user_key_next = False
    for name in path:
        info = model.model_fields.get(name) if model is not None and not user_key_next else None
        if info is None:
            parts.append(name)
            user_key_next = False
            continue
        parts.append(info.alias or name)
        model = _inner_model(info.annotation)
        user_key_next = get_origin(info.annotation) is dict  # then a template's name
    return ".".join(parts)


def to_file_keys(model: type[BaseModel] | None, document: Any) -> Any:
    """Field names back to the file's camelCase keys, so the generated file reads like the docs
    and a user's key never sits beside the generated spelling of the same setting."""
    if model is None:
        return document
    if isinstance(document, list | tuple):
        return [to_file_keys(model, item) for item in document]
    if not isinstance(document, Mapping):
        return document
    result: dict[str, Any] = {}
    for key, value in document.items():
        info = model.model_fields.get(str(key))
        if info is None:
            result[key] = value
            continue
        inner = _inner_model(info.annotation)
        if get_origin(info.annotation) is dict and isinstance(value, Mapping):
            result[info.alias or key] = {k: to_file_keys(inner, v) for k, v in value.items()}
        else:
            result[info.alias or key] = to_file_keys(inner, value)
    return result


def collect(config_file: Path | None, environ: Mapping[str, str]) -> UserSettings:
    """The user's settings from an explicit file (`--config`, else `$ORCA_CONFIG`) and the
    `ORCA_*` environment. Raises `ConfigError` for a file ORCA would refuse."""
    path = config_file
    if path is None and environ.get(CONFIG_ENV_VAR):
        path = Path(environ[CONFIG_ENV_VAR])
    document = read_config_document(path) if path is not None else {}
    applied: list[str] = []
    ignored: list[str] = []
    for leaf in leaf_paths(document):
        (ignored if is_stack_owned(leaf) else applied).append(f"{dotted(leaf)} ({path})")
    environment: dict[str, str] = {}
    for name, value in sorted(environ.items()):
        if not name.upper().startswith(ENV_PREFIX) or name.upper() == CONFIG_ENV_VAR:
            continue
        if is_stack_owned(env_path(name)):
            ignored.append(name)
        else:
            environment[name] = value
            applied.append(f"{dotted(env_path(name))} ({name})")
    return UserSettings(
        file=path,
        document=without_stack_owned(document),
        environment=environment,
        applied=tuple(applied),
        ignored=tuple(ignored),
    )


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def check(config_path: Path, child_environment: Mapping[str, str]) -> Settings:
    """Load the written config as the children will (same environment), so a bad user setting
    stops `orca dev` at once with ORCA's usual message instead of a restarting worker."""
    with _environment(child_environment):
        return load_settings(config_path)
