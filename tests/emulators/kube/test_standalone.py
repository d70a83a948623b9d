"""`python -m orca_devstack.emulators.kube` as `orca dev` runs it, and the in-process lifecycle."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from orca_devstack.emulators.kube import KubeEmulator
from tests.fixtures.kube import api_client_for


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_serves_until_sigterm_and_writes_a_kubeconfig(tmp_path: Path) -> None:
    port = free_port()
    kubeconfig = tmp_path / "kubeconfig"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orca_devstack.emulators.kube",
            "--port",
            str(port),
            "--kubeconfig",
            str(kubeconfig),
            "--no-scheduler",
            "--retained-events",
            "100",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert (
            process.stdout.readline().strip()
            == f"Kubernetes API emulator serving at http://127.0.0.1:{port}"
        )
        config = yaml.safe_load(kubeconfig.read_text())
        assert config["current-context"] == "orca-dev"
        assert config["clusters"][0]["cluster"]["server"] == f"http://127.0.0.1:{port}"
        core = client.CoreV1Api(api_client_for(kubeconfig))
        assert "default" in {n.metadata.name for n in core.list_namespace().items}
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_port_in_use_exits_2_with_one_clear_line() -> None:
    with KubeEmulator(port=0, scheduler=False) as emulator:
        port = int(emulator.url.rsplit(":", 1)[1])
        result = subprocess.run(
            [sys.executable, "-m", "orca_devstack.emulators.kube", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"port {port} on 127.0.0.1 is already in use; pass --port to choose another"
    )


def test_in_process_lifecycle(tmp_path: Path) -> None:
    emulator = KubeEmulator(host="127.0.0.1", port=0, retained_events=100, scheduler=False)
    emulator.start()
    port = int(emulator.url.rsplit(":", 1)[1])
    with pytest.raises(OSError, match="already in use"):
        KubeEmulator(port=port).start()
    core = client.CoreV1Api(api_client_for(emulator.write_kubeconfig(tmp_path / "kc")))
    assert core.get_api_resources().group_version == "v1"
    emulator.stop()
    emulator.stop()  # idempotent
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0


def test_stop_ends_open_watch_streams(tmp_path: Path) -> None:
    import threading

    from kubernetes import watch

    emulator = KubeEmulator(scheduler=False)
    emulator.start()
    core = client.CoreV1Api(api_client_for(emulator.write_kubeconfig(tmp_path / "kc")))
    seen: list[str] = []
    ended = threading.Event()

    def watch_forever() -> None:
        try:
            for event in watch.Watch().stream(
                core.list_namespace, timeout_seconds=600, _request_timeout=60
            ):
                seen.append(event["object"].metadata.name)
        except Exception:
            pass
        finally:
            ended.set()

    thread = threading.Thread(target=watch_forever, daemon=True)
    thread.start()
    deadline_ok = False
    for _ in range(100):
        if len(seen) >= 4:
            deadline_ok = True
            break
        ended.wait(0.05)
    assert deadline_ok, seen
    emulator.stop()
    assert ended.wait(10)
