"""The settings a CLI command runs with: the operator's file, or the cluster's published settings.

A researcher has a kubeconfig and nothing else. The watcher publishes the cluster-side settings
the commands need (Temporal address, namespace and task queue, cluster name, node name and taints,
AWS region, endpoint and subnets, `instances` and `limits`) as the annotation
`orca.research/cluster-settings` on ORCA's virtual node (`orca.published_settings`, where the
choice of the node over a ConfigMap is explained). Layers, strongest first:

1. `ORCA_<SECTION>__<KEY>` environment variables;
2. the command line: `--kubeconfig`, `--context`;
3. the config file (`--config`, `$ORCA_CONFIG`, `./orca.yaml`, `~/.config/orca/config.yaml`,
   `/etc/orca/config.yaml`), as for the processes;
4. the settings published on the virtual node, read only when layers 1-3 do not name
   `aws.region` (an operator's complete file is used as it is, with no extra API call);
5. the defaults.

The node is `node.name` (default `orca-aws-node`); when there is no node of that name, the one
virtual-kubelet node (`type=virtual-kubelet`) carrying the annotation is used, so a researcher
need not know what the operator called it. Reading it needs `get` (and for the fallback `list`)
on `nodes`, part of the `orca-user` ClusterRole (docs/cli.md).

The namespace a command acts in is `-n`, else the kubeconfig context's namespace (the service
account's namespace in a pod), else `default`, as kubectl does.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as kube_config
from kubernetes.config.config_exception import ConfigException

from orca.cli.errors import EXIT_USAGE, CommandError
from orca.cli.permissions import Permission, kube_call
from orca.kube_clients import KubeClients, KubeConfigError
from orca.published_settings import PUBLISHED_SETTINGS_ANNOTATION, read_published
from orca.settings import (
    ConfigError,
    KubernetesSettings,
    Settings,
    find_config_file,
    load_settings,
    normalise_document,
    read_config_document,
    settings_from_document,
)
from orca.watcher.node import TYPE_LABEL

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
VIRTUAL_KUBELET_SELECTOR = f"{TYPE_LABEL}=virtual-kubelet"
PLACEHOLDER_REGION = "placeholder-region"
"""Lets the local layers be validated (and the Kubernetes settings read) before the published
settings are known; never part of the settings a command gets."""


def command_settings(
    config: Path | None,
    kubeconfig: Path | None = None,
    context: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """The settings for a command (see the module docstring); `ConfigError` (exit 2) when they
    are unusable, `CommandError` when the cluster cannot be asked."""
    environ = os.environ if environ is None else environ
    path = find_config_file(config, environ)
    where = f"in {path}" if path is not None else "(no config file)"
    local = read_config_document(path) if path is not None else {}
    local = with_kubernetes_flags(local, kubeconfig, context)
    if _names_region(local, environ):
        return settings_from_document(local, where)
    bootstrap = settings_from_document(
        _merged({"aws": {"region": PLACEHOLDER_REGION}}, local), where
    )
    published, node_name = read_cluster_settings(bootstrap)
    if not published:
        raise ConfigError(
            f"no ORCA settings: none {where.strip('()')} names aws.region, and the cluster "
            f"publishes none (no node {node_name} or other virtual-kubelet node with the "
            f"{PUBLISHED_SETTINGS_ANNOTATION} annotation: is ORCA's watcher running in this "
            "cluster, and is this the right kubeconfig context?). Pass --config FILE, or set "
            "ORCA_NODE__NAME to ORCA's node"
        )
    document = _merged(normalise_document(published, f"published on node {node_name}"), local)
    return settings_from_document(document, f"{where} over the settings on node {node_name}")


def process_settings(
    config: Path | None, kubeconfig: Path | None = None, context: str | None = None
) -> Settings:
    """The worker's and the watcher's settings: the config file and the environment as
    `load_settings` reads them, with `--kubeconfig` / `--context`; never the node's."""
    if kubeconfig is None and context is None:
        return load_settings(config)
    path = find_config_file(config, os.environ)
    where = f"in {path}" if path is not None else "(no config file; environment only)"
    local = read_config_document(path) if path is not None else {}
    return settings_from_document(with_kubernetes_flags(local, kubeconfig, context), where)


def with_kubernetes_flags(
    document: dict[str, Any], kubeconfig: Path | None, context: str | None
) -> dict[str, Any]:
    """The document with `--kubeconfig` / `--context` as `kubernetes.kubeconfig` / `context`."""
    flags = {
        key: value
        for key, value in (("kubeconfig", kubeconfig), ("context", context))
        if value is not None
    }
    return _merged(document, {"kubernetes": flags}) if flags else document


def read_cluster_settings(settings: Settings) -> tuple[dict[str, Any], str]:
    """The settings published on ORCA's node (empty when none) and the node's name."""
    core = kube_core(settings.kubernetes)
    name = settings.node.name
    node: Any
    try:
        node = kube_call(
            core,
            f"read ORCA's settings from node {name}",
            lambda: core.read_node(name),
            Permission("get", "nodes"),
        )
    except k8s.ApiException as error:
        if error.status != 404:
            raise CommandError(f"reading node {name} failed: {error.reason}") from None
        node = None
    if node is not None:
        return read_published(
            (node.metadata.annotations or {}).get(PUBLISHED_SETTINGS_ANNOTATION)
        ), name
    nodes: Any = kube_call(
        core,
        "find ORCA's virtual node",
        lambda: core.list_node(label_selector=VIRTUAL_KUBELET_SELECTOR),
        Permission("list", "nodes"),
    )
    found: list[tuple[str, dict[str, Any]]] = [
        (str(item.metadata.name), published)
        for item in nodes.items
        if (
            published := read_published(
                (item.metadata.annotations or {}).get(PUBLISHED_SETTINGS_ANNOTATION)
            )
        )
    ]
    if len(found) > 1:
        names = ", ".join(sorted(n for n, _ in found))
        raise CommandError(
            f"several ORCA nodes publish settings ({names}); choose one with ORCA_NODE__NAME",
            EXIT_USAGE,
        )
    if found:
        return found[0][1], found[0][0]
    return {}, name


def kube_core(settings: KubernetesSettings) -> k8s.CoreV1Api:
    """The Kubernetes core API, or `CommandError` (exit 2) when no configuration is usable."""
    try:
        return KubeClients(settings).core
    except KubeConfigError as error:
        raise CommandError(str(error), EXIT_USAGE) from None


def default_namespace(
    settings: KubernetesSettings, environ: Mapping[str, str] | None = None
) -> str:
    """kubectl's namespace when `-n` is not given: the kubeconfig context's, else the service
    account's when running in a pod without a kubeconfig, else `default`."""
    environ = os.environ if environ is None else environ
    if settings.kubeconfig is None and environ.get("KUBERNETES_SERVICE_HOST"):
        try:
            return SERVICE_ACCOUNT_NAMESPACE.read_text(encoding="utf-8").strip() or "default"
        except OSError:
            return "default"
    config_file = str(settings.kubeconfig.expanduser()) if settings.kubeconfig else None
    try:
        contexts, active = kube_config.list_kube_config_contexts(config_file=config_file)
    except (ConfigException, OSError, TypeError, ValueError):
        return "default"  # the client's own loading reports a broken kubeconfig
    chosen = active
    if settings.context is not None:
        chosen = next((c for c in contexts or [] if c.get("name") == settings.context), None)
    namespace = ((chosen or {}).get("context") or {}).get("namespace")
    return str(namespace) if namespace else "default"


def _names_region(document: Mapping[str, Any], environ: Mapping[str, str]) -> bool:
    if any(key.upper() == "ORCA_AWS__REGION" for key in environ):
        return True
    aws = document.get("aws")
    return isinstance(aws, dict) and bool(aws.get("region"))


def _merged(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `overrides` laid over it, mapping by mapping."""
    merged = dict(base)
    for key, value in overrides.items():
        inner = merged.get(key)
        if isinstance(value, Mapping) and isinstance(inner, Mapping):
            merged[key] = _merged(inner, value)
        else:
            merged[key] = value
    return merged
