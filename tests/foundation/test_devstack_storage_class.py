"""`orca dev` creates the `orca-ebs` StorageClass in the Kubernetes emulator, once."""

from __future__ import annotations

from pathlib import Path

from kubernetes import client

from orca_devstack.stack import DEV_STORAGE_CLASS, DevStack


class _Quiet:
    def __init__(self) -> None:
        self.said: list[str] = []

    def say(self, text: str) -> None:
        self.said.append(text)


def test_the_dev_stack_creates_the_orca_ebs_class_and_tolerates_it_existing(
    kube_kubeconfig: Path, kube_api_client: client.ApiClient
) -> None:
    stack = _Quiet()
    DevStack._create_storage_class(stack, kube_kubeconfig)  # type: ignore[arg-type]
    DevStack._create_storage_class(stack, kube_kubeconfig)  # type: ignore[arg-type]
    created = client.StorageV1Api(kube_api_client).read_storage_class(DEV_STORAGE_CLASS)
    assert created.provisioner == "orca.research/ebs"
    assert created.volume_binding_mode == "WaitForFirstConsumer"
    assert stack.said == []
