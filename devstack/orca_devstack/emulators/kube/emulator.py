"""`KubeEmulator`: the store, registry, scheduler, node lifecycle controller and HTTP server
started and stopped as one."""

from __future__ import annotations

import errno
import os
import socket
import time
from pathlib import Path
from types import TracebackType

import yaml

from orca_devstack.emulators.kube.access import ClusterAccess, User
from orca_devstack.emulators.kube.admission import DEFAULT_ADMISSION, AdmissionConfig
from orca_devstack.emulators.kube.node_lifecycle import (
    DEFAULT_TIMINGS,
    LifecycleTimings,
    NodeLifecycleController,
)
from orca_devstack.emulators.kube.registry import Registry, find_resource
from orca_devstack.emulators.kube.scheduler import Scheduler
from orca_devstack.emulators.kube.server import ApiServer
from orca_devstack.emulators.kube.stateful_sets import StatefulSetController
from orca_devstack.emulators.kube.store import ObjectStore
from orca_devstack.emulators.kube.volume_binder import VolumeBinder

CONTEXT_NAME = "orca-dev"


class KubeEmulator:
    """An in-process Kubernetes API server emulator listening on real HTTP."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        retained_events: int = 10_000,
        scheduler: bool = True,
        bookmark_interval: float = 60.0,
        node_lifecycle: LifecycleTimings | None = DEFAULT_TIMINGS,
        admission: AdmissionConfig = DEFAULT_ADMISSION,
        controllers: bool = True,
    ) -> None:
        """`node_lifecycle=None` runs no node lifecycle controller (nodes never go Unknown, are
        never tainted by their conditions, and no pod is evicted by a taint); `controllers=False`
        runs neither the volume binder (with the protection controllers) nor the StatefulSet
        controller."""
        self.host = host
        self.port = port
        self.store = ObjectStore(retained_events)
        self.registry = Registry(self.store, admission_config=admission)
        self.access = ClusterAccess()
        configmaps = find_resource("", "v1", "configmaps")
        assert configmaps is not None
        self.registry.create(configmaps, "kube-system", self.access.configmap())
        self.scheduler = Scheduler(self.registry) if scheduler else None
        self.node_lifecycle = (
            NodeLifecycleController(self.registry, node_lifecycle)
            if node_lifecycle is not None
            else None
        )
        self.controllers = (
            (VolumeBinder(self.registry), StatefulSetController(self.registry))
            if controllers
            else ()
        )
        self._bookmark_interval = bookmark_interval
        self._server: ApiServer | None = None
        self._stopped = False

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        host, port = self._server.address
        return f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"

    def start(self) -> None:
        """Listen, serve, and return once the server answers HTTP."""
        if self._server is not None:
            return
        try:
            self._server = ApiServer(
                self.registry, self.host, self.port, self._bookmark_interval, self.access
            )
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise OSError(
                    error.errno,
                    f"port {self.port} on {self.host} is already in use; "
                    "pass --port to choose another",
                ) from error
            raise
        self._server.start()
        if self.scheduler is not None:
            self.scheduler.start()
        if self.node_lifecycle is not None:
            self.node_lifecycle.start()
        for controller in self.controllers:
            controller.start()
        self._wait_until_answering()

    def _wait_until_answering(self, timeout: float = 10.0) -> None:
        assert self._server is not None
        host, port = self._server.address
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection((host, port), timeout=1.0) as connection:
                    connection.sendall(
                        b"GET /healthz HTTP/1.1\r\nHost: emulator\r\nConnection: close\r\n\r\n"
                    )
                    if connection.recv(12).startswith(b"HTTP/1.1 200"):
                        return
            except OSError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.02)

    def stop(self) -> None:
        """Close every watch stream and the listener; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        self.store.close()
        if self.scheduler is not None:
            self.scheduler.stop()
        if self.node_lifecycle is not None:
            self.node_lifecycle.stop()
        for controller in self.controllers:
            controller.stop()
        if self._server is not None:
            self._server.stop()

    @property
    def client_ca_pem(self) -> str:
        """The cluster's client CA (PEM), as published in ConfigMap
        kube-system/extension-apiserver-authentication."""
        return self.access.ca.pem

    def issue_client_certificate(
        self, user: str, groups: tuple[str, ...] = ()
    ) -> tuple[bytes, bytes]:
        """A client certificate and key (PEM) signed by the cluster CA: CN `user`, O `groups`."""
        return self.access.ca.issue(user, groups)

    def add_token(self, token: str, user: str, groups: tuple[str, ...] = ()) -> None:
        """Accept `token` as `user` in `groups` (a line of kube-apiserver's --token-auth-file)."""
        self.access.tokens.add(token, User(user, groups))

    def kubeconfig(self) -> dict[str, object]:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": CONTEXT_NAME, "cluster": {"server": self.url}}],
            "users": [{"name": CONTEXT_NAME, "user": {"token": "orca-dev-emulator"}}],
            "contexts": [
                {
                    "name": CONTEXT_NAME,
                    "context": {
                        "cluster": CONTEXT_NAME,
                        "user": CONTEXT_NAME,
                        "namespace": "default",
                    },
                }
            ],
            "current-context": CONTEXT_NAME,
            "preferences": {},
        }

    def write_kubeconfig(self, path: str | os.PathLike[str]) -> Path:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Written whole or not at all: a reader polling for the file never sees half of it.
        partial = target.with_name(f".{target.name}.partial")
        partial.write_text(yaml.safe_dump(self.kubeconfig(), sort_keys=False))
        os.replace(partial, target)
        return target

    def __enter__(self) -> KubeEmulator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
