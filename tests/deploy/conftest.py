"""Shared helpers for the deploy/ checks: the repository root and the rendered kustomize bases."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


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


@pytest.fixture(scope="session")
def base_objects() -> list[dict[str, Any]]:
    return render(DEPLOY / "base")


@pytest.fixture(scope="session")
def dev_objects() -> list[dict[str, Any]]:
    return render(DEPLOY / "overlays" / "dev")
