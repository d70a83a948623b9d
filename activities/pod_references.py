"""The ConfigMaps and Secrets a pod references, read from the Kubernetes API for its start script.

The kubelet resolves `env[].valueFrom`, `envFrom` and `configMap`/`secret`/`projected` volumes on
the node; ORCA's instances have no Kubernetes credentials, so the worker reads the referenced
objects once, when it renders the start script. An absent object is left out: rendering reports
a missing non-optional reference as an invalid pod (`orca.activities.bootstrap_script`).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from kubernetes import client


def referenced_names(spec: Mapping[str, Any]) -> tuple[set[str], set[str]]:
    """(ConfigMap names, Secret names) referenced by env, envFrom and volumes (pure)."""
    config_maps: set[str] = set()
    secrets: set[str] = set()
    containers = [*spec.get("initContainers", []), *spec.get("containers", [])]
    for container in containers:
        for env in container.get("env", []) or []:
            source = env.get("valueFrom") or {}
            if "configMapKeyRef" in source:
                config_maps.add(source["configMapKeyRef"]["name"])
            if "secretKeyRef" in source:
                secrets.add(source["secretKeyRef"]["name"])
        for env_from in container.get("envFrom", []) or []:
            if "configMapRef" in env_from:
                config_maps.add(env_from["configMapRef"]["name"])
            if "secretRef" in env_from:
                secrets.add(env_from["secretRef"]["name"])
    for volume in spec.get("volumes", []) or []:
        if "configMap" in volume:
            config_maps.add(volume["configMap"]["name"])
        if "secret" in volume:
            secrets.add(volume["secret"]["secretName"])
        for source in (volume.get("projected") or {}).get("sources", []) or []:
            if "configMap" in source:
                config_maps.add(source["configMap"]["name"])
            if "secret" in source:
                secrets.add(source["secret"]["name"])
    return config_maps, secrets


class PodReferences:
    def __init__(self, core: client.CoreV1Api) -> None:
        self._core = core

    def read(
        self, pod: Mapping[str, Any]
    ) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]:
        """(ConfigMap data by name, decoded Secret data by name) for what the pod references."""
        namespace = pod["metadata"].get("namespace", "default")
        config_map_names, secret_names = referenced_names(pod.get("spec", {}))
        config_maps: dict[str, dict[str, str]] = {}
        secrets: dict[str, dict[str, str]] = {}
        for name in sorted(config_map_names):
            try:
                item = self._core.read_namespaced_config_map(name, namespace)
                config_maps[name] = dict(item.data or {})
            except client.ApiException as error:
                if error.status != 404:
                    raise
        for name in sorted(secret_names):
            try:
                secret = self._core.read_namespaced_secret(name, namespace)
                secrets[name] = {
                    key: base64.b64decode(value).decode("utf-8", errors="replace")
                    for key, value in (secret.data or {}).items()
                }
            except client.ApiException as error:
                if error.status != 404:
                    raise
        return config_maps, secrets
