from tests.fixtures.kube import (  # noqa: F401 - fixtures, until tests/conftest.py registers them
    _k3s_kubeconfig,
    kube_api_client,
    kube_backend,
    kube_core,
    kube_emulator,
    kube_kubeconfig,
    kube_namespace,
)
