"""Kubernetes API clients from `KubernetesSettings`: a kubeconfig file, or in-cluster config.

Order: `kubernetes.kubeconfig` (and `context`) when set; else the in-cluster service account when
running in a pod; else `$KUBECONFIG` / `~/.kube/config`. A missing or broken configuration is a
`KubeConfigError` naming what was tried.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

from orca.settings import KubernetesSettings


class KubeConfigError(Exception):
    """No usable Kubernetes configuration."""


def api_client(settings: KubernetesSettings) -> client.ApiClient:
    try:
        if settings.kubeconfig is not None:
            path = settings.kubeconfig.expanduser()
            if not path.is_file():
                raise KubeConfigError(f"kubernetes.kubeconfig {path} does not exist")
            return config.new_client_from_config(config_file=str(path), context=settings.context)
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            configuration = client.Configuration()
            config.load_incluster_config(client_configuration=configuration)
            return client.ApiClient(configuration)
        return config.new_client_from_config(context=settings.context)
    except ConfigException as error:
        raise KubeConfigError(
            f"cannot load a Kubernetes configuration ({error}); set kubernetes.kubeconfig, "
            "KUBECONFIG, or run inside the cluster"
        ) from None


@dataclass
class KubeClients:
    settings: KubernetesSettings

    @cached_property
    def api(self) -> client.ApiClient:
        return api_client(self.settings)

    @cached_property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    @cached_property
    def authentication(self) -> client.AuthenticationV1Api:
        return client.AuthenticationV1Api(self.api)

    @cached_property
    def authorization(self) -> client.AuthorizationV1Api:
        return client.AuthorizationV1Api(self.api)

    @cached_property
    def coordination(self) -> client.CoordinationV1Api:
        return client.CoordinationV1Api(self.api)
