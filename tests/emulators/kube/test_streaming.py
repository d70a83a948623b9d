"""Where the API emulator relays pods/exec, attach and portforward (pure path mapping)."""

from __future__ import annotations

import pytest

from orca_devstack.emulators.kube import errors, streaming


def pod(*containers: str) -> dict[str, object]:
    return {
        "metadata": {"namespace": "ml", "name": "train 0"},
        "spec": {"containers": [{"name": c} for c in containers]},
    }


def test_exec_goes_to_the_kubelets_exec_path_with_the_kubelets_parameters() -> None:
    """kube-apiserver rewrites PodExecOptions as the kubelet reads them (`input`, `output`,
    `error`, `tty` = 1, each `command`)."""
    raw = "command=sh&command=-c&command=echo+hi&container=main&stdout=true&stdin=true&tty=false"
    path = streaming.kubelet_path(pod("main", "side"), "exec", {"container": "main"}, raw)
    assert path == "/exec/ml/train%200/main?input=1&output=1&command=sh&command=-c&command=echo+hi"


def test_the_only_container_is_the_default() -> None:
    assert streaming.kubelet_path(pod("main"), "attach", {}, "").startswith("/attach/ml/")


def test_a_container_must_be_named_when_there_are_several_and_must_exist() -> None:
    with pytest.raises(errors.ApiError, match=r"choose one of: \[main side\]"):
        streaming.kubelet_path(pod("main", "side"), "exec", {}, "command=ls")
    with pytest.raises(errors.ApiError, match="container nope is not valid for pod train 0"):
        streaming.kubelet_path(pod("main"), "exec", {"container": "nope"}, "container=nope")


def test_port_forward_goes_to_the_pod() -> None:
    assert (
        streaming.kubelet_path(pod("main"), "portforward", {}, "ports=8080&ports=9090")
        == "/portForward/ml/train%200?port=8080&port=9090"
    )
