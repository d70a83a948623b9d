"""Bad input the commands refuse before reaching any service, and services that are not there.

No stack runs here: these prove the messages and exit codes (2 for bad input or configuration,
1 for an unreachable service) and that no traceback escapes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from orca.cli.main import main
from orca_devstack.processes import free_port

EXAMPLES = Path(__file__).resolve().parents[2] / "devstack" / "orca_devstack" / "example_pods"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A config whose Temporal and Kubernetes API are nowhere."""
    port = free_port()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: nowhere\n"
        f"clusters: [{{name: nowhere, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n"
        "contexts: [{name: nowhere, context: {cluster: nowhere, user: nobody}}]\n"
        "users: [{name: nobody, user: {}}]\n",
        encoding="utf-8",
    )
    path = tmp_path / "orca.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "aws": {"region": "us-west-2", "endpointURL": f"http://127.0.0.1:{port}"},
                "temporal": {"address": f"127.0.0.1:{port}"},
                "kubernetes": {"kubeconfig": str(kubeconfig)},
            }
        ),
        encoding="utf-8",
    )
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("kind: Pod\nmetadata: {name: a\n", "is not valid YAML at line"),
        ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\n", "is a Deployment"),
        ("- just\n- a list\n", "must be a Pod manifest"),
        ("kind: Pod\nmetadata: {name: a}\nspec: {}\n", "needs spec.containers"),
        ("", "holds 0 YAML documents"),
    ],
    ids=["malformed", "deployment", "list", "no-containers", "empty"],
)
@pytest.mark.parametrize("command", ["submit", "explain"])
def test_manifests_that_are_not_a_pod_exit_2(
    command: str,
    text: str,
    expected: str,
    tmp_path: Path,
    config: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(text, encoding="utf-8")
    code, _, err = run(capsys, "--config", str(config), command, str(manifest))
    assert code == 2
    assert expected in err
    assert "Traceback" not in err


def test_missing_manifest_exits_2(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--config", str(config), "explain", "/nonexistent/pod.yaml")
    assert code == 2
    assert "no such file" in err


def test_invalid_launch_type_is_refused_before_any_service_is_asked(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys, "--config", str(config), "submit", str(EXAMPLES / "invalid-launch-type.yaml")
    )
    assert code == 2
    assert "orca.research/launch-type" in err
    assert "allowed: on-demand, spot" in err
    assert out == ""


def test_unknown_workload_template_names_the_known_ones(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(
        "kind: Pod\nmetadata:\n  name: t\n  annotations: {orca.research/workload-template: huge}\n"
        "spec: {containers: [{name: main, image: busybox}]}\n",
        encoding="utf-8",
    )
    code, _, err = run(capsys, "--config", str(config), "explain", str(manifest))
    assert code == 2
    assert "unknown workload template 'huge'" in err


@pytest.mark.parametrize(
    "argv",
    [["status"], ["status", "some-pod"], ["retry", "some-pod"], ["temporal", "setup"], ["replay"]],
    ids=["status", "status-pod", "retry", "temporal-setup", "replay"],
)
def test_unreachable_services_exit_1_naming_the_address(
    argv: list[str], config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "--config", str(config), *argv)
    assert code == 1
    assert "127.0.0.1:" in err
    assert "Traceback" not in err
    assert "temporal.address" in err or "kubernetes.kubeconfig" in err


def test_unreachable_aws_exits_1(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        capsys, "--config", str(config), "explain", str(EXAMPLES / "gpu-finetune.yaml")
    )
    assert code == 1
    assert "aws.endpointURL" in err or "cannot reach AWS" in err


def test_bad_configuration_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "orca.yaml"
    path.write_text("aws: {region: us-west-2}\ntemporal: {adress: x}\n", encoding="utf-8")
    code, _, err = run(capsys, "--config", str(path), "status")
    assert code == 2
    assert "temporal.adress: unknown key" in err
