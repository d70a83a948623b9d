"""A researcher's kubeconfig is enough: the settings the watcher publishes on its node.

Against the Kubernetes API emulator: the node is registered by the watcher's own
`NodeHeartbeat` with the annotation the watcher publishes (`orca.published_settings`), and the
CLI runs in-process with no config file anywhere (`no_config_file`).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

from orca.cli.cluster_settings import default_namespace
from orca.cli.main import main
from orca.published_settings import (
    PUBLISHED_SETTINGS_ANNOTATION,
    published_settings,
    read_published,
)
from orca.settings import KubernetesSettings, Settings
from orca.watcher.node_health import always_ready
from orca.watcher.node_heartbeat import NodeHeartbeat
from tests.cli.manifests import write_pod_manifest


def operator_settings(**sections: Any) -> Settings:
    document: dict[str, Any] = {
        "aws": {
            "region": "eu-central-1",
            "subnetIDs": ["subnet-a"],
            "credentials": {"accessKeyID": "AKIAEXAMPLE", "secretAccessKey": "s3cr3t"},
        },
        "temporal": {
            "address": "temporal-frontend.temporal.svc.cluster.local:7233",
            "publicAddress": "temporal.example.org:7233",
            "namespace": "research",
            "apiKey": "tok-123",
            "uiURL": "https://temporal.example.org",
        },
        "kubernetes": {"clusterName": "lab-cluster"},
        "instances": {"allowedInstanceTypes": ["g5.xlarge"]},
    }
    for name, values in sections.items():
        document[name] = {**document.get(name, {}), **values}
    return Settings(**document)


def register_node(core: k8s.CoreV1Api, settings: Settings) -> None:
    """What the leading watcher does at start."""
    heartbeat = NodeHeartbeat(
        core,
        k8s.CoordinationV1Api(core.api_client),
        settings.node,
        always_ready(),
        annotations={PUBLISHED_SETTINGS_ANNOTATION: published_settings(settings)},
    )
    asyncio.run(heartbeat.register())


def show(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any], str]:
    capsys.readouterr()  # the watcher's own log lines
    code = main(["config", "show", *argv])
    captured = capsys.readouterr()
    return code, (yaml.safe_load(captured.out) if code == 0 else {}), captured.err


def test_published_settings_hold_nothing_secret_and_the_public_temporal_address() -> None:
    text = published_settings(operator_settings())
    assert "s3cr3t" not in text
    assert "tok-123" not in text
    assert "AKIAEXAMPLE" not in text
    published = json.loads(text)
    assert published["temporal"]["address"] == "temporal.example.org:7233"
    assert "publicAddress" not in published["temporal"]
    assert published["aws"] == {"region": "eu-central-1", "subnetIDs": ["subnet-a"]}
    assert set(published) == {"aws", "node", "instances", "limits", "temporal", "kubernetes"}


def test_keys_a_newer_watcher_publishes_are_dropped_not_refused() -> None:
    text = json.dumps(
        {"temporal": {"address": "t:7233", "futureKey": 1}, "futureSection": {}, "aws": {}}
    )
    assert read_published(text) == {"temporal": {"address": "t:7233"}, "aws": {}}
    assert read_published("not json") == {}
    assert read_published(None) == {}


def test_a_kubeconfig_alone_gets_the_cluster_settings(
    kube_core: k8s.CoreV1Api,
    kube_kubeconfig: Path,
    capsys: pytest.CaptureFixture[str],
    no_config_file: None,
) -> None:
    register_node(kube_core, operator_settings())
    code, shown, err = show(capsys, "--kubeconfig", str(kube_kubeconfig))
    assert code == 0, err
    assert shown["temporal"]["address"] == "temporal.example.org:7233"
    assert shown["temporal"]["namespace"] == "research"
    assert shown["temporal"]["uiURL"] == "https://temporal.example.org"
    assert shown["temporal"]["apiKey"] is None  # never published: the researcher brings one
    assert shown["kubernetes"]["clusterName"] == "lab-cluster"
    assert shown["aws"]["region"] == "eu-central-1"
    assert shown["instances"]["allowedInstanceTypes"] == ["g5.xlarge"]
    assert shown["kubernetes"]["kubeconfig"] == str(kube_kubeconfig)


def test_the_environment_and_a_personal_file_override_the_published_settings(
    kube_core: k8s.CoreV1Api,
    kube_kubeconfig: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    no_config_file: None,
) -> None:
    register_node(kube_core, operator_settings())
    personal = tmp_path / "me.yaml"
    personal.write_text(yaml.safe_dump({"temporal": {"address": "localhost:7233"}}), "utf-8")
    monkeypatch.setenv("ORCA_TEMPORAL__API_KEY", "my-own-key")
    code, shown, err = show(capsys, "--config", str(personal), "--kubeconfig", str(kube_kubeconfig))
    assert code == 0, err
    assert shown["temporal"]["address"] == "localhost:7233"  # the file over the node
    assert shown["temporal"]["namespace"] == "research"  # the node's, not the default
    assert shown["temporal"]["apiKey"] == "**********"  # from the environment, masked


def test_the_node_is_found_by_its_virtual_kubelet_label_when_renamed(
    kube_core: k8s.CoreV1Api,
    kube_kubeconfig: Path,
    capsys: pytest.CaptureFixture[str],
    no_config_file: None,
) -> None:
    register_node(kube_core, operator_settings(node={"name": "gpu-burst"}))
    code, shown, err = show(capsys, "--kubeconfig", str(kube_kubeconfig))
    assert code == 0, err
    assert shown["node"]["name"] == "gpu-burst"


def test_a_restarted_watcher_republishes_changed_settings(
    kube_core: k8s.CoreV1Api,
    kube_kubeconfig: Path,
    capsys: pytest.CaptureFixture[str],
    no_config_file: None,
) -> None:
    register_node(kube_core, operator_settings())
    register_node(kube_core, operator_settings(temporal={"namespace": "research-2"}))
    code, shown, err = show(capsys, "--kubeconfig", str(kube_kubeconfig))
    assert code == 0, err
    assert shown["temporal"]["namespace"] == "research-2"


def test_no_published_settings_is_one_clear_error(
    kube_kubeconfig: Path, capsys: pytest.CaptureFixture[str], no_config_file: None
) -> None:
    code, _, err = show(capsys, "--kubeconfig", str(kube_kubeconfig))
    assert code == 2
    assert "no ORCA settings" in err
    assert "is ORCA's watcher running in this cluster" in err
    assert "aws: required key is missing" not in err
    assert len(err.strip().splitlines()) == 1


def kubeconfig_with_namespaces(tmp_path: Path, source: Path) -> Path:
    """The emulator's kubeconfig with a context `lab` (namespace lab) as current, and `plain`
    (no namespace)."""
    config = yaml.safe_load(source.read_text(encoding="utf-8"))
    base = config["contexts"][0]
    config["contexts"] = [
        {"name": "lab", "context": {**base["context"], "namespace": "lab"}},
        {"name": "plain", "context": {**base["context"]}},
    ]
    config["current-context"] = "lab"
    path = tmp_path / "namespaced-kubeconfig"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_the_context_namespace_is_the_default_namespace(
    kube_kubeconfig: Path, tmp_path: Path
) -> None:
    path = kubeconfig_with_namespaces(tmp_path, kube_kubeconfig)
    assert default_namespace(KubernetesSettings(kubeconfig=path), environ={}) == "lab"
    assert default_namespace(KubernetesSettings(kubeconfig=path, context="plain"), {}) == "default"


def test_submit_without_aws_credentials_creates_the_pod_and_says_why_no_decision(
    kube_core: k8s.CoreV1Api,
    kube_kubeconfig: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    no_config_file: None,
) -> None:
    register_node(kube_core, operator_settings())
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance role to look for
    manifest = write_pod_manifest(tmp_path, "no-aws", "g5.xlarge")
    capsys.readouterr()
    code = main(["submit", str(manifest), "--kubeconfig", str(kube_kubeconfig)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "pod/no-aws created in namespace default" in out
    assert "Decision:     not shown (no AWS credentials" in out
    created = kube_core.read_namespaced_pod("no-aws", "default")
    assert created.spec.node_selector == {"orca.research/provider": "aws"}  # the node's labels

    # An annotation the published `instances` section refuses is refused before anything.
    manifest.write_text(
        manifest.read_text(encoding="utf-8")
        .replace("no-aws", "bad")
        .replace("g5.xlarge", "p5.48xlarge"),
        encoding="utf-8",
    )
    code = main(["submit", str(manifest), "--kubeconfig", str(kube_kubeconfig)])
    out, err = capsys.readouterr()
    assert code == 2
    assert "p5.48xlarge" in err
    assert out == ""
