"""`kubectl logs`: API server (emulator) → the watcher's kubelet endpoint → CloudWatch Logs."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.watcher.conftest import (
    WatcherParts,
    create_pod,
    eventually,
    running_watcher,
    write_container_logs,
)

KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"

pytestmark = [
    pytest.mark.kubectl,
    pytest.mark.skipif(not Path(KUBECTL).is_file(), reason="kubectl is not installed"),
]


def kubectl(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KUBECTL, "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


async def test_kubectl_logs_returns_the_containers_cloudwatch_lines(parts: WatcherParts) -> None:
    settings = parts.settings()
    ref = create_pod(parts.core, "logs-1", settings.node.name)
    write_container_logs(settings, ref, [f"epoch {i}" for i in range(5)])
    async with running_watcher(settings, parts.temporal) as watcher:
        await eventually(watcher.watcher.ready)
        result = await asyncio.to_thread(kubectl, parts.kubeconfig, "logs", "logs-1")
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == [f"epoch {i}" for i in range(5)]

        tail = await asyncio.to_thread(kubectl, parts.kubeconfig, "logs", "logs-1", "--tail=2")
        assert tail.stdout.splitlines() == ["epoch 3", "epoch 4"]

        stamped = await asyncio.to_thread(
            kubectl, parts.kubeconfig, "logs", "logs-1", "-c", "main", "--timestamps"
        )
        first = stamped.stdout.splitlines()[0]
        stamp, _, text = first.partition(" ")
        assert text == "epoch 0"
        assert stamp.endswith("Z")
        assert "T" in stamp

        missing = await asyncio.to_thread(kubectl, parts.kubeconfig, "logs", "logs-1", "-c", "nope")
        assert missing.returncode != 0


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "kubelet.crt", folder / "kubelet.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]  # noqa: RUF005
        + ["-subj", "/CN=orca-kubelet", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


async def test_kubectl_logs_over_https_when_the_kubelet_endpoint_has_a_certificate(
    tmp_path: Path, parts: WatcherParts
) -> None:
    cert, key = self_signed_certificate(tmp_path)
    base = parts.settings()
    node = base.node.model_copy(update={"kubelet_tls_cert_file": cert, "kubelet_tls_key_file": key})
    settings = base.model_copy(update={"node": node})
    ref = create_pod(parts.core, "logs-tls", settings.node.name)
    write_container_logs(settings, ref, ["over tls"])
    async with running_watcher(settings, parts.temporal) as watcher:
        await eventually(watcher.watcher.ready)
        port = watcher.watcher.kubelet.port  # type: ignore[union-attr]
        plain = await asyncio.to_thread(
            subprocess.run,
            [
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                f"http://127.0.0.1:{port}/healthz",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert plain.stdout != "200"  # the endpoint speaks TLS only
        result = await asyncio.to_thread(kubectl, parts.kubeconfig, "logs", "logs-tls")
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == ["over tls"]
