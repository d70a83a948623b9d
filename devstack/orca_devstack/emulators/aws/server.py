"""``AwsEmulator``: moto's server app behind the emulator middleware, on one port.

One endpoint answers EC2, SSM, SQS, CloudWatch Logs, CloudWatch, STS and the Pricing API. moto
keeps its state in process-global backends, so run one emulator per process at a time (tests
share one per session and ``control.reset()`` between tests).
"""

from __future__ import annotations

import errno
import socket
import threading
from pathlib import Path
from types import TracebackType

from moto.core import DEFAULT_ACCOUNT_ID
from moto.moto_api._internal.models import moto_api_backend
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, make_server

from orca_devstack.emulators.aws import moto_patches
from orca_devstack.emulators.aws.config import EmulatorConfig, EmulatorDefaults
from orca_devstack.emulators.aws.control import EmulatorControl
from orca_devstack.emulators.aws.defaults import seed_defaults
from orca_devstack.emulators.aws.middleware import EmulatorMiddleware
from orca_devstack.emulators.aws.sessions import SessionServer


class _QuietHandler(MotoRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class AwsEmulator:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        region: str = "us-west-2",
        config: EmulatorConfig | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.region = region
        self.config = config or EmulatorConfig()
        self.account_id = DEFAULT_ACCOUNT_ID
        moto_patches.install()
        self.middleware = EmulatorMiddleware(
            DomainDispatcherApplication(create_backend_app),
            account_id=self.account_id,
            region=region,
            config=self.config,
        )
        self.control = EmulatorControl(self.middleware, self._reset)
        self.middleware.control_app = self.control.http
        self._server: BaseWSGIServer | None = None
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def defaults(self) -> EmulatorDefaults:
        return self.control.defaults

    def start(self) -> None:
        """Bind, seed the default content, serve; returns once the port answers."""
        listener = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self.host, self.port))
        except OSError as error:
            listener.close()
            if error.errno == errno.EADDRINUSE:
                raise OSError(
                    errno.EADDRINUSE,
                    f"port {self.port} on {self.host} is already in use; "
                    "pass --port to choose another",
                ) from error
            raise
        listener.listen(128)
        self._listener = listener
        self._server = make_server(
            self.host,
            listener.getsockname()[1],
            self.middleware,
            threaded=True,
            request_handler=_QuietHandler,
            fd=listener.fileno(),
        )
        self.port = int(self._server.server_address[1])
        self._seed()
        self.middleware.scheduler.start()
        self.middleware.sessions = SessionServer(self.host, self._sandbox_of, self._ended_with)
        self.middleware.sessions.start()
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="aws-emulator", daemon=True
        )
        self._thread.start()
        with socket.create_connection((self.host, self.port), timeout=5):
            pass

    def _seed(self) -> None:
        with self.middleware.lock:
            moto_api_backend.reset()
            defaults = seed_defaults(self.account_id, self.region, self.config.zone_suffixes)
            defaults.interruption_queue_url = (
                f"{self.endpoint_url}/{self.account_id}/{defaults.interruption_queue_name}"
            )
            self.middleware.defaults = defaults

    def _sandbox_of(self, pod_uid: str, instance_id: str, container: str) -> Path | None:
        with self.middleware.lock:
            if not self.middleware.agent_online(instance_id):
                return None
            return self.middleware.containers.sandbox_of(pod_uid, instance_id, container)

    def _ended_with(self, pod_uid: str) -> int | None:
        with self.middleware.lock:
            return self.middleware.containers.ended_with(pod_uid)

    def _reset(self) -> None:
        if self.middleware.sessions is not None:
            self.middleware.sessions.reset()
        with self.middleware.lock:
            self.middleware.scheduler.cancel_all()
            self.middleware.reset_controls()
            self._seed()

    def stop(self) -> None:
        self.middleware.scheduler.stop()
        if self.middleware.sessions is not None:
            self.middleware.sessions.stop()
        with self.middleware.lock:
            self.middleware.containers.reset()  # the containers' sandboxes go with the emulator
            self.middleware.remove_volume_root()  # and the volumes' content
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> AwsEmulator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
