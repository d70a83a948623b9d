"""The embedded stack for the chaos run: `orca dev`'s processes plus the means to hurt them.

`ChaosStack` is `orca_devstack.stack.DevStack`, headless on free ports, with three changes: the
Kubernetes API emulator keeps a short event window (`--retained-events`), so a watch resumed after
a long enough gap gets `410 Gone`; ORCA's worker and watcher reach that emulator through a
`DroppingProxy` (the runner's own client talks to it directly); and `kill(name)` SIGKILLs one
child by its PID and starts it again on the same ports and files. A supervisor thread restarts a
worker or watcher that dies on its own and counts it, since that is a finding too.

Every process it starts is stopped through its own PID (`DevStack.stop`), never by name: other
sessions run tests on the same machine.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from orca_devstack.processes import ChildProcess, http_answers
from orca_devstack.stack import DevStack, DevStackOptions, render_dev_config
from tests.chaos.proxy import DroppingProxy

KILLABLE = ("worker", "watcher", "temporal")


class ChaosStack(DevStack):
    def __init__(
        self,
        state_dir: Path,
        *,
        pods: int,
        retained_events: int,
        launch_delay_s: float = 1.0,
        say: Any = print,
    ) -> None:
        super().__init__(
            DevStackOptions.on_free_ports(state_dir, aws_launch_delay=launch_delay_s),
            say=lambda line: say(line) if line.startswith("!!") else None,
        )
        self.pods = pods
        self.retained_events = retained_events
        self.proxy: DroppingProxy | None = None
        self.direct_kubeconfig: Path | None = None
        self.unplanned_restarts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._supervisor: threading.Thread | None = None

    # -- start: the emulator behind the proxy, ORCA's settings for a burst ---------------------
    def _start_kube_emulator(self) -> tuple[str | None, Path | None]:
        o = self.options
        direct = self.state_dir / "kubeconfig-direct"
        command = [sys.executable, "-m", "orca_devstack.emulators.kube", "--host", o.host]
        command += ["--port", str(o.kube_port), "--kubeconfig", str(direct)]
        command += ["--retained-events", str(self.retained_events)]
        self._launch(
            ChildProcess(
                "kube-emulator",
                command,
                self.state_dir / "logs/kube-emulator.log",
                http_answers(f"http://{o.host}:{o.kube_port}/version"),
            )
        )
        self.direct_kubeconfig = direct
        deadline = time.monotonic() + 30  # the emulator writes it just after it answers
        while not direct.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.proxy = DroppingProxy((o.host, o.kube_port), host=o.host)
        self.proxy.start()
        through_proxy = yaml.safe_load(direct.read_text())
        through_proxy["clusters"][0]["cluster"]["server"] = self.proxy.url
        kubeconfig = self.state_dir / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump(through_proxy, sort_keys=False), encoding="utf-8")
        return self.proxy.url, kubeconfig

    def _write_config(self, aws_url: str | None, kubeconfig: Path | None) -> Path:
        settings = render_dev_config(self.options, aws_url, kubeconfig, self.aws_defaults)
        room = max(self.pods * 2, 200)
        settings["node"]["pods"] = str(room)
        settings["limits"]["maxConcurrentInstances"] = room
        settings["limits"]["maxInstancesPerNamespace"] = room
        settings["instances"]["capacityRetryInterval"] = "10s"
        # A killed watcher's successor waits for the dead leader's lease to run out; a short
        # lease keeps the small run short (the chaos is the same).
        settings["watcher"]["leaderElection"] = {"leaseDuration": "6s", "renewInterval": "2s"}
        path = self.state_dir / "config.yaml"
        path.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
        return path

    def start(self) -> Any:
        endpoints = super().start()
        self._supervisor = threading.Thread(target=self._supervise, name="chaos-supervisor")
        self._supervisor.daemon = True
        self._supervisor.start()
        return endpoints

    # -- hurting it ---------------------------------------------------------------------------
    def child(self, name: str) -> ChildProcess:
        return next(c for c in self.children if c.name == name)

    def kill(self, name: str) -> tuple[float, float]:
        """SIGKILL `name` (its PID, then anything left in its own process group), start it again
        on the same ports and files, wait until it answers. Returns (killed at, ready at)."""
        with self._lock:
            child = self.child(name)
            assert child.process is not None
            pid = child.process.pid
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            killed_at = time.time()
            child.process.wait(timeout=30)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)  # the child's own session: only its descendants
            child.start()
            child.wait_ready()
            return killed_at, time.time()

    def _supervise(self) -> None:
        while not self.stopping.wait(1.0):
            with self._lock:
                for child in self.children:
                    if child.name not in self.RESTARTABLE or child.exit_code() is None:
                        continue
                    self.unplanned_restarts[child.name] = (
                        self.unplanned_restarts.get(child.name, 0) + 1
                    )
                    self.say(f"!! {child.name} exited with code {child.exit_code()}; restarting")
                    child.start()

    def stop(self) -> None:
        self.stopping.set()
        if self._supervisor is not None:
            self._supervisor.join(timeout=5)
        with self._lock:
            super().stop()
        if self.proxy is not None:
            self.proxy.stop()
